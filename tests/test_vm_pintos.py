"""The classic Pintos VM tests, ported: each runs with few enough frames to
force eviction and swap, and verifies its data."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from tests.conftest import PAGE, copy_to_lab
from vmlab import MapError, SegFault, VMError

PHYS_BASE = 0xC0000000
MB = 1 << 20


def rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


# -- stack growth -------------------------------------------------------------

def test_pt_grow_stack(machine):
    m = machine(frames=3)
    p = m.spawn()
    data = rand(1, 4096)
    p.esp -= 4096 + 512                        # like a local array below a frame
    p.write(p.esp, data)
    assert hashlib.sha1(p.read(p.esp, 4096)).digest() == hashlib.sha1(data).digest()
    assert m.vmstat()["stack_faults"] >= 1


def test_pt_grow_pusha(machine):
    p = machine(frames=3).spawn()
    p.esp = PHYS_BASE - 65536          # move esp far down without touching
    p.write(p.esp - 32, b"p" * 32)     # PUSHA: 32 bytes below esp is fine
    assert p.read(p.esp - 32, 32) == b"p" * 32


def test_pt_big_stk_obj(machine):
    m = machine(frames=4)
    p = m.spawn()
    obj = rand(2, 65536)
    p.esp -= 65536
    p.write(p.esp, obj)
    assert p.read(p.esp, 65536) == obj
    assert m.vmstat()["pswpout"] > 0           # 16 pages through 4 frames


def test_pt_grow_bad(machine):
    p = machine(frames=3).spawn()
    with pytest.raises(SegFault):
        p.read(p.esp - 4100, 1)                # below the stack page and esp - 32
    assert p.exit_status == -1 and not p.alive


def test_pt_grow_limit(machine):
    m = machine(frames=3, stack_max=64 * 1024)
    p = m.spawn()
    p.esp = PHYS_BASE - 64 * 1024
    p.write(p.esp, b"ok")                      # at the limit
    p.esp -= 4096
    with pytest.raises(SegFault):
        p.write(p.esp, b"no")                  # past stack_max


def test_pt_bad_addr(machine):
    m = machine(frames=3)
    for addr in (0, 0x04000000, PHYS_BASE, PHYS_BASE + 1234):
        p = m.spawn()
        with pytest.raises(SegFault):
            p.read(addr, 1)
        assert p.exit_status == -1
    assert m.vmstat()["segfaults"] == 4 and m.vmstat()["nr_free_frames"] == 3


def test_pt_write_code(machine):
    m = machine(frames=3)
    exe = copy_to_lab(m.lab, "/bin/true", "true")
    p = m.spawn()
    entry = p.load_elf(exe)
    code = p.read(entry, 16)
    assert code == open("/bin/true", "rb").read()[entry - 0x08000000:][:16]
    with pytest.raises(SegFault):
        p.write(entry, b"\xcc")
    assert p.exit_status == -1


def test_exec_is_lazy_and_data_pages_are_private(machine, shared_lab):
    m = machine(frames=4)
    exe = copy_to_lab(m.lab, "/bin/ls", "ls-lazy")
    before = shared_lab.files()["/ls-lazy"].reads
    p = m.spawn()
    p.load_elf(exe)
    assert shared_lab.files()["/ls-lazy"].reads - before == 1    # the headers only
    data = [v for v in p.vmas if v.kind == "elf" and v.writable][0]
    q = m.spawn()
    q.load_elf(exe)
    p.write(data.start, b"mine")
    assert q.read(data.start, 4) == open("/bin/ls", "rb").read()[data.offset:][:4]
    assert p.read(data.start, 4) == b"mine"
    assert open(exe, "rb").read() == open("/bin/ls", "rb").read()   # never written


# -- paging: page-linear, page-parallel, page-merge-*, page-shuffle and
# mmap-shuffle are scenarios in demo/ (tests/test_run.py runs them all).


# -- mmap ---------------------------------------------------------------------

SAMPLE = (b"=== ALL USERS PLEASE NOTE ========================\n" * 90)[:4500]


@pytest.fixture
def sample(machine):
    def make(m, name="sample.txt", data=SAMPLE):
        path = os.path.join(m.lab, name)
        with open(path, "wb") as f:
            f.write(data)
        return path
    return make


def test_mmap_read(machine, sample):
    m = machine(frames=2)
    p = m.spawn()
    a = p.mmap(sample(m), 0x10000000)
    assert p.read(a, len(SAMPLE)) == SAMPLE
    assert p.read(a + len(SAMPLE), PAGE * 2 - len(SAMPLE)) == bytes(PAGE * 2 - len(SAMPLE))


def test_mmap_write(machine, sample, shared_lab):
    m = machine(frames=2)
    path = sample(m, "w.txt", bytes(5000))
    p = m.spawn()
    a = p.mmap(path, 0x10000000)
    p.write(a, SAMPLE)
    p.munmap(a)
    assert open(path, "rb").read() == SAMPLE[:5000] + bytes(5000 - len(SAMPLE))
    assert os.path.getsize(path) == 5000


def test_mmap_close_user_descriptor(machine, sample):
    m = machine(frames=2)
    path = sample(m)
    fd = os.open(path, os.O_RDONLY)
    p = m.spawn()
    a = p.mmap(path, 0x10000000)
    os.close(fd)
    assert p.read(a, 64) == SAMPLE[:64]


def test_mmap_unmap(machine, sample):
    m = machine(frames=2)
    p = m.spawn()
    a = p.mmap(sample(m), 0x10000000)
    p.read(a, 10)
    p.munmap(a)
    with pytest.raises(SegFault):
        p.read(a, 1)


def test_mmap_overlap_twice_and_bad_requests(machine, sample):
    m = machine(frames=3)
    path = sample(m)
    exe = copy_to_lab(m.lab, "/bin/true", "true2")
    p = m.spawn()
    entry = p.load_elf(exe)
    a = p.mmap(path, 0x10000000)
    b = p.mmap(path, 0x20000000)                            # mmap-twice
    assert p.read(a, 100) == p.read(b, 100) == SAMPLE[:100]
    before = p.maps()
    empty = sample(m, "empty", b"")
    for bad in [
        lambda: p.mmap(path, 0x10001000),                   # mmap-overlap
        lambda: p.mmap(path, 0x10000234),                   # mmap-misalign
        lambda: p.mmap(path, 0),                            # mmap-null
        lambda: p.mmap(path, entry & ~0xFFF),               # mmap-over-code
        lambda: p.mmap(path, PHYS_BASE - PAGE),             # mmap-over-stk
        lambda: p.mmap(empty, 0x30000000),                  # mmap-zero
        lambda: p.mmap(path, PHYS_BASE - PAGE * 1),         # reaching PHYS_BASE
        lambda: p.mmap(None, 0x30000000),                   # anonymous without length
        lambda: p.munmap(0x50000000),                       # nothing there
    ]:
        with pytest.raises(MapError):
            bad()
    assert p.maps() == before and p.alive


def test_mmap_exit_writes_back(machine, sample):
    m = machine(frames=2)
    path = sample(m, "exit.txt", bytes(8192))
    parent = m.spawn()
    child = m.spawn()
    a = child.mmap(path, 0x10000000)
    child.write(a + 100, b"written by the child")
    child.exit(0)
    assert open(path, "rb").read()[100:120] == b"written by the child"
    b = parent.mmap(path, 0x10000000)
    assert parent.read(b + 100, 20) == b"written by the child"


def test_mmap_clean_pages_are_never_written(machine, sample, shared_lab):
    m = machine(frames=2)
    path = sample(m, "clean.txt", rand(7, 6 * PAGE))
    written = shared_lab.files()["/clean.txt"].writes
    p = m.spawn()
    a = p.mmap(path, 0x10000000)
    for i in range(6):
        p.read(a + i * PAGE, 10)                    # evicts: 6 pages, 2 frames
    p.write(a + 3 * PAGE, b"dirty")
    p.read(a, 10)
    p.munmap(a)
    f = shared_lab.files()["/clean.txt"]
    assert f.writes - written == 1                  # the one dirty page, once
    assert open(path, "rb").read()[3 * PAGE:3 * PAGE + 5] == b"dirty"


def test_mmap_remove(machine, sample):
    m = machine(frames=2)
    path = sample(m, "doomed.txt")
    p = m.spawn()
    a = p.mmap(path, 0x10000000)
    os.unlink(path)
    assert p.read(a, len(SAMPLE)) == SAMPLE


def test_mmap_private_is_copy_on_write(machine, sample):
    m = machine(frames=2)
    path = sample(m, "priv.txt")
    p = m.spawn()
    a = p.mmap(path, 0x10000000, private=True)
    p.write(a, b"PRIVATE")
    for i in range(20):                              # force it out to swap and back
        p.mmap(None, 0x20000000 + i * PAGE, length=PAGE)
        p.write(0x20000000 + i * PAGE, b"x")
    assert p.read(a, 7) == b"PRIVATE"
    p.exit(0)
    assert open(path, "rb").read() == SAMPLE


# -- copy-on-write fork -------------------------------------------------------

@pytest.mark.parametrize("frames", [16, 4])
def test_fork_isolates_parent_and_child(machine, frames):
    m = machine(frames=frames, swap_mb=2)
    parent = m.spawn()
    a = parent.mmap(None, 0x10000000, length=8 * PAGE)
    for i in range(8):
        parent.write(a + i * PAGE, bytes([i]) * PAGE)
    child = parent.fork()
    child.write(a, b"child")
    parent.write(a + PAGE, b"parent")
    assert parent.read(a, 5) == bytes(5) and child.read(a, 5) == b"child"
    assert child.read(a + PAGE, 6) == bytes([1]) * 6 and parent.read(a + PAGE, 6) == b"parent"
    for i in range(2, 8):                           # untouched pages: same data in both
        assert parent.read(a + i * PAGE, PAGE) == child.read(a + i * PAGE, PAGE) == bytes([i]) * PAGE
    if frames == 16:                                # all resident: two plain COW faults
        assert m.vmstat()["cow_faults"] == 2 and m.vmstat()["pswpout"] == 0


def test_shared_pages_swapped_out_and_read_back_by_both(machine):
    m = machine(frames=3, swap_mb=2)
    parent = m.spawn()
    a = parent.mmap(None, 0x10000000, length=6 * PAGE)
    pages = [rand(100 + i, PAGE) for i in range(6)]
    for i, d in enumerate(pages):
        parent.write(a + i * PAGE, d)
    child = parent.fork()
    slots_before = m.vmstat()["swap_used"]
    for i in range(6):                              # the child pulls pages in, pushing others out
        assert child.read(a + i * PAGE, PAGE) == pages[i]
    for i in range(6):
        assert parent.read(a + i * PAGE, PAGE) == pages[i]
    # a shared page lives in one slot, not one per process: 6 pages, 3 in frames
    assert m.vmstat()["swap_used"] == 3 and slots_before == 3
    child.write(a, b"C")
    assert parent.read(a, 1) == pages[0][:1]
    parent.exit(0)
    assert child.read(a + 5 * PAGE, PAGE) == pages[5]
    child.exit(0)
    assert m.vmstat()["swap_used"] == 0 and m.vmstat()["nr_free_frames"] == 3


def test_fork_shares_shared_mappings(machine, sample):
    m = machine(frames=3)
    path = sample(m, "forkshare.txt", bytes(2 * PAGE))
    p = m.spawn()
    a = p.mmap(path, 0x10000000)
    c = p.fork()
    c.write(a, b"seen by both")
    assert p.read(a, 12) == b"seen by both"
    c.exit(0)
    p.exit(0)
    assert open(path, "rb").read(12) == b"seen by both"


def test_dead_process_refuses_calls(machine):
    p = machine(frames=2).spawn()
    p.exit(3)
    assert p.exit_status == 3
    with pytest.raises(VMError):
        p.read(PHYS_BASE - 10, 1)
