"""Latency models and fault injection through .vmlab/control, end to end."""

from __future__ import annotations

import errno
import os
import statistics
import time

import pytest

import vmlab_fs
from tests.conftest import PAGE


def _read_pages(mnt: str, name: str, n: int, buf) -> float:
    """Time n O_DIRECT page reads of a fresh file; returns seconds."""
    path = os.path.join(mnt, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        os.ftruncate(fd, n * PAGE)
        t0 = time.perf_counter()
        for i in range(n):
            os.preadv(fd, [buf], i * PAGE)
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def _read_durations_us(m: vmlab_fs.Mount, path: str) -> list[int]:
    return [int(l.split()[5][:-2]) for l in m.iolog()
            if l.split()[1] == "read" and l.split()[2] == path]


def test_fixed_latency_delays_each_request(lab, page_buffer):
    fast = _read_pages(lab.path, "fast.bin", 20, page_buffer)
    lab.control("latency 5ms")
    slow = _read_pages(lab.path, "slow.bin", 20, page_buffer)
    assert slow >= 20 * 0.005
    assert slow > 5 * fast
    assert min(_read_durations_us(lab, "/slow.bin")) >= 5000
    lab.control("latency none")
    assert _read_pages(lab.path, "again.bin", 20, page_buffer) < slow / 5


def test_ssd_model_is_about_100us(lab, page_buffer):
    lab.control("latency ssd")
    _read_pages(lab.path, "ssd.bin", 50, page_buffer)
    med = statistics.median(_read_durations_us(lab, "/ssd.bin"))
    assert 100 <= med < 1000


def test_hdd_model_seeks_in_milliseconds_and_streams_fast(lab, page_buffer):
    lab.control("latency hdd")
    path = os.path.join(lab.path, "hdd.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        os.ftruncate(fd, 4096 * PAGE)
        for off in (4000, 10, 2000, 3000, 500):        # random: seek + rotation
            os.preadv(fd, [page_buffer], off * PAGE)
        for off in range(501, 506):                     # sequential after 500
            os.preadv(fd, [page_buffer], off * PAGE)
    finally:
        os.close(fd)
    d = _read_durations_us(lab, "/hdd.bin")
    assert all(4000 <= x <= 12000 for x in d[:5]), d
    assert all(x < 1000 for x in d[5:]), d


def test_latency_set_at_mount_time(tmp_path, page_buffer):
    with vmlab_fs.mount(latency="3ms") as m:
        assert m.stats()["reads"] == 0
        assert _read_pages(m.path, "f.bin", 10, page_buffer) >= 10 * 0.003
        assert "latency 3ms" in open(os.path.join(m.path, ".vmlab/control")).read()


def test_injected_read_faults_are_returned_then_cleared(lab, page_buffer):
    path = os.path.join(lab.path, "f.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        os.pwritev(fd, [page_buffer], 0)
        lab.control("fail read /f.bin EIO 2")
        for _ in range(2):
            with pytest.raises(OSError) as e:
                os.preadv(fd, [page_buffer], 0)
            assert e.value.errno == errno.EIO
        assert os.preadv(fd, [page_buffer], 0) == PAGE   # the count ran out
        assert os.pwritev(fd, [page_buffer], 0) == PAGE  # writes never failed
    finally:
        os.close(fd)
    f = lab.files()["/f.bin"]
    assert f.reads == 1 and lab.stats()["errors"] >= 2
    failed = [l.split() for l in lab.iolog() if l.split()[1] == "read"]
    assert [l[6] for l in failed] == ["-EIO", "-EIO", str(PAGE)]


def test_injected_write_faults_until_cleared(lab, page_buffer):
    path = os.path.join(lab.path, "w.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        lab.control("fail write * ENOSPC")
        for i in range(3):
            with pytest.raises(OSError) as e:
                os.pwritev(fd, [page_buffer], i * PAGE)
            assert e.value.errno == errno.ENOSPC
        assert "fail write * ENOSPC all" in open(os.path.join(lab.path, ".vmlab/control")).read()
        lab.control("clear")
        assert os.pwritev(fd, [page_buffer], 0) == PAGE
    finally:
        os.close(fd)
    assert os.path.getsize(os.path.join(lab.backing, "w.bin")) == PAGE
    assert lab.files()["/w.bin"].writes == 1


def test_fault_on_one_path_leaves_others_alone(lab, page_buffer):
    a = os.open(os.path.join(lab.path, "a"), os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    b = os.open(os.path.join(lab.path, "b"), os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        lab.control("fail rw /a EIO all")
        with pytest.raises(OSError):
            os.pwritev(a, [page_buffer], 0)
        assert os.pwritev(b, [page_buffer], 0) == PAGE
        lab.control("clear /b")                     # other paths' rules stay
        with pytest.raises(OSError):
            os.pwritev(a, [page_buffer], 0)
        lab.control("clear /a")
        assert os.pwritev(a, [page_buffer], 0) == PAGE
    finally:
        os.close(a)
        os.close(b)


@pytest.mark.parametrize("command", [
    "bogus", "latency", "latency fast", "latency -5us", "fail read /f EBUSY",
    "fail read f EIO", "fail read /f EIO 0", "fail read /f EIO x", "fail sometimes /f EIO",
    "reset now", "clear /a /b",
])
def test_bad_control_commands_are_refused_with_a_reason(lab, command):
    with pytest.raises(vmlab_fs.MountError) as e:
        lab.control(command)
    assert str(e.value) and "\n" not in str(e.value)
    text = open(os.path.join(lab.path, ".vmlab/control")).read()
    assert text.startswith("latency none\n")        # nothing changed


def test_control_is_owner_only(lab):
    st = os.stat(os.path.join(lab.path, ".vmlab/control"))
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.getuid()
    for name in ("stats", "files", "iolog", "pid"):
        with pytest.raises(OSError):
            os.open(os.path.join(lab.path, ".vmlab", name), os.O_WRONLY)


def test_a_fault_count_is_what_a_reader_sees(lab, page_buffer):
    """The kernel sends a failed page-cache read again at once (readahead,
    then the read): ``EIO 1`` must still fail exactly one read() of a plain
    buffered reader, and exactly one request of an O_DIRECT reader."""
    path = os.path.join(lab.path, "f")
    with open(path, "wb") as f:
        f.write(b"y" * 3 * PAGE)
    for count, fails in ((1, 1), (2, 2)):
        lab.control("reset", f"fail read /f EIO {count}")
        seen = []
        for _ in range(3):
            try:
                seen.append(len(open(path, "rb").read()))
            except OSError as e:
                seen.append(e.errno)
        assert seen == [errno.EIO] * fails + [3 * PAGE] * (3 - fails)
        rules = open(os.path.join(lab.path, ".vmlab/control")).read().splitlines()
        assert not [r for r in rules if r.startswith("fail")]      # used up
    lab.control("reset", "fail read /f EIO 1")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        with pytest.raises(OSError):
            os.preadv(fd, [page_buffer], 0)
        assert os.preadv(fd, [page_buffer], 0) == PAGE            # the very next request works
    finally:
        os.close(fd)
    assert [l.split()[-1] for l in lab.iolog() if " read " in l] == ["-EIO", "4096"]
