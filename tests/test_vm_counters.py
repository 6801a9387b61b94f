"""What the VM counts equals what the filesystem saw, request for request,
under thousands of faults and heavy eviction, on an embedded mount and on
one made with `vmlab mount`."""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

import vmlab_fs
from tests.conftest import PAGE, copy_to_lab, run_vmlab
from vmlab import Machine


@pytest.fixture(params=["embedded", "vmlab-mount"])
def lab_machine(request, tmp_path):
    """(Machine, Mount) on a fresh lab, made either way."""
    if request.param == "embedded":
        m = Machine(frames=8, swap_mb=4)
        try:
            yield m, m.mount
        finally:
            m.close()
        return
    mnt, back = tmp_path / "mnt", tmp_path / "back"
    mnt.mkdir()
    back.mkdir()
    r = run_vmlab("mount", str(mnt), "--backing", str(back))
    assert r.returncode == 0, r.stderr
    try:
        m = Machine(frames=8, swap_mb=4, lab=str(mnt))
        try:
            yield m, vmlab_fs.attach(str(mnt))
        finally:
            m.close()
    finally:
        if run_vmlab("umount", str(mnt)).returncode != 0:
            subprocess.run(["fusermount3", "-uz", str(mnt)])


ROUNDS = 6


def workload(m: Machine, backing: str) -> None:
    """Anonymous churn, a shared file mapping with dirty pages, an ELF, fork.
    Files are made in the backing directory: every request on them is the VM's."""
    rng = random.Random(42)
    copy_to_lab(backing, "/bin/ls", "ls")
    exe = os.path.join(m.lab, "ls")
    with open(os.path.join(backing, "data.bin"), "wb") as f:
        f.write(rng.randbytes(48 * PAGE + 100))
    p = m.spawn()
    p.load_elf(exe)
    code = [v for v in p.vmas if v.executable][0]
    anon = p.mmap(None, 0x20000000, length=256 * PAGE)
    data = p.mmap(os.path.join(m.lab, "data.bin"), 0x30000000)
    for rnd in range(ROUNDS):
        for i in rng.sample(range(256), 256):
            p.write(anon + i * PAGE + rnd, bytes([i, rnd]))
        for i in rng.sample(range(49), 49):
            if rng.random() < 0.3:
                p.write(data + i * PAGE, b"w")
            else:
                p.read(data + i * PAGE, 8)
        for i in range(0, code.end - code.start, 8 * PAGE):
            p.read(code.start + i, 4)
    child = p.fork()
    for i in rng.sample(range(256), 128):
        child.write(anon + i * PAGE + 100, b"c")
        assert p.read(anon + i * PAGE + 100, 1) == bytes(1)
    child.exit(0)
    p.munmap(data)
    for i in range(256):
        assert p.read(anon + i * PAGE, ROUNDS + 1) == bytes([i] * ROUNDS + [ROUNDS - 1])
    p.exit(0)


def test_counters_equal_the_filesystem_requests(lab_machine):
    m, mount = lab_machine
    workload(m, mount.backing)
    s = m.vmstat()
    files = mount.files()
    swap = files[os.path.join("/", os.path.basename(m.swap_path))]
    data, exe = files["/data.bin"], files["/ls"]
    assert s["pgfault"] > 2000 and s["evictions"] > 1000, s
    # one swap-in = one read of swap.img; one swap-out = one write (+ mkswap's header)
    assert swap.reads == s["pswpin"] and swap.writes == s["pswpout"] + 1
    # one file page-in = one read; one write-back = one write
    assert data.reads == s["mmap_faults"]
    assert data.writes == s["writebacks"] > 0
    assert exe.reads == s["elf_faults"] + s["elf_header_reads"]
    assert s["pgmajfault"] == s["elf_faults"] + s["mmap_faults"] + s["swap_faults"]
    assert s["pgpgin"] == 4 * (s["pswpin"] + s["file_faults"])
    assert s["pgpgout"] == 4 * (s["pswpout"] + s["writebacks"])
    cases = ("zero", "stack", "cow", "elf", "mmap", "pagecache", "swap")
    assert s["pgfault"] == sum(s[c + "_faults"] for c in cases) + s["segfaults"]
    costs = m.fault_costs()
    for c in cases:
        assert costs.get(c, {"count": 0})["count"] == s[c + "_faults"]
    assert s["swap_used"] == 0 and s["nr_free_frames"] == s["nr_frames"]


def test_per_process_fault_counts_add_up(machine):
    m = machine(frames=4)
    procs = [m.spawn() for _ in range(3)]
    for k, p in enumerate(procs):
        p.mmap(None, 0x10000000, length=16 * PAGE)
        for i in range(16):
            p.write(0x10000000 + i * PAGE, bytes([k]))
    for p in procs:
        for i in range(16):
            assert p.read(0x10000000 + i * PAGE, 1) == bytes([procs.index(p)])
    s = m.vmstat()
    assert sum(p.majflt for p in procs) == s["pgmajfault"] > 0
    assert sum(p.minflt + p.majflt for p in procs) == s["pgfault"]


def test_three_independent_counts_of_the_swap_io_agree(lab_machine):
    """The VM's pswpin/pswpout, the lab's swap.img reads/writes and the host
    kernel's count of the daemon's read/write system calls (less one of
    each per request served) are the same numbers: every page crossed the
    filesystem, and nothing else did."""
    from vmlab_fs.accounting import host_page_io
    m, mount = lab_machine
    p = m.spawn()
    a = p.mmap(None, 0x10000000, length=96 * PAGE)
    for i in range(96):
        p.write(a + i * PAGE, bytes([i]) * 8)
    swap = "/" + os.path.basename(m.swap_path)
    vm0, lab0, files0 = m.vmstat(), mount.stats(), mount.files()
    io0 = mount.daemon_io(settle=0.05)       # no request of .vmlab/* from here...
    rng = random.Random(7)
    for _ in range(600):
        i = rng.randrange(96)
        assert p.read(a + i * PAGE, 8) == bytes([i]) * 8
        if rng.random() < 0.5:
            p.write(a + i * PAGE, bytes([i]) * 8)
    io1 = mount.daemon_io()                  # ... to here
    vm1, lab1, files1 = m.vmstat(), mount.stats(), mount.files()
    vm = (vm1["pswpin"] - vm0["pswpin"], vm1["pswpout"] - vm0["pswpout"])
    lab = (files1[swap].reads - files0[swap].reads, files1[swap].writes - files0[swap].writes)
    host = host_page_io(lab1["requests"] - lab0["requests"], io0, io1)
    assert vm[0] > 300 and vm[1] > 300
    assert vm == lab, (vm, lab)
    # Writes exactly; reads may run ahead by FORGET notices the kernel sends
    # when it drops an inode from its cache: read from /dev/fuse, never answered.
    assert host["writes"] == lab[1] and 0 <= host["reads"] - lab[0] <= 3, (vm, lab, host)
    assert lab1["requests"] - lab0["requests"] == sum(vm)   # one request per page, nothing else


def test_stat_shows_the_hosts_view(lab_machine):
    m, mount = lab_machine
    p = m.spawn()
    a = p.mmap(None, 0x10000000, length=32 * PAGE)
    for i in range(32):
        p.write(a + i * PAGE, b"x")
    r = run_vmlab("stat", mount.path)
    assert r.returncode == 0 and f"daemon pid {mount.pid}, as the host kernel counts it" in r.stdout
    data = json.loads(run_vmlab("stat", mount.path, "--json").stdout)
    assert set(data["host"]) == {"syscr", "syscw", "rchar", "wchar"}
    assert data["host"]["syscw"] >= data["stats"]["writes"] > 0
