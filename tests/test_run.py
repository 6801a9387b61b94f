"""`vmlab run`: every scenario passes its own checks at small frame counts,
and the views (vmstat stream, live frames, maps/smaps/swaps) come out."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_vmlab
from vmlab_scenarios import REGISTRY, ScenarioFailed
from vmlab_scenarios.common import scenario


@pytest.mark.parametrize("frames", [3, 6])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_scenario_verifies_itself_at_small_frame_counts(machine, name, frames):
    m = machine(frames=frames, swap_mb=16)
    lines = REGISTRY[name].run(m)
    assert lines and all(isinstance(l, str) and l for l in lines)
    assert m.vmstat()["pgfault"] > 0


@pytest.mark.parametrize("policy", ["fifo", "lru", "random"])
def test_scenarios_under_other_policies(machine, policy):
    for name in ("page-shuffle", "page-merge-mm", "cow"):
        REGISTRY[name].run(machine(frames=4, policy=policy, swap_mb=16))


def test_list():
    r = run_vmlab("run", "--list")
    assert r.returncode == 0
    names = [l.split()[0] for l in r.stdout.splitlines()[1:]]
    assert names == list(REGISTRY)


def test_run_json():
    r = run_vmlab("run", "page-linear", "--frames", "4", "--json")
    data = json.loads(r.stdout)
    assert r.returncode == 0 and data["ok"] and data["frames"] == 4
    assert data["vmstat"]["pswpout"] > 0 and data["fault_costs"]["swap"]["count"] > 0


def test_run_text_and_views():
    r = run_vmlab("run", "page-merge-mm", "--frames", "3", "--maps", "2", "--swaps")
    assert r.returncode == 0, r.stderr
    maps = r.stdout.split("--- pid 2 at exit: /proc/2/maps ---\n")[1].split("---")[0]
    assert maps.splitlines()[0].startswith("30000000-30004000 rw-s 00000000")
    assert maps.splitlines()[0].endswith("merge-mm-False.bin") and "[stack]" in maps
    assert "Filename" in r.stdout and r.stdout.rstrip().splitlines()[-1].startswith("ok (")
    r = run_vmlab("run", "page-parallel", "--frames", "4", "--smaps", "2")
    assert "Rss:" in r.stdout and "Swap:" in r.stdout


def test_vmstat_stream_has_honest_columns():
    r = run_vmlab("run", "thrash", "--frames", "5", "--latency", "500us", "--vmstat", "0.1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = lines.index("    r     swpd     free       si       so       bi       bo      flt   majflt")
    rows = []
    for line in lines[head + 1:]:
        if not (line.split() and all(x.isdigit() for x in line.split())):
            break                                          # the scenario's own report
        rows.append(line.split())
    assert len(rows) >= 2 and all(len(row) == 9 for row in rows)
    assert any(int(row[4]) > 0 for row in rows)             # so: KiB/s swapped out
    assert all(int(row[2]) == 0 for row in rows[:-1])       # memory stays full while thrashing


def test_live_view_without_a_terminal_prints_plain_frames():
    r = run_vmlab("run", "swap", "--frames", "4", "--latency", "1ms", "--live", "0.1")
    assert r.returncode == 0, r.stderr
    assert "--- frames at" in r.stdout and "pgfault" in r.stdout
    assert "\x1b[" not in r.stdout                            # no escape codes in a pipe


def test_a_failing_scenario_exits_1(capsys):
    from vmlab.runner import run_scenario

    @scenario("always-wrong", frames=2)
    def always_wrong(m):
        """Checks something false."""
        raise ScenarioFailed("the data was wrong on purpose")
    try:
        assert run_scenario("always-wrong") == 1
        assert "FAILED: ScenarioFailed: the data was wrong on purpose" in capsys.readouterr().out
    finally:
        del REGISTRY["always-wrong"]


@pytest.mark.parametrize("argv,why", [
    (["run"], "name a scenario"),
    (["run", "nope"], "no scenario 'nope'"),
    (["run", "swap", "--frames", "0"], "bad count"),
    (["run", "swap", "--policy", "opt"], "invalid choice"),
    (["run", "swap", "--vmstat", "1", "--live", "1"], "not allowed with"),
    (["run", "swap", "--lab", "/tmp", "--latency", "ssd"], "--latency applies"),
    (["run", "swap", "--lab", "/nonexistent"], "not a directory"),
])
def test_bad_arguments(argv, why):
    r = run_vmlab(*argv)
    assert r.returncode == 2 and why in r.stderr and r.stderr.count("\n") == 1, r.stderr
