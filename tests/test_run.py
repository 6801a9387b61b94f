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
    assert all(int(row[8]) <= int(row[7]) for row in rows)  # never more major faults than faults


def test_a_sample_never_sees_half_a_fault():
    """A sampling thread reads the counters while faults are served: a
    fault is counted whole or not at all."""
    import threading
    from vmlab import Machine
    with Machine(frames=4, swap_mb=2) as m:
        p = m.spawn()
        a = p.mmap(None, 0x10000000, length=64 * 4096)
        bad, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                s = m.vmstat()
                cases = sum(s[c + "_faults"] for c in ("zero", "stack", "cow", "elf", "mmap",
                                                      "pagecache", "swap"))
                if cases != s["pgfault"] or s["pgmajfault"] > s["pgfault"]:
                    bad.append(s)
        t = threading.Thread(target=sample)
        t.start()
        try:
            for _ in range(20):
                for i in range(64):
                    p.write(a + i * 4096, b"x")
        finally:
            stop.set()
            t.join()
        assert not bad and m.vmstat()["pgfault"] > 1000


def test_reclaim_is_timed_apart_from_the_fault_that_needed_it():
    """With a slow disk, a zero-fill fault that had to evict a dirty page
    costs the eviction's write: that time is reclaim's, said as such."""
    r = run_vmlab("run", "thrash", "--latency", "2ms", "--json", timeout=120)
    costs = json.loads(r.stdout)["fault_costs"]
    assert costs["reclaim"]["count"] == json.loads(r.stdout)["vmstat"]["pgsteal"] > 0
    assert costs["reclaim"]["median_ns"] >= 2_000_000           # a swap-out write each
    assert costs["zero"]["median_ns"] < 1_000_000               # the fault alone: no disk


def test_views_of_processes_that_are_there_or_an_error():
    r = run_vmlab("run", "mmap", "--maps", "1")
    before = r.stdout.split("--- pid 1 before munmap(0x10000000): /proc/1/maps ---\n")[1]
    assert before.splitlines()[0].endswith("/data.bin")     # the mapping, while it is there
    r = run_vmlab("run", "mmap", "--maps", "99")
    assert r.returncode == 2 and "--maps 99: no such process in mmap (its pids: 1)" in r.stderr


def test_run_on_a_lab_shows_its_real_latency(tmp_path):
    mnt = tmp_path / "m"
    mnt.mkdir()
    assert run_vmlab("mount", str(mnt), "--backing", str(tmp_path), "--latency", "ssd").returncode == 2
    back = tmp_path / "b"
    back.mkdir()
    assert run_vmlab("mount", str(mnt), "--backing", str(back), "--latency", "ssd").returncode == 0
    try:
        with open(mnt / ".vmlab" / "control", "w") as f:
            f.write("latency 250us\n")
        r = run_vmlab("run", "zero-page", "--lab", str(mnt))
        assert r.stdout.splitlines()[0].split(", ")[2] == "latency 250us"
    finally:
        assert run_vmlab("umount", str(mnt)).returncode == 0


def test_live_view_without_a_terminal_prints_plain_frames():
    r = run_vmlab("run", "swap", "--frames", "4", "--latency", "1ms", "--live", "0.1")
    assert r.returncode == 0, r.stderr
    assert "--- frames at" in r.stdout and "pgfault" in r.stdout
    assert "\x1b[" not in r.stdout                            # no escape codes in a pipe


def test_a_failing_scenario_exits_1(capsys):
    from vmlab.front.runner import run_scenario

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
    (["run", "swap", "--policy", "opt"], "opt needs to know the future"),
    (["run", "swap", "--vmstat", "1", "--live", "1"], "not allowed with"),
    (["run", "swap", "--lab", "/tmp", "--latency", "ssd"], "--latency applies"),
    (["run", "swap", "--lab", "/nonexistent"], "not a directory"),
])
def test_bad_arguments(argv, why):
    r = run_vmlab(*argv)
    assert r.returncode == 2 and why in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_vmstat_ends_with_the_same_io_counted_three_ways():
    r = run_vmlab("run", "thrash", "--vmstat", "0.05")
    lines = r.stdout.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("the same I/O, counted three ways"))
    rows = [l.split()[-2:] for l in lines[at + 1:at + 4]]
    assert [l.split(":")[0] for l in lines[at + 1:at + 4]] == ["VM", "lab", "host"]
    assert rows[0] == rows[1] == rows[2] and int(rows[0][0]) > 100, rows
