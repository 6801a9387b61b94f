"""`vmlab bench` runs and reports every figure with its ratio (the figures
themselves are this machine's, so nothing here asserts a speed)."""

from __future__ import annotations

import json

from tests.conftest import run_vmlab
from tests.reference_policies import REF
from vmlab.front.bench import REPLAY_WITHIN, locality_trace
from vmlab.front.plainloop import PLAIN
from vmlab.replay.policies import POLICIES


def test_quick_bench_json_has_every_figure():
    r = run_vmlab("bench", "--quick", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    close = lambda a, b: abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1)
    # Every ratio is the quotient of the two figures it reports, measured in this run.
    mf, sw, fsr, sc = d["minor_fault"], d["swap_in"], d["filesystem"], d["scale"]
    assert min(mf["kernel_fault_ns"], mf["vmlab_fault_ns"], sw["swapin_ns"], sw["mount_read_ns"],
               sw["backing_read_ns"], fsr["lab_ns"], fsr["minimal_ns"]) > 0
    assert close(mf["ratio"], mf["vmlab_fault_ns"] / mf["kernel_fault_ns"])
    assert close(sw["ratio"], sw["swapin_ns"] / sw["mount_read_ns"])
    assert close(sw["fuse_ratio"], sw["mount_read_ns"] / sw["backing_read_ns"])
    assert close(fsr["ratio"], fsr["lab_ns"] / fsr["minimal_ns"])
    costs = [x["fault_ns"] for x in sc["address_space"]]
    assert len(costs) >= 3 and len(sc["processes"]) >= 3
    assert close(sc["flatness"], max(costs) / min(costs))
    rp = d["policy_replay"]
    assert {x["policy"] for x in rp["policies"]} == {"fifo", "lru", "clock", "opt"}
    for x in rp["policies"]:
        assert 0 < x["faults"] <= rp["refs"] and x["peak_mib"] > 0 and x["plain_peak_mib"] > 0
        assert close(x["ratio"], x["seconds"] / x["plain_seconds"])
        assert close(x["refs_per_s"], rp["refs"] / x["seconds"])
    assert d["vm_replay"]["hits"] + d["vm_replay"]["faults"] == d["vm_replay"]["refs"]
    # Each target is judged on the figure it names, against its own bound.
    ratio = {x["policy"]: x["ratio"] for x in rp["policies"]}
    judged = [(mf["ratio"], mf["ratio"] <= mf["target"]), (sw["ratio"], sw["ratio"] <= sw["target"]),
              (fsr["ratio"], fsr["ratio"] <= fsr["target"])] + \
             [(ratio[p], ratio[p] <= bound) for p, bound in REPLAY_WITHIN.items()] + \
             [(sc["flatness"], sc["flatness"] <= sc["target"])]
    rf = d["real_faults"]                     # CI runs as root: userfaultfd is there
    assert "skipped" not in rf, rf
    assert min(rf["zero_fault_ns"], rf["kernel_fault_ns"], rf["swapin_fault_ns"],
               rf["mount_read_ns"], rf["scan_faults_per_s"]) > 0
    assert close(rf["zero_ratio"], rf["zero_fault_ns"] / rf["kernel_fault_ns"])
    assert close(rf["swapin_ratio"], rf["swapin_fault_ns"] / (rf["mount_read_ns"] + rf["zero_fault_ns"]))
    assert close(rf["swapin_mean_ratio"], rf["swapin_mean_ns"] / (rf["mount_read_ns"] + rf["zero_fault_ns"]))
    assert 1 <= rf["reclaim_batch"] <= 32
    assert rf["fastpath"] and rf["fastpath_missing"] is None     # built here, so measured
    assert rf["py_zero_fault_ns"] > 0
    assert close(rf["py_swapin_ratio"], rf["py_swapin_fault_ns"] / (rf["mount_read_ns"] + rf["py_zero_fault_ns"]))
    judged.append((rf["swapin_ratio"], rf["swapin_ratio"] <= rf["target"]))
    assert [(t["measured"], t["met"]) for t in d["targets"]] == judged


def test_quick_bench_text_ends_with_the_targets():
    r = run_vmlab("bench", "--quick", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Real faults (userfaultfd" in r.stdout
    assert "Faults and requests" in r.stdout and r.stdout.strip().splitlines()[-10] == "Targets"
    assert "measuring" in r.stderr                # progress goes to stderr when piped


def test_plain_loops_count_what_the_fast_ones_count():
    """The bench races equal work: its plain loops count what replay counts,
    and both what the textbook definitions (the tests' own) count."""
    refs = locality_trace(600)
    for name, plain in PLAIN.items():
        for n in (1, 7, 32):
            assert plain(refs, n) == POLICIES[name](refs, n) == REF[name](refs, n)
