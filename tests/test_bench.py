"""`vmlab bench` runs and reports every figure with its ratio (the figures
themselves are this machine's, so nothing here asserts a speed)."""

from __future__ import annotations

import json

from tests.conftest import run_vmlab
from vmlab.bench import PLAIN, locality_trace
from vmlab.replay import POLICIES


def test_quick_bench_json_has_every_figure():
    r = run_vmlab("bench", "--quick", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("minor_fault", "swap_in", "filesystem"):
        assert d[key]["ratio"] > 0 and d[key]["target"] > 0
    assert d["swap_in"]["fuse_ratio"] > 0 and d["filesystem"]["minimal_ns"] > 0
    assert {x["policy"] for x in d["policy_replay"]["policies"]} == {"fifo", "lru", "clock", "opt"}
    assert d["policy_replay"]["opt_growth_4x"] > 0
    assert d["vm_replay"]["hits"] + d["vm_replay"]["faults"] == d["vm_replay"]["refs"]
    assert len(d["scale"]["address_space"]) >= 3 and len(d["scale"]["processes"]) >= 3
    assert len(d["targets"]) == 6 and all(isinstance(t["met"], bool) for t in d["targets"])


def test_quick_bench_text_ends_with_the_targets():
    r = run_vmlab("bench", "--quick", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Faults and requests" in r.stdout and r.stdout.strip().splitlines()[-8] == "Targets"
    assert "measuring" in r.stderr                # progress goes to stderr when piped


def test_plain_loops_count_what_the_fast_ones_count():
    refs = locality_trace(3000)
    for name, plain in PLAIN.items():
        for n in (1, 7, 32):
            assert plain(refs, n) == POLICIES[name](refs, n)
