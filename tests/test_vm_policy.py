"""Replacement inside a real Machine follows the textbook definitions, and
the Machine cleans up after itself however it ends."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import pytest

import vmlab_fs
from tests.reference_policies import BELADY, REF
from vmlab import Machine

PAGE = 4096


def machine_faults(machine, policy, frames, refs, write_every=0):
    m = machine(frames=frames, policy=policy, swap_mb=1)
    p = m.spawn()
    base = p.mmap(None, 0x10000000, length=(max(refs) + 1) * PAGE)
    written = set()
    for k, r in enumerate(refs):
        if write_every and k % write_every == 0:
            p.write(base + r * PAGE, bytes([r]))
            written.add(r)
        else:
            assert p.read(base + r * PAGE, 1) == bytes([r if r in written else 0])
    s = m.vmstat()
    return s["zero_faults"] + s["swap_faults"]


@pytest.mark.parametrize("policy", ["clock", "fifo", "lru"])
def test_belady_string(machine, policy):
    for frames in (3, 4):
        assert machine_faults(machine, policy, frames, BELADY) == REF[policy](BELADY, frames)
    if policy == "fifo":                      # Belady's anomaly, through a real Machine
        assert machine_faults(machine, "fifo", 4, BELADY) > machine_faults(machine, "fifo", 3, BELADY)


@pytest.mark.parametrize("policy", ["clock", "fifo", "lru"])
@pytest.mark.parametrize("seed", range(4))
def test_random_strings_match_the_reference(machine, policy, seed):
    rng = random.Random(seed)
    refs = [rng.randrange(9) for _ in range(60)]
    frames = rng.randint(1, 6)
    assert machine_faults(machine, policy, frames, refs, write_every=3) == REF[policy](refs, frames)


def test_random_policy_is_repeatable(machine):
    refs = [random.Random(1).randrange(10) for _ in range(80)]
    a = [machine_faults(machine, "random", 4, refs) for _ in range(2)]
    assert a[0] == a[1] > 0


def test_unknown_policy_and_opt_are_refused():
    with pytest.raises(ValueError, match="unknown policy"):
        Machine(policy="belady")
    with pytest.raises(ValueError, match="vmlab trace"):
        Machine(policy="opt")


def test_machine_unmounts_when_the_block_raises():
    with pytest.raises(RuntimeError):
        with Machine(frames=2) as m:
            mnt = m.lab
            m.spawn().write(0xC0000000 - 8, b"x")
            raise RuntimeError("boom")
    assert vmlab_fs.mounted_fstype(mnt) is None and not os.path.exists(mnt)


def test_machine_unmounts_at_interpreter_exit():
    code = "from vmlab import Machine; m = Machine(frames=2); print(m.lab, flush=True)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    mnt = out.stdout.strip()
    assert out.returncode == 0 and mnt.startswith("/")
    assert vmlab_fs.mounted_fstype(mnt) is None and not os.path.exists(mnt)


def hand_walk(policy, candidates):
    """The clock hand the textbook way, one frame at a time for two turns
    and one more, passing over frames that may not go."""
    allowed = {f.index: f for f in candidates}
    for _ in range(2 * policy.nframes + 1):
        f = allowed.get(policy.hand)
        policy.hand = (policy.hand + 1) % policy.nframes
        if f is not None:
            yield f


def test_the_hand_found_by_bisection_walks_as_the_textbook_hand():
    """Any candidates, any hand, stopped anywhere or run out: the same frames
    in the same order, the same hand after each and at the end."""
    from types import SimpleNamespace
    from vmlab.core.policy import under_the_hand
    rng = random.Random(4)
    for _ in range(5000):
        n = rng.randint(1, 12)
        frames = [SimpleNamespace(index=i) for i in range(n)]
        candidates = sorted(rng.sample(frames, rng.randint(1, n)), key=lambda f: f.index)
        hand, stop = rng.randrange(n), rng.choice([None, rng.randint(0, 3 * n)])
        walks = []
        for walk in (hand_walk, under_the_hand):
            policy, seen = SimpleNamespace(nframes=n, hand=hand), []
            for k, f in enumerate(walk(policy, candidates)):
                seen.append((f.index, policy.hand))
                if k == stop:
                    break
            walks.append((seen, policy.hand))
        assert walks[0] == walks[1], (n, [f.index for f in candidates], hand, stop)
