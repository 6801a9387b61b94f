"""Every page request through the mount is counted exactly once, logged once,
and reaches the backing file intact."""

from __future__ import annotations

import errno
import mmap
import os
import random

import pytest

from tests.conftest import PAGE


def odirect(path: str, create: bool = True) -> int:
    return os.open(path, os.O_RDWR | os.O_DIRECT | (os.O_CREAT if create else 0), 0o644)


@pytest.mark.parametrize("n", [1, 7, 64])
def test_n_direct_page_writes_and_reads_are_n_requests(lab, page_buffer, n):
    path = os.path.join(lab.path, "pages.bin")
    fd = odirect(path)
    rng = random.Random(n)
    pages = [rng.randbytes(PAGE) for _ in range(n)]
    try:
        for i, data in enumerate(pages):
            page_buffer[:] = data
            assert os.pwritev(fd, [page_buffer], i * PAGE) == PAGE
        for i in rng.sample(range(n), n):
            assert os.preadv(fd, [page_buffer], i * PAGE) == PAGE
            assert bytes(page_buffer) == pages[i]
    finally:
        os.close(fd)
    f = lab.files()["/pages.bin"]
    assert (f.reads, f.writes) == (n, n)
    assert (f.read_bytes, f.write_bytes) == (n * PAGE, n * PAGE)
    stats = lab.stats()
    assert (stats["reads"], stats["writes"]) == (n, n)
    with open(os.path.join(lab.backing, "pages.bin"), "rb") as b:
        assert b.read() == b"".join(pages)


def test_iolog_gains_one_line_per_request(lab, page_buffer):
    path = os.path.join(lab.path, "log.bin")
    fd = odirect(path)
    try:
        for i in range(5):
            os.pwritev(fd, [page_buffer], i * PAGE)
        lines0, requests0 = len(lab.iolog()), lab.stats()["requests"]
        for i in range(5):
            os.preadv(fd, [page_buffer], i * PAGE)
        after, requests1 = lab.iolog(), lab.stats()["requests"]
    finally:
        os.close(fd)
    new = after[lines0:]
    assert len(new) == requests1 - requests0      # the kernel may add a getattr
    reads = [l.split() for l in new if l.split()[1] == "read"]
    assert len(reads) == 5
    for i, (stamp, op, p, offset, length, duration, result) in enumerate(reads):
        assert (p, int(offset), int(length), int(result)) == ("/log.bin", i * PAGE, PAGE, PAGE)
        assert duration.endswith("us") and stamp.count(":") == 2


def test_control_files_do_not_count_themselves(lab):
    """Reading .vmlab/* moves no figure but ctl_requests, which counts those
    requests apart (the host's count of the daemon's calls includes them)."""
    first = lab.stats()
    for _ in range(3):
        lab.files(), lab.iolog()
    again = lab.stats()
    assert again["ctl_requests"] >= first["ctl_requests"] + 6 * 3
    assert {k: v for k, v in again.items() if k != "ctl_requests"} == \
        {k: v for k, v in first.items() if k != "ctl_requests"}


def test_counters_reset(lab, page_buffer):
    fd = odirect(os.path.join(lab.path, "r.bin"))
    os.pwritev(fd, [page_buffer], 0)
    os.close(fd)
    assert lab.stats()["writes"] == 1
    lab.control("reset")
    assert lab.stats()["writes"] == 0
    assert lab.files() == {}
    assert lab.iolog() == []


def test_kernel_mmap_faults_are_page_reads_and_dirty_pages_writes(lab):
    npages = 48
    pattern = b"".join(bytes([i]) * PAGE for i in range(npages))
    with open(os.path.join(lab.backing, "m.bin"), "wb") as f:
        f.write(pattern)
    fd = os.open(os.path.join(lab.path, "m.bin"), os.O_RDWR)
    try:
        with mmap.mmap(fd, npages * PAGE, mmap.MAP_SHARED) as mm:
            base = lab.files().get("/m.bin")
            base_reads = base.reads if base else 0
            touched = list(range(0, npages, 3))
            for i in touched:
                assert mm[i * PAGE + 17] == i
            f = lab.files()["/m.bin"]
            assert f.reads - base_reads == len(touched)
            assert f.read_bytes == f.reads * PAGE
            dirty = touched[::2]
            for i in dirty:
                mm[i * PAGE] = 0xEE
            assert lab.files()["/m.bin"].writes == 0   # nothing written before msync
            mm.flush()
            f = lab.files()["/m.bin"]
            assert f.writes == len(dirty)
            assert f.write_bytes == len(dirty) * PAGE
    finally:
        os.close(fd)
    log = [l.split() for l in lab.iolog()]
    assert {int(l[4]) for l in log if l[1] in ("read", "write") and l[2] == "/m.bin"} == {PAGE}
    with open(os.path.join(lab.backing, "m.bin"), "rb") as b:
        data = b.read()
    assert len(data) == npages * PAGE
    for i in range(npages):
        assert data[i * PAGE] == (0xEE if i in dirty else i)


def test_getxattr_is_enosys_so_the_kernel_stops_asking(lab, page_buffer):
    path = os.path.join(lab.path, "x.bin")
    fd = odirect(path)
    for i in range(20):
        os.pwritev(fd, [page_buffer], i * PAGE)
    os.close(fd)
    with pytest.raises(OSError) as e:
        os.getxattr(path, "user.test")
    assert e.value.errno in (errno.EOPNOTSUPP, errno.ENOSYS)
    assert lab.stats()["op_getxattr"] == 1          # asked once, for the first write
    assert lab.stats()["writes"] == 20


def test_no_getattr_between_page_requests(lab, page_buffer):
    """With libfuse's default auto_inval_data the kernel sends a GETATTR
    before each read that follows a write: one extra request per swap-in."""
    fd = odirect(os.path.join(lab.path, "swap.img"))
    try:
        for i in range(200):
            os.pwritev(fd, [page_buffer], i * PAGE)
            os.preadv(fd, [page_buffer], i * PAGE)
    finally:
        os.close(fd)
    s = lab.stats()
    assert (s["reads"], s["writes"]) == (200, 200)
    assert s.get("op_getattr", 0) < 20
