"""A student's replacement policy: one Policy class that works everywhere,
gives exactly the built-in's counts when it is the same policy, and can
never break the machine when it misbehaves."""

from __future__ import annotations

import inspect
import time

import pytest

from vmlab import Machine, Policy, PolicyError
from vmlab_scenarios import REGISTRY

PAGE = 4096
A = 0x10000000


class MyFifo(Policy):                       # the example, unchanged
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = []

    def loaded(self, frame):
        self.order.append(frame.index)

    def released(self, frame):
        self.order.remove(frame.index)

    def victim(self, candidates):
        allowed = {f.index: f for f in candidates}
        return next(allowed[i] for i in self.order if i in allowed)


COUNTED = ("pgfault", "pgmajfault", "pswpin", "pswpout", "evictions", "writebacks", "cow_faults")


@pytest.mark.parametrize("scenario", ["thrash", "page-merge-mm", "cow", "page-shuffle"])
def test_my_fifo_counts_exactly_what_fifo_counts(machine, scenario):
    figures = []
    for policy in ("fifo", MyFifo, MyFifo(5)):          # a name, a class, an instance
        m = machine(frames=5, policy=policy, swap_mb=16)
        REGISTRY[scenario].run(m)
        figures.append({k: m.vmstat()[k] for k in COUNTED})
    assert figures[0] == figures[1] == figures[2]
    assert figures[0]["evictions"] > 0


def test_the_policy_sees_frames_as_documented(machine):
    seen = []

    class Watch(MyFifo):
        wants_touch = True
        tick_every = 5

        def touched(self, frame):
            seen.append(("touched", frame.index, frame.page, frame.referenced, frame.dirty))

        def tick(self):
            seen.append(("tick",))

        def victim(self, candidates):
            assert [f.index for f in candidates] == sorted(f.index for f in candidates)
            f = super().victim(candidates)
            f.referenced = False                    # a policy may clear the bit
            assert f.referenced is False
            return f
    m = machine(frames=2, policy=Watch)
    p = m.spawn()
    p.mmap(None, A, length=3 * PAGE)
    p.write(A, b"x")
    assert seen[0][:2] == ("touched", 0) and seen[0][2] == (p.pid, A >> 12)
    assert seen[0][3] is True and seen[0][4] is True          # accessed, written
    for i in (0, 1, 2, 2):
        p.read(A + i * PAGE, 1)
    assert seen.count(("tick",)) == 1 and seen.index(("tick",)) == 5    # after the 5th access
    assert m.vmstat()["evictions"] == 1


class Raises(MyFifo):
    def victim(self, candidates):
        raise RuntimeError("my bug")


class NotACandidate(MyFifo):
    def victim(self, candidates):
        return "frame 3"


class ReturnsNone(MyFifo):
    def victim(self, candidates):
        return None


class Slow(MyFifo):
    def victim(self, candidates):
        while True:
            pass


class Once(MyFifo):
    """Misbehaves on its first decision only: the machine must go on after."""
    fail = None

    def victim(self, candidates):
        if self.fail:
            kind, self.fail = self.fail, None
            if kind == "raise":
                raise ValueError("boom")
            return None
        return super().victim(candidates)


@pytest.mark.parametrize("cls,why", [
    (Raises, "victim() raised RuntimeError: my bug"),
    (NotACandidate, "victim() returned 'frame 3', not one of the"),
    (ReturnsNone, "victim() returned None, not one of the"),
    (Slow, "victim() took longer than 1 s"),
])
def test_a_misbehaving_policy_is_a_policy_error_and_breaks_nothing(machine, cls, why):
    m = machine(frames=3, policy=cls, swap_mb=2)
    p = m.spawn()
    p.mmap(None, A, length=8 * PAGE)
    for i in range(3):                                      # memory full, no decision yet
        p.write(A + i * PAGE, bytes([i + 1]) * PAGE)
    t0 = time.monotonic()
    with pytest.raises(PolicyError, match=f"policy {cls.__name__.lower()}: ") as e:
        p.write(A + 3 * PAGE, b"new")                       # needs a victim
    assert why in str(e.value) and "\n" not in str(e.value)
    assert time.monotonic() - t0 < 5
    assert p.alive and 3 not in {pte.vpn - (A >> 12) for pte in p.spt.values()}
    assert [p.read(A + i * PAGE, PAGE) for i in range(3)] == [bytes([i + 1]) * PAGE for i in range(3)]
    s = m.vmstat()
    assert s["nr_free_frames"] == 0 and s["swap_used"] == 0 and s["evictions"] == 0
    p.exit(0)                                               # and everything goes back
    assert m.vmstat()["nr_free_frames"] == 3


@pytest.mark.parametrize("kind", ["raise", "none"])
def test_after_a_misbehaving_decision_memory_and_swap_read_back_exactly(machine, kind):
    m = machine(frames=3, policy=Once, swap_mb=2)
    p = m.spawn()
    p.mmap(None, A, length=10 * PAGE)
    for i in range(8):                                      # 5 pages go to swap
        p.write(A + i * PAGE, bytes([i + 1]) * PAGE)
    assert m.vmstat()["swap_used"] == 5
    m.policy.inner.fail = kind
    with pytest.raises(PolicyError):
        p.write(A + 8 * PAGE, b"z")
    assert [p.read(A + i * PAGE, PAGE) for i in range(8)] == [bytes([i + 1]) * PAGE for i in range(8)]
    p.write(A + 8 * PAGE, b"z")
    assert p.read(A + 8 * PAGE, 1) == b"z"


def test_bad_policy_arguments(machine, tmp_path):
    for bad, error in ((None, TypeError), (3, TypeError), ("belady", ValueError),
                       (str(tmp_path / "none.py") + ":X", ValueError), ("os:path", ValueError)):
        with pytest.raises(error) as e:
            Machine(frames=2, policy=bad)
        assert "\n" not in str(e.value)

    class BadInit(Policy):
        def __init__(self, frames, seed=0):
            raise KeyError("oops")
    with pytest.raises(PolicyError, match="policy badinit: __init__"):
        Machine(frames=2, policy=BadInit)


# -- the same policies through trace replay ----------------------------------------

def _lackey_trace(tmp_path):
    import subprocess
    from vmlab.replay.traces import read_trace
    log = tmp_path / "true.lackey"
    subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", "/bin/true"],
                   check=True, capture_output=True, timeout=120)
    return read_trace(str(log))


def test_every_builtin_counts_the_same_on_its_fast_loop_and_as_a_policy_class(tmp_path):
    import random
    from vmlab.replay.generic import replay_spec
    from vmlab.replay.policies import POLICIES as FAST
    rng = random.Random(11)
    strings = [[rng.randrange(rng.randint(2, 30)) for _ in range(rng.randint(1, 400))] for _ in range(30)]
    t = _lackey_trace(tmp_path)
    cases = [(s, bytes(len(s))) for s in strings] + [(t.pages.tolist(), t.writes)]
    for pages, writes in cases:
        for name, fast in FAST.items():
            for n in (1, 3, 8, 32):
                assert replay_spec(name, pages, writes, n, seed=5) == fast(pages, n, 5), (name, n)
        assert replay_spec(MyFifo, pages, writes, 7) == FAST["fifo"](pages, 7)


def _cli(*args, cwd=None):
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "vmlab", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=dict(os.environ, NO_COLOR="1"))


POLICY_FILE = ("from vmlab import Policy\n\n\n" + inspect.getsource(MyFifo) + """

class Broken(MyFifo):
    def victim(self, candidates):
        return candidates[0].index       # an int, not a frame
""")


def test_the_command_line_takes_your_policy(tmp_path):
    import json
    (tmp_path / "mine.py").write_text(POLICY_FILE)
    (tmp_path / "b.txt").write_text("1 2 3 4 1 2 5 1 2 3 4 5")
    spec = f"{tmp_path}/mine.py:MyFifo"
    r = _cli("trace", str(tmp_path / "b.txt"), "--frames", "3,4", "--policy", f"{spec},fifo",
             "--vm", "--json")
    got = {(x["policy"], x["frames"]): (x["faults"], x["vm"]["faults"]) for x in json.loads(r.stdout)["results"]}
    assert got[("myfifo", 3)] == got[("fifo", 3)] == (9, 9) and got[("myfifo", 4)] == got[("fifo", 4)]
    runs = [json.loads(_cli("run", "thrash", "--frames", "8", "--policy", p, "--json",
                            cwd=tmp_path).stdout)["vmstat"]
            for p in (spec, "mine:MyFifo", "fifo")]              # a file, a module, the built-in
    assert {k: runs[0][k] for k in COUNTED} == {k: runs[1][k] for k in COUNTED} == \
        {k: runs[2][k] for k in COUNTED}
    r = _cli("trace", str(tmp_path / "b.txt"), "--frames", "3", "--policy", f"{tmp_path}/mine.py:Broken")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "policy broken: victim() returned 0, not one of the 3 candidates" in r.stderr
    for bad, why in ((f"{tmp_path}/mine.py:Nope", "'Nope' is not a Policy class"),
                     (f"{tmp_path}/none.py:X", "no policy file"), ("clck", "bad policy")):
        r = _cli("trace", str(tmp_path / "b.txt"), "--frames", "3", "--policy", bad)
        assert r.returncode == 2 and why in r.stderr and r.stderr.count("\n") == 1, r.stderr
        r = _cli("run", "thrash", "--policy", bad)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr


def test_the_template_runs_as_it_is_and_is_clock(tmp_path):
    import json
    import random
    r = _cli("policy", "--template", "Mine")
    assert r.returncode == 0 and "class Mine(Policy):" in r.stdout
    (tmp_path / "mine.py").write_text(r.stdout)
    rng = random.Random(2)
    (tmp_path / "r.txt").write_text(" ".join(str(rng.randrange(20)) for _ in range(2000)))
    r = _cli("trace", str(tmp_path / "r.txt"), "--frames", "1,4,7,16", "--json",
             "--policy", f"{tmp_path}/mine.py:Mine,clock")
    got = {(x["policy"], x["frames"]): x["faults"] for x in json.loads(r.stdout)["results"]}
    assert all(got["mine", n] == got["clock", n] for n in (1, 4, 7, 16))
    mine, clock = (json.loads(_cli("run", "page-shuffle", "--frames", "4", "--policy", p, "--json",
                                   cwd=tmp_path).stdout)["vmstat"] for p in ("mine:Mine", "clock"))
    assert {k: mine[k] for k in COUNTED} == {k: clock[k] for k in COUNTED}
    r = _cli("policy", "--template", "not a name")
    assert r.returncode == 2 and "bad name" in r.stderr


def test_a_page_in_that_fails_never_reaches_the_policy(machine, shared_lab):
    """released() only ever follows loaded(): MyFifo's list.remove would
    raise for a frame whose page never arrived."""
    import os
    from vmlab import BusError
    m = machine(frames=2, policy=MyFifo, swap_mb=2)
    p = m.spawn()
    p.mmap(None, A, length=4 * PAGE)
    for i in range(4):
        p.write(A + i * PAGE, bytes([i + 1]))
    shared_lab.control(f"fail read /{os.path.basename(m.swap_path)} EIO 1")
    with pytest.raises(BusError):
        p.read(A, 1)                                      # not a PolicyError
    q = m.spawn()
    q.mmap(None, A, length=4 * PAGE)
    for i in range(4):
        q.write(A + i * PAGE, bytes([i + 1]))
    assert [q.read(A + i * PAGE, 1) for i in range(4)] == [bytes([i + 1]) for i in range(4)]
