"""The real machine: a real child process's memory paged through
userfaultfd, its swap on a real lab mount. Data, counters against the
mount's own counts, injected I/O failures, and how a workload ends."""

from __future__ import annotations

import os
import signal

import pytest

from vmlab import BusError, PolicyError, RealMachine, VMError, WorkloadError
from vmlab.real import uffd

PAGE = 4096


def _uffd_missing() -> str:
    try:
        os.close(uffd.open_uffd())
        return ""
    except uffd.Unavailable as e:
        return str(e)


# Skipped only where userfaultfd cannot be had (not root, a container's seccomp
# profile), saying why; never on CI, which runs as root: there it must run.
pytestmark = pytest.mark.skipif(bool(_uffd_missing()) and not os.environ.get("CI"),
                                reason=_uffd_missing())


def pattern_workload(mem: memoryview, seed: int) -> dict:
    """Write a seeded pattern over every page, read it back twice in other
    orders (backwards, then shuffled), then change one byte of some pages
    (a write to a clean page) and check all again. Returns the wrong bytes."""
    import numpy as np
    a = np.frombuffer(mem, dtype=np.uint8)
    n = len(a) // PAGE
    rng = np.random.default_rng(seed)
    want = rng.integers(0, 256, size=len(a), dtype=np.uint8)
    for p in range(n):
        a[p * PAGE:(p + 1) * PAGE] = want[p * PAGE:(p + 1) * PAGE]
    wrong = []
    for order in (range(n - 1, -1, -1), rng.permutation(n)):
        wrong.append(sum(int(np.count_nonzero(a[p * PAGE:(p + 1) * PAGE] != want[p * PAGE:(p + 1) * PAGE]))
                         for p in order))
    for p in rng.choice(n, size=n // 3, replace=False):
        at = int(p) * PAGE + int(rng.integers(PAGE))
        want[at] ^= 0x5A
        a[at] ^= 0x5A
    wrong.append(int(np.count_nonzero(a != want)))
    return {"wrong": wrong, "pages": n}


@pytest.mark.parametrize("policy", ["clock", "fifo", "lru", "random", "second-chance", "aging"])
def test_a_region_8x_its_frames_reads_back_exactly(policy):
    with RealMachine(frames=32, policy=policy) as rm:
        out = rm.run(pattern_workload, 8 * 32 * PAGE, 7)
        v = rm.vmstat()
    assert out == {"wrong": [0, 0, 0], "pages": 256}
    assert v["pswpout"] >= 256 - 32 and v["pswpin"] >= 256 - 32
    assert v["wp_faults"] > 0               # the one-byte writes to clean pages were seen
    assert v["pgfault"] == sum(v[c] for c in ("zero_faults", "swap_faults", "ref_faults",
                                              "wp_faults", "swapcache_faults"))


@pytest.mark.parametrize("policy", ["clock", "fifo", "lru", "random"])
def test_with_readahead_too(policy):
    with RealMachine(frames=32, policy=policy, readahead=3) as rm:
        out = rm.run(pattern_workload, 8 * 32 * PAGE, 9)
        v = rm.vmstat()
    assert out["wrong"] == [0, 0, 0]
    assert v["swap_ra"] > 0 and v["pswpin"] == v["swap_faults"] + v["swap_ra"]


@pytest.mark.parametrize("policy", ["clock", "fifo", "lru", "random", "aging"])
@pytest.mark.parametrize("batch", [1, 16])
def test_reclaim_in_batches_or_one_by_one_loses_nothing(policy, batch):
    with RealMachine(frames=32, policy=policy, reclaim_batch=batch, readahead=2) as rm:
        out = rm.run(pattern_workload, 8 * 32 * PAGE, 5)
        v = rm.vmstat()
    assert out["wrong"] == [0, 0, 0]
    assert v["allocstall"] > 0 and v["evictions"] <= batch * v["allocstall"]
    assert rm.fault_costs()["reclaim"]["count"] == v["evictions"]


@pytest.mark.parametrize("frames", [1, 4])
def test_readahead_wider_than_memory_stops_where_nothing_can_go(frames):
    """32-page clusters through 1 or 4 frames: readahead takes what frames it
    can (none may be taken from under the pages it is filling) and stops."""
    with RealMachine(frames=frames, policy="clock", readahead=5) as rm:
        out = rm.run(pattern_workload, 64 * PAGE, 3)
        v = rm.vmstat()
    assert out["wrong"] == [0, 0, 0]
    assert (v["swap_ra"] > 0) == (frames > 1)


def two_scans(mem: memoryview) -> int:
    """Write every page, then read every page in the same order: the bytes that are wrong."""
    n = len(mem) // PAGE
    for p in range(n):
        mem[p * PAGE] = p % 251
    return sum(mem[p * PAGE] != p % 251 for p in range(n))


@pytest.mark.parametrize("batch", [1, 8])
def test_a_batch_takes_every_page_it_frees_out_of_memory(batch):
    """FIFO on a scan of 4x the frames: each reclaim frees a whole batch, and
    every page of the second pass was out of memory (its touch a major
    fault): none of the pages reclaim freed stayed mapped behind its back."""
    frames, pages = 64, 256
    with RealMachine(frames=frames, policy="fifo", reclaim_batch=batch) as rm:
        assert rm.run(two_scans, pages * PAGE) == 0
        v = rm.vmstat()
    assert v["evictions"] == batch * v["allocstall"]
    assert v["swap_faults"] == pages and v["zero_faults"] == pages
    assert v["pswpout"] == pages
    assert v["evictions"] == -(-(2 * pages - frames) // batch) * batch   # whole batches


PAGERS = pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "python"])


@PAGERS
@pytest.mark.parametrize("readahead", [0, 2])
def test_the_mount_counts_what_the_machine_counts(readahead, fast):
    with RealMachine(frames=16, policy="clock", readahead=readahead, fastpath=fast) as rm:
        rm.run(pattern_workload, 128 * PAGE, 3)
        v, files = rm.vmstat(), rm.mount.files()
        swap = files["/" + os.path.basename(rm.swap_path)]
    assert swap.read_bytes == v["pswpin"] * PAGE
    assert swap.reads == v["pswpin"]                    # one 4 KiB request per page
    assert swap.writes == v["pswpout"] + 1              # and the header mkswap wrote
    assert swap.write_bytes == (v["pswpout"] + 1) * PAGE
    assert v["pswpin"] == v["swap_faults"] + v["swap_ra"]
    assert (v["swap_ra"] > 0) == (readahead > 0)


@pytest.mark.parametrize("policy", ["clock", "fifo", "lru", "random"])
def test_failed_writes_pass_over_a_victim_and_lose_nothing(policy):
    with RealMachine(frames=32, policy=policy) as rm:
        rm.mount.control("fail write /swap.img EIO 5")
        out = rm.run(pattern_workload, 8 * 32 * PAGE, 11)
        v = rm.vmstat()
    assert out["wrong"] == [0, 0, 0]
    assert v["writeback_errors"] == 5


@PAGERS
@pytest.mark.parametrize("policy", ["clock", "fifo", "lru", "random"])
def test_a_failed_read_kills_the_workload_and_the_machine_survives(policy, fast):
    with RealMachine(frames=32, policy=policy, fastpath=fast) as rm:
        rm.mount.control("fail read /swap.img EIO 1")
        with pytest.raises(BusError, match=r"was killed: a page of its region could not be "
                                           r"read back from swap \(Input/output error\)"):
            rm.run(pattern_workload, 8 * 32 * PAGE, 5)
        out = rm.run(pattern_workload, 8 * 32 * PAGE, 6)      # the pager and mount go on
        assert out["wrong"] == [0, 0, 0]
        assert rm.vmstat()["nr_free_frames"] == 32 and rm.vmstat()["swap_used"] == 0


def _raises(mem):
    mem[0] = 1
    raise KeyError("no such page")


def _dies(mem, how):
    mem[PAGE] = 1
    if how == "signal":
        os.kill(os.getpid(), signal.SIGTERM)
    if how == "exit":
        raise SystemExit(3)
    os._exit(4)


def _spins(mem):
    while True:
        mem[0] = (mem[0] + 1) % 256


def test_how_a_workload_ends_is_told():
    with RealMachine(frames=4) as rm:
        with pytest.raises(KeyError, match="no such page"):
            rm.run(_raises, PAGE)
        with pytest.raises(WorkloadError, match=r"was killed by SIGTERM before returning"):
            rm.run(_dies, 2 * PAGE, "signal")
        with pytest.raises(WorkloadError, match=r"called exit\(3\) before returning"):
            rm.run(_dies, 2 * PAGE, "exit")
        with pytest.raises(WorkloadError, match=r"exited with status 4 before returning"):
            rm.run(_dies, 2 * PAGE, "os._exit")
        with pytest.raises(WorkloadError, match=r"ran past its timeout of 0.5 s and was killed"):
            rm.run(_spins, PAGE, timeout=0.5)
        assert rm.run(lambda mem: bytes(mem[:3]), PAGE) == b"\0\0\0"


class Broken:
    """A policy whose victim() is not a candidate."""

    def __new__(cls, *a, **k):
        from vmlab import Policy

        class NotACandidate(Policy):
            def victim(self, candidates):
                return "frame 0"
        return NotACandidate(*a, **k)


def test_a_misbehaving_policy_ends_the_run_with_a_policy_error():
    with RealMachine(frames=4, policy=Broken(4)) as rm:
        with pytest.raises(PolicyError, match=r"victim\(\) returned 'frame 0', not one of the 4"):
            rm.run(pattern_workload, 16 * PAGE, 1)


def _once(what: str):
    """A FIFO that misbehaves at its 5th victim() call only: raises, or sleeps past the limit."""
    from vmlab.core.policy import Fifo

    class Once(Fifo):
        name = f"once-{what}"
        calls = 0

        def victim(self, candidates):
            Once.calls += 1
            if Once.calls == 5:
                if what == "raises":
                    raise RuntimeError("no victim today")
                if what == "none":
                    return None
                import time
                time.sleep(3)
            return super().victim(candidates)
    return Once


@pytest.mark.parametrize("what,says", [("raises", r"victim\(\) raised RuntimeError: no victim today"),
                                       ("none", r"victim\(\) returned None, not one of the"),
                                       ("slow", r"victim\(\) took longer than 1 s")])
def test_after_a_policy_error_the_machine_runs_on_with_nothing_held(what, says):
    with RealMachine(frames=16, policy=_once(what)) as rm:
        with pytest.raises(PolicyError, match=f"policy once-{what}: {says}"):
            rm.run(pattern_workload, 8 * 16 * PAGE, 4)
        v = rm.vmstat()
        assert v["nr_free_frames"] == 16 and v["swap_used"] == 0 and v["nr_processes"] == 0
        assert rm.run(pattern_workload, 8 * 16 * PAGE, 5)["wrong"] == [0, 0, 0]


def test_a_students_fifo_counts_exactly_as_the_builtin():
    from tests.test_user_policy import MyFifo
    runs = {}
    for policy in ("fifo", MyFifo):
        with RealMachine(frames=16, policy=policy) as rm:
            assert rm.run(pattern_workload, 8 * 16 * PAGE, 2)["wrong"] == [0, 0, 0]
            v = rm.vmstat()
            runs[policy if isinstance(policy, str) else "mine"] = {
                k: v[k] for k in ("pgfault", "pgmajfault", "pswpin", "pswpout", "evictions",
                                  "wp_faults", "zero_faults")}
    assert runs["mine"] == runs["fifo"] and runs["fifo"]["pswpout"] > 0


def _removes(mem):
    import ctypes
    import mmap
    mem[0] = 1
    address = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    ctypes.CDLL(None).madvise(ctypes.c_void_p(address), ctypes.c_size_t(PAGE), mmap.MADV_REMOVE)
    return mem[0]


def test_memory_removed_behind_the_pagers_back_is_an_error_not_a_hang():
    with RealMachine(frames=4) as rm:
        with pytest.raises(VMError, match=r"page 0 of the region left memory behind the pager's back"):
            rm.run(_removes, 4 * PAGE, timeout=60)
        assert rm.run(lambda mem: bytes(mem[:2]), 2 * PAGE) == b"\0\0"
