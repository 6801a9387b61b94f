"""The real machine's compiled fast path (zero fills and swap-ins served in
C, their books kept in Python): built, the same results as the pager all
in Python, and its failures told as the Python pager tells them."""

from __future__ import annotations

import os
import threading
import time

import pytest

from vmlab import BusError, LabError, RealMachine
from vmlab.core.policy import Fifo
from vmlab.real import fastpath
from tests.test_real import PAGE, pattern_workload, pytestmark  # noqa: F401  (skip where no uffd)

TIMING = {"nr_free_frames", "nr_processes"}


def test_the_fast_path_is_built_here():
    assert fastpath.why_not() is None, fastpath.why_not()
    with RealMachine(frames=8) as rm:
        assert rm.fastpath


def _run(fast: bool, **kw) -> tuple[dict, dict]:
    with RealMachine(frames=32, fastpath=fast, **kw) as rm:
        out = rm.run(pattern_workload, 8 * 32 * PAGE, 13)
        return out, rm.vmstat()


def _counting_serves(monkeypatch) -> list:
    """The return codes of every call into the fast path, from now on."""
    served = []
    serve = fastpath.FastPath.serve
    monkeypatch.setattr(fastpath.FastPath, "serve",
                        lambda self, *a: served.append(rc := serve(self, *a)) or rc)
    return served


KWS = [{}, {"reclaim_batch": 1}, {"readahead": 2}]


@pytest.mark.parametrize("policy", ["clock", "fifo", "random", "second-chance"])
@pytest.mark.parametrize("kw", KWS, ids=["batch", "one", "ra"])
def test_it_counts_exactly_as_the_python_pager(policy, kw, monkeypatch):
    """Every counter the same, fault for fault: the books it leaves to the
    pager are kept in the order the faults came."""
    served = _counting_serves(monkeypatch)
    fast_out, fast = _run(True, policy=policy, **kw)
    assert served                                   # it was the fast path that ran
    monkeypatch.undo()
    slow_out, slow = _run(False, policy=policy, **kw)
    assert fast_out["wrong"] == slow_out["wrong"] == [0, 0, 0]
    assert {k: v for k, v in fast.items() if k not in TIMING} == \
           {k: v for k, v in slow.items() if k not in TIMING}
    assert fast["swap_faults"] > 0 and fast["zero_faults"] == 8 * 32


@pytest.mark.parametrize("policy", ["lru", "aging"])
@pytest.mark.parametrize("kw", KWS, ids=["batch", "one", "ra"])
def test_policies_that_scan_lose_nothing_either(policy, kw, monkeypatch):
    """LRU's scans and aging's ticks run between faults, as the workload
    runs again, so their reference faults vary a little from run to run
    with either pager (the scheduler decides who is first); the data never."""
    served = _counting_serves(monkeypatch)
    out, v = _run(True, policy=policy, **kw)
    assert served and out["wrong"] == [0, 0, 0]
    assert v["ref_faults"] > 0 and v["ref_arms"] > 0
    assert v["pgfault"] == sum(v[c] for c in ("zero_faults", "swap_faults", "ref_faults",
                                              "wp_faults", "swapcache_faults"))


def test_free_frames_it_holds_count_as_free():
    """vmstat while it runs: the frames handed to the fast path and not used
    yet are free frames, not lost ones."""
    seen = []

    def scan(mem):
        for p in range(0, len(mem), PAGE):
            mem[p] = 1
        time.sleep(0.6)

    with RealMachine(frames=256) as rm:
        rm.run(scan, 100 * PAGE, every=0.2, report=seen.append)
    assert seen and seen[-1]["nr_free_frames"] == 156


def test_reports_come_on_time_while_faults_stream():
    """A workload that faults without a pause still gets its --vmstat
    lines: the compiled loop keeps the report's deadline."""
    seen = []

    def stream(mem):
        t = time.monotonic()
        while time.monotonic() - t < 1.2:
            for p in range(0, len(mem), PAGE):
                mem[p] = 1
        return 0

    with RealMachine(frames=16, policy="fifo") as rm:
        rm.run(stream, 64 * PAGE, every=0.2, report=seen.append)
    assert len(seen) >= 3
    assert seen[-1]["pswpin"] > seen[0]["pswpin"] > 0


class _CorruptsSwap(Fifo):
    """FIFO that, at its 100th release, flips every written slot's checksum:
    the next swap-in must fail its check, never map wrong bytes."""

    def __init__(self, frames: int) -> None:
        super().__init__(frames)
        self.swap, self.releases = None, 0

    def released(self, frame) -> None:
        super().released(frame)
        self.releases += 1
        if self.releases == 100:
            crc = self.swap._crc
            for slot in range(len(crc)):
                crc[slot] ^= 1


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "python"])
def test_a_slot_that_fails_its_checksum_kills_the_workload(fast):
    policy = _CorruptsSwap(32)
    with RealMachine(frames=32, policy=policy, fastpath=fast) as rm:
        policy.swap = rm.swap
        with pytest.raises(BusError, match=r"could not be read back from swap \(swap slot \d+ "
                                           r"of .* failed its checksum\)"):
            rm.run(pattern_workload, 8 * 32 * PAGE, 3)


def _write_wait_read(mem, marker):
    """Write every page, say so in ``marker``, wait, then read page 0 back."""
    for p in range(0, len(mem), PAGE):
        mem[p] = 7
    open(marker, "w").close()
    time.sleep(1.0)
    return mem[0]


def test_a_hung_read_in_the_fast_path_is_aborted_not_waited_for(tmp_path):
    """The I/O watchdog sees the compiled loop's read in flight (it runs
    without the GIL) and aborts the hung mount: a LabError in about the
    timeout, not the 30 s the mount now takes. FIFO, 64 frames, batches of
    32, 120 pages: the writes end with 8 frames left to the fast path, so
    page 0's swap-in is its own."""
    marker = str(tmp_path / "written")
    with RealMachine(frames=64, policy="fifo", reclaim_batch=32, io_timeout=1.0) as rm:
        assert rm.fastpath

        def hang_when_written():
            while not os.path.exists(marker):
                time.sleep(0.02)
            rm.mount.control("latency 30000ms")

        t = threading.Thread(target=hang_when_written)
        t.start()
        start = time.monotonic()
        try:
            with pytest.raises(LabError, match=r"did not answer within 1 s"):
                rm.run(_write_wait_read, 120 * PAGE, marker)
            assert time.monotonic() - start < 15
            assert rm.vmstat()["pswpin"] == 0          # the read never came back
        finally:
            t.join()


def _write_read(mem):
    """Write every page, then read page 0 back."""
    for p in range(0, len(mem), PAGE):
        mem[p] = 7
    return mem[0]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "python"])
def test_a_failed_read_in_the_fast_path_is_told_as_in_python(fast, monkeypatch):
    """FIFO, 64 frames, batches of 32, 120 pages: the writes end with 8
    frames left to the fast path, so the first read of swap (page 0's) is
    its own. Injected EIO: the same BusError either way, and the machine
    serves the next run."""
    served = _counting_serves(monkeypatch)
    with RealMachine(frames=64, policy="fifo", reclaim_batch=32, fastpath=fast) as rm:
        rm.mount.control("fail read /swap.img EIO 1")
        with pytest.raises(BusError, match=r"was killed: a page of its region could not be "
                                           r"read back from swap \(Input/output error\)"):
            rm.run(_write_read, 120 * PAGE)
        assert (fastpath.ERROR in served) == fast
        assert rm.run(_write_read, 120 * PAGE) == 7
        assert rm.vmstat()["nr_free_frames"] == 64


def test_its_crc32_is_zlibs():
    """The checksum it checks slots with, computed by carry-less
    multiplication here, is zlib's CRC-32 (the swap disk's) on every page."""
    import random
    import zlib
    rng = random.Random(5)
    pages = [bytes(PAGE), b"\xff" * PAGE, bytes(PAGE - 1) + b"\x01", b"\x80" + bytes(PAGE - 1)]
    pages += [rng.randbytes(PAGE) for _ in range(3000)]
    assert [fastpath.crc32_page(p) for p in pages] == [zlib.crc32(p) for p in pages]
    with pytest.raises(ValueError, match="4096 bytes"):
        fastpath.crc32_page(b"short")
