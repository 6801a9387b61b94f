"""Under disk faults, a dying or hung daemon and corrupted swap: the faulting
process gets a clear error, everything else goes on, and no data is lost or
replaced by stale bytes."""

from __future__ import annotations

import os
import signal
import time

import pytest

import vmlab_fs
from vmlab import BusError, LabError, Machine, OutOfMemory, SegFault, WriteBackError

PAGE = 4096
A = 0x10000000


def fill(p, pages, tag=0):
    p.mmap(None, A, length=pages * PAGE)
    for i in range(pages):
        p.write(A + i * PAGE, bytes([i, tag]) * (PAGE // 2))


def intact(p, pages, tag=0):
    return all(p.read(A + i * PAGE, PAGE) == bytes([i, tag]) * (PAGE // 2) for i in range(pages))


def swapname(m):
    return "/" + os.path.basename(m.swap_path)


def test_eio_on_swap_in_kills_only_that_process(machine, shared_lab):
    m = machine(frames=4, swap_mb=2)
    victim, bystander = m.spawn(), m.spawn()
    fill(victim, 8, 1)
    fill(bystander, 8, 2)                       # victim's pages are in swap now
    shared_lab.control(f"fail read {swapname(m)} EIO 1")
    with pytest.raises(BusError):
        intact(victim, 8, 1)
    assert victim.exit_status == -1 and m.vmstat()["bus_errors"] == 1
    assert intact(bystander, 8, 2)
    assert m.vmstat()["nr_free_frames"] + sum(1 for f in m.frames.frames if f.rmap) == 4


def test_eio_on_file_page_in_is_a_bus_error(machine, shared_lab):
    m = machine(frames=4)
    with open(os.path.join(m.backing, "f.bin"), "wb") as f:
        f.write(b"x" * 3 * PAGE)
    p = m.spawn()
    a = p.mmap(os.path.join(m.lab, "f.bin"), A)
    shared_lab.control("fail read /f.bin EIO 1")
    with pytest.raises(BusError, match="f.bin"):
        p.read(a, 1)
    assert not p.alive
    q = m.spawn()
    assert q.read(q.mmap(os.path.join(m.lab, "f.bin"), A), 1) == b"x"   # the next read works


@pytest.mark.parametrize("err", ["EIO", "ENOSPC"])
def test_failed_swap_out_loses_nothing(machine, shared_lab, err):
    m = machine(frames=3, swap_mb=2)
    p = m.spawn()
    fill(p, 3)
    shared_lab.control(f"fail write {swapname(m)} {err} 3")
    p.mmap(None, 0x20000000, length=6 * PAGE)
    for i in range(6):                          # forces swap-outs; the first 3 fail
        p.write(0x20000000 + i * PAGE, bytes([200 + i]))
    assert m.vmstat()["writeback_errors"] == 3
    assert intact(p, 3)
    assert [p.read(0x20000000 + i * PAGE, 1)[0] for i in range(6)] == [200 + i for i in range(6)]


def test_swap_that_never_writes_is_out_of_memory_for_the_faulter_only(machine, shared_lab):
    m = machine(frames=3, swap_mb=2)
    keeper, greedy = m.spawn(), m.spawn()
    fill(keeper, 3)
    shared_lab.control(f"fail write {swapname(m)} ENOSPC all")
    try:
        greedy.mmap(None, A, length=PAGE)
        with pytest.raises(OutOfMemory, match="writing pages out failed"):
            greedy.write(A, b"more")
        assert not greedy.alive and m.vmstat()["oom_kills"] == 1
        assert intact(keeper, 3)                # still resident, still right
    finally:
        shared_lab.control("clear")
    q = m.spawn()
    fill(q, 4, 9)                               # the machine goes on
    assert intact(q, 4, 9) and intact(keeper, 3)


def test_swap_full_is_out_of_memory(machine):
    m = machine(frames=2, swap_mb=12 / 1024)    # two slots
    a, b = m.spawn(), m.spawn()
    fill(a, 4)
    with pytest.raises(OutOfMemory, match="swap"):
        fill(b, 4, 1)
    assert not b.alive and intact(a, 4)
    assert m.vmstat()["swap_used"] == 2


def test_flipped_byte_in_swap_is_caught(machine):
    m = machine(frames=2, swap_mb=2)
    p = m.spawn()
    fill(p, 6)
    slot = next(pte.slot for pte in p.spt.values() if pte.slot is not None)
    vpn = next(v for v, pte in p.spt.items() if pte.slot == slot)
    with open(os.path.join(m.backing, os.path.basename(m.swap_path)), "r+b") as f:
        f.seek(slot * PAGE + 1000)
        byte = f.read(1)
        f.seek(slot * PAGE + 1000)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(BusError, match="checksum"):
        p.read(vpn << 12, 1)
    assert not p.alive


def _shared(m, name, pages):
    with open(os.path.join(m.backing, name), "wb") as f:
        f.write(bytes(pages * PAGE))
    return os.path.join(m.lab, name)


def test_write_back_failure_at_eviction_is_retried(machine, shared_lab):
    m = machine(frames=2)
    p = m.spawn()
    a = p.mmap(_shared(m, "wb.bin", 4), A)
    p.write(a, b"first page")
    shared_lab.control("fail write /wb.bin EIO 1")
    for i in range(1, 4):                       # evicts the dirty first page: fails once, retried
        p.read(a + i * PAGE, 1)
    assert m.vmstat()["writeback_errors"] == 1
    with open(os.path.join(m.backing, "wb.bin"), "rb") as f:
        assert f.read(10) == b"first page"


def test_munmap_and_exit_report_failed_write_backs_and_keep_the_data(machine, shared_lab):
    m = machine(frames=8)
    path = _shared(m, "keep.bin", 2)
    p = m.spawn()
    a = p.mmap(path, A)
    p.write(a, b"precious")
    shared_lab.control("fail write /keep.bin ENOSPC all")
    with pytest.raises(WriteBackError, match="keep.bin.*stay in memory"):
        p.munmap(a)
    assert m.vmstat()["nr_unmapped_dirty"] == 1
    q = m.spawn()
    b = q.mmap(path, A)                         # the page cache still has it
    assert q.read(b, 8) == b"precious"
    q.write(b + PAGE, b"second")
    with pytest.raises(WriteBackError):
        q.exit(0)
    assert q.exit_status == 0 and not q.alive
    shared_lab.control("clear")
    m.close()                                   # retried at close: now it works
    with open(os.path.join(m.backing, "keep.bin"), "rb") as f:
        data = f.read()
    assert data[:8] == b"precious" and data[PAGE:PAGE + 6] == b"second"


def test_close_reports_what_it_could_not_write(machine, shared_lab):
    m = machine(frames=4)
    p = m.spawn()
    p.write(p.mmap(_shared(m, "lost.bin", 1), A), b"x")
    shared_lab.control("fail write /lost.bin EIO all")
    try:
        with pytest.raises(WriteBackError, match="closing the machine"):
            m.close()
    finally:
        shared_lab.control("clear")


def test_a_killed_process_still_writes_back(machine):
    m = machine(frames=4)
    p = m.spawn()
    a = p.mmap(_shared(m, "killed.bin", 2), A)
    p.write(a + 5, b"last words")
    with pytest.raises(SegFault):
        p.read(0x70000000, 1)
    with open(os.path.join(m.backing, "killed.bin"), "rb") as f:
        assert f.read()[5:15] == b"last words"


def test_dead_daemon_is_a_clear_error_and_cleans_up():
    m = Machine(frames=2, swap_mb=1)
    mnt = m.lab
    p = m.spawn()
    fill(p, 4)
    os.kill(m.mount.pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(LabError, match="is gone"):
        intact(p, 4)
    assert time.monotonic() - t0 < 5
    m.close()
    assert vmlab_fs.mounted_fstype(mnt) is None and not os.path.exists(mnt)


def test_a_hung_request_times_out_instead_of_freezing():
    m = Machine(frames=2, swap_mb=1, io_timeout=1.0)
    mnt = m.lab
    p = m.spawn()
    fill(p, 4)
    m.mount.control("latency 30000ms")
    t0 = time.monotonic()
    with pytest.raises(LabError, match="did not answer within 1 s"):
        intact(p, 4)
    assert time.monotonic() - t0 < 5
    m.close()
    assert vmlab_fs.mounted_fstype(mnt) is None


def test_cow_copy_that_cannot_get_a_frame_leaves_the_parent_intact(machine, shared_lab):
    m = machine(frames=2, swap_mb=2)
    parent = m.spawn()
    fill(parent, 2)
    child = parent.fork()
    shared_lab.control(f"fail write {swapname(m)} EIO all")
    try:
        with pytest.raises(OutOfMemory):
            child.write(A, b"copy")             # needs a third frame; nothing can leave
    finally:
        shared_lab.control("clear")
    assert not child.alive and intact(parent, 2)


def test_swap_in_through_the_bounce_page_with_swap_writes_failing(machine, shared_lab):
    """Memory and swap full, every swap write failing: touching a swapped
    page is out of memory for that process only, and the page stays in its
    slot for the process sharing it."""
    m = machine(frames=2, swap_mb=3 * PAGE / (1 << 20))       # 2 frames, 2 slots
    p = m.spawn()
    fill(p, 4)
    child = p.fork()                                         # shares all four pages
    s = m.vmstat()
    assert (s["swap_used"], s["swap_slots"], s["nr_free_frames"]) == (2, 2, 0)
    shared_lab.control(f"fail write {swapname(m)} EIO all")
    with pytest.raises(OutOfMemory):
        p.read(A, 1)                                         # page 0 is in swap
    assert not p.alive and p.exit_status == -1 and m.vmstat()["oom_kills"] == 1
    assert set(m.mm.slot_users) == {1, 2} and m.vmstat()["swap_used"] == 2
    shared_lab.control("clear")
    assert intact(child, 4)                                  # nothing lost
    child.exit(0)
    s = m.vmstat()
    assert s["swap_used"] == 0 and s["nr_free_frames"] == 2 and not m.mm.slot_users


def test_a_hung_mount_it_did_not_start_is_aborted_not_killed(tmp_path):
    """On someone's `vmlab mount`, a hung request ends the connection (the
    mount reports it), but the Machine never kills a daemon it did not start."""
    import psutil
    from tests.conftest import run_vmlab
    mnt, back = tmp_path / "m", tmp_path / "b"
    mnt.mkdir()
    back.mkdir()
    assert run_vmlab("mount", str(mnt), "--backing", str(back)).returncode == 0
    pid = vmlab_fs.daemon_pid(str(mnt))
    try:
        m = Machine(frames=2, swap_mb=1, lab=str(mnt), io_timeout=1.0)
        p = m.spawn()
        fill(p, 4)
        vmlab_fs.attach(str(mnt)).control("latency 30000ms")
        t0 = time.monotonic()
        with pytest.raises(LabError, match="did not answer within 1 s"):
            intact(p, 4)
        assert time.monotonic() - t0 < 5
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE     # alive: not killed
        m.close()
    finally:
        assert run_vmlab("umount", str(mnt), timeout=30).returncode == 0
