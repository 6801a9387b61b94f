"""The textbook policies, each pinned to a small example worked by hand from
its definition (the docstrings cite them), replayed through the Policy
interface; and each runs in a real Machine too."""

from __future__ import annotations

import pytest

from vmlab.core.registry import POLICIES, make_policy
from vmlab.core.textbook import TEXTBOOK
from vmlab.replay.generic import replay


def victims(name: str, refs, frames: int, writes=None, **options) -> tuple[int, list]:
    """(faults, the pages evicted in order) of ``refs`` under policy ``name``."""
    policy = make_policy(name, frames, 0, **options)
    out = []
    choose = policy.victim

    def watched(candidates):
        f = choose(candidates)
        out.append(f.page)
        return f
    policy.victim = watched
    faults = replay(refs, writes or bytes(len(refs)), frames, policy)
    return faults, out


def test_second_chance():
    # 1 2 3 fill (R set); 1 hits. 4: the sweep clears 1, 2, 3 (each to the
    # back) and takes 1. 2 hits (R set). 5: 2 is oldest but referenced:
    # cleared and sent back; 3 goes. 2 then hits. FIFO would evict 2 at 5.
    assert victims("second-chance", [1, 2, 3, 1, 4, 2, 5, 2], 3) == (5, [1, 3])


def test_nru():
    # tick every 2 accesses. 1 (read), 2 (written); tick clears R. 1 hits
    # (R1 M0: class 2); page 2 is R0 M1: class 1, the lowest: it goes.
    assert victims("nru", [1, 2, 1, 3], 2, writes=bytes([0, 1, 0, 0]), tick=2) == (3, [2])
    # No tick in between: 1 is class 2 (R1 M0), 2 class 3 (R1 M1): 1 goes.
    assert victims("nru", [1, 2, 1, 3], 2, writes=bytes([0, 1, 0, 0]), tick=1000) == (3, [1])


def test_nfu_and_aging():
    # tick at every access. NFU counts: page 1 referenced at 2 ticks, page 2
    # at 3: page 1 goes at 3. Aging (8 bits, shifted right each tick, R in
    # the top bit): page 1 = 136 (10001000), page 2 = 112 (01110000): page 2
    # goes, as the recent use of 1 weighs more than the older ones of 2.
    refs = [1, 2, 2, 2, 1, 3]
    assert victims("nfu", refs, 2, tick=1) == (3, [1])
    assert victims("aging", refs, 2, tick=1) == (3, [2])
    # NFU never forgets: three uses of 1, one of 2, then only 2: 2 still goes.
    assert victims("nfu", [1, 1, 1, 2, 3], 2, tick=1) == (3, [2])


def test_working_set():
    # tick every 3, tau 1. After the tick at access 3, pages 1 2 3 were
    # used at time 3 (R cleared). 3 and 1 are used again; the tick at
    # access 6 sets 1 and 3 to time 6. At 4 (time 6): page 1 is unreferenced
    # but age 0; page 2 is unreferenced with age 3 > tau: it goes.
    assert victims("working-set", [1, 2, 3, 3, 3, 1, 4], 3, tick=3, tau=1) == (4, [2])


def test_wsclock():
    # tau 1, no tick. At 4 every page is referenced: the hand clears them all
    # (time 3); then none is older than tau; a full turn scheduled no write,
    # so the first clean page goes: 2 (1 is dirty; clock would take 1).
    assert victims("wsclock", [1, 2, 3, 4], 3, writes=bytes([1, 0, 0, 0]), tau=1) == (4, [2])
    # tau 0, both dirty and both in the set: no clean page, the one at the hand.
    assert victims("wsclock", [1, 2, 3], 2, writes=bytes([1, 1, 0]), tau=0) == (3, [2])


def test_mru():
    # OSTEP's MRU: 1 2 fill; 1 is used; 3 evicts the most recent: 1, which
    # is missed at once. (LRU would evict 2 and hit 1.)
    assert victims("mru", [1, 2, 1, 3, 1], 2) == (4, [1, 3])


@pytest.mark.parametrize("cls", TEXTBOOK, ids=[c.name for c in TEXTBOOK])
def test_every_textbook_policy_runs_in_a_machine(machine, cls):
    assert POLICIES[cls.name] is cls
    m = machine(frames=4, policy=cls.name, swap_mb=2)
    p = m.spawn()
    p.mmap(None, 0x10000000, length=16 * 4096)
    for r in range(3):
        for i in range(16):
            p.write(0x10000000 + i * 4096, bytes([i, r]))
    assert all(p.read(0x10000000 + i * 4096, 2) == bytes([i, 2]) for i in range(16))
    assert m.vmstat()["evictions"] > 0 and m.policy.name == cls.name


def test_tick_and_tau_reach_the_policies_from_the_command_line(tmp_path):
    import json
    from tests.conftest import run_vmlab
    refs = "3 3 4 1 2 1 5 1 3 2 0 3 4 5 0 1 5 5 2 0 5 2 5 5 4 3 4 5 1 2 2 4 3 4 3 4 0 3 1 5"
    (tmp_path / "t.txt").write_text(refs)
    pages = [int(x) for x in refs.split()]

    def faults(policy, *options):
        r = run_vmlab("trace", str(tmp_path / "t.txt"), "--frames", "3", "--policy", policy,
                      "--json", *options)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["results"][0]["faults"]
    assert faults("nfu", "--tick", "1") != faults("nfu", "--tick", "1000")
    assert faults("working-set", "--tick", "2", "--tau", "1") != \
        faults("working-set", "--tick", "2", "--tau", "100")
    from vmlab.replay.generic import replay_spec
    assert faults("aging", "--tick", "3") == replay_spec("aging", pages, bytes(len(pages)), 3, tick=3)
    r = run_vmlab("run", "thrash", "--policy", "wsclock", "--tau", "50", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"]
