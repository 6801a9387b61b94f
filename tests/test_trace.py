"""`vmlab trace`: parsing, exact fault counts, JSON, plots, --vm."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from tests.conftest import run_vmlab
from tests.reference_policies import BELADY, REF
from vmlab.replay.policies import POLICIES
from vmlab.replay.traces import TraceError, parse_lackey, parse_refs, read_trace


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# -- counts -------------------------------------------------------------------

def test_belady_and_ostep_textbook_strings():
    assert [POLICIES["fifo"](BELADY, n) for n in (3, 4)] == [9, 10]     # Belady's anomaly
    ostep = [0, 1, 2, 0, 1, 3, 0, 3, 1, 2, 1]                           # OSTEP ch. 22
    assert {p: POLICIES[p](ostep, 3) for p in ("fifo", "lru", "opt")} == {"fifo": 7, "lru": 5, "opt": 5}


@pytest.mark.parametrize("seed", range(40))
def test_random_strings_match_the_definitions(seed):
    rng = random.Random(seed)
    refs = [rng.randrange(rng.randint(1, 12)) for _ in range(rng.randint(1, 120))]
    for n in range(1, 8):
        for name, ref in REF.items():
            assert POLICIES[name](refs, n) == ref(refs, n), (name, n, refs)


def test_opt_is_never_beaten_and_random_is_repeatable():
    rng = random.Random(7)
    refs = [rng.randrange(30) for _ in range(3000)]
    for n in (2, 5, 10, 20):
        best = POLICIES["opt"](refs, n)
        assert all(POLICIES[p](refs, n) >= best for p in POLICIES)
    assert POLICIES["random"](refs, 5, seed=3) == POLICIES["random"](refs, 5, seed=3)


# -- parsing ------------------------------------------------------------------

def test_refs_format():
    t = parse_refs(["1,2, 3\t4", "5 # comment", "", "  6  "])
    assert list(t.pages) == [1, 2, 3, 4, 5, 6] and set(t.writes) == {0}


def test_lackey_format_spans_and_modify():
    t = parse_lackey(["==123== Lackey, an example Valgrind tool",
                      "I  04000ffc,8",          # spans two pages
                      " L 7ff0000a,4",
                      " S 7ff0000a,4",
                      " M 00001000,8",          # a load and a store
                      "==123== "])
    assert [hex(p) for p in t.pages] == ["0x4000", "0x4001", "0x7ff00", "0x7ff00", "0x1", "0x1"]
    assert list(t.writes) == [0, 0, 0, 1, 0, 1]


def test_real_valgrind_lackey_trace(tmp_path):
    log = tmp_path / "true.lackey"
    r = subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}",
                        "/bin/true"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    t = read_trace(str(log))                       # sniffed as lackey
    assert len(t) > 10_000 and 10 < t.distinct() < 1000
    out = run_vmlab("trace", str(log), "--frames", "8,32", "--json")
    data = json.loads(out.stdout)
    assert data["refs"] == len(t) and data["pages"] == t.distinct()


BAD_TRACES = [
    ("empty", ""),
    ("only comments", "# nothing\n\n"),
    ("word", "1 2 three\n"),
    ("negative", "1 -2\n"),
    ("huge page", "1 99999999999999999999999\n"),
    ("lackey bad hex", "==1== x\nI  04zz0000,4\n"),
    ("lackey truncated", "==1== x\n L 0400\n"),
    ("lackey zero size", "==1== x\n S 04000000,0\n"),
    ("lackey huge size", "==1== x\n L 0,999999999999\n"),     # once hung the parser
    ("lackey past the top", "==1== x\n L ffffffffffffffff,8\n"),
    ("lackey mixed", "==1== x\n L 04000000,4\n12 13\n"),
]


@pytest.mark.parametrize("name,text", BAD_TRACES, ids=[n for n, _ in BAD_TRACES])
def test_bad_traces_are_one_line_errors(tmp_path, name, text):
    path = write(tmp_path, "t.txt", text)
    with pytest.raises(TraceError):
        read_trace(path)
    r = run_vmlab("trace", path, "--frames", "3")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_binary_junk_is_refused(tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(bytes(range(256)) * 10)
    r = run_vmlab("trace", str(p), "--frames", "3")
    assert r.returncode == 2 and "not a text file" in r.stderr


# -- the command ----------------------------------------------------------------

def test_json_matches_design(tmp_path):
    path = write(tmp_path, "b.txt", ",".join(map(str, BELADY)))
    r = run_vmlab("trace", path, "--frames", "3,4", "--policy", "fifo,lru,opt,clock", "--json")
    data = json.loads(r.stdout)
    assert set(data) == {"refs", "pages", "results"} and (data["refs"], data["pages"]) == (12, 5)
    assert all(set(x) == {"policy", "frames", "faults", "hits"} for x in data["results"])
    got = {(x["policy"], x["frames"]): x["faults"] for x in data["results"]}
    assert got == {(p, n): REF[p](BELADY, n) for p in ("fifo", "lru", "opt", "clock") for n in (3, 4)}
    assert all(x["faults"] + x["hits"] == 12 for x in data["results"])


def test_table_from_stdin_and_plot(tmp_path):
    png = tmp_path / "belady.png"
    r = subprocess.run([sys.executable,
                        "-m", "vmlab", "trace", "-", "--frames", "1,2,3,4,5", "--plot", str(png)],
                       input=" ".join(map(str, BELADY)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    fifo = next(l for l in r.stdout.splitlines() if l.startswith("fifo")).split()
    assert fifo[1:] == ["12", "12", "9", "10", "5"]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_vm_replay_agrees_and_moves_data(tmp_path):
    rng = random.Random(3)
    path = write(tmp_path, "r.txt", " ".join(str(rng.randrange(12)) for _ in range(150)))
    r = run_vmlab("trace", path, "--frames", "2,5", "--policy", "fifo,lru,clock,opt", "--vm", "--json")
    data = json.loads(r.stdout)
    for x in data["results"]:
        if x["policy"] == "opt":
            assert x["vm"] is None
        else:
            assert x["vm"]["agrees"] and x["vm"]["faults"] == x["faults"]
            assert x["vm"]["pswpin"] > 0 and x["vm"]["pswpout"] > 0


def test_vm_replay_on_a_vmlab_mount(tmp_path):
    mnt, back = tmp_path / "m", tmp_path / "b"
    mnt.mkdir()
    back.mkdir()
    assert run_vmlab("mount", str(mnt), "--backing", str(back)).returncode == 0
    try:
        path = write(tmp_path, "r.txt", ",".join(map(str, BELADY)))
        r = run_vmlab("trace", path, "--frames", "3", "--policy", "fifo", "--vm", "--lab", str(mnt), "--json")
        assert json.loads(r.stdout)["results"][0]["vm"]["agrees"]
        stats = json.loads(run_vmlab("stat", str(mnt), "--json").stdout)
        assert stats["stats"]["reads"] > 0            # swap-ins went through this mount
    finally:
        assert run_vmlab("umount", str(mnt)).returncode == 0


@pytest.mark.parametrize("argv,why", [
    (["--frames", "0"], "bad frame counts"),
    (["--frames", "3,x"], "bad frame counts"),
    (["--frames", "3", "--policy", "belady"], "bad policy"),
    (["--frames", "3", "--format", "csv"], "invalid choice"),
    (["--frames", "3", "--lab", "/tmp"], "--lab goes with --vm"),
    (["--frames", "3", "--plot", "out.jpg"], ".png"),
    ([], "required"),
])
def test_bad_arguments(tmp_path, argv, why):
    path = write(tmp_path, "b.txt", "1 2 3")
    r = run_vmlab("trace", path, *argv)
    assert r.returncode == 2 and why in r.stderr and r.stderr.count("\n") == 1


def test_missing_file():
    r = run_vmlab("trace", "/nonexistent/trace", "--frames", "3")
    assert r.returncode == 2 and "No such file" in r.stderr


# -- streaming: bounded memory, hostile sizes -------------------------------------

def _peak_kib_reading(path: str) -> tuple[int, str]:
    """Peak RSS (KiB) of a fresh interpreter that reads ``path`` as a trace."""
    # VmHWM, not ru_maxrss: that one keeps the forking parent's peak across exec.
    code = ("import sys\nfrom vmlab.replay.traces import TraceError, read_trace\n"
            "try:\n    r = len(read_trace(sys.argv[1]))\nexcept TraceError as e:\n    r = str(e)\n"
            "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
            "print(hwm[0], r)")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split(" ", 1)
    return int(out[0]), out[1].strip()


def test_non_traces_are_refused_within_the_first_block(tmp_path):
    r = run_vmlab("trace", "/dev/zero", "--frames", "3", timeout=30)   # endless
    assert r.returncode == 2 and "not a text file" in r.stderr and r.stderr.count("\n") == 1
    nul = tmp_path / "nul.bin"
    with open(nul, "wb") as f:
        f.truncate(200 << 20)                                   # 200 MB of NUL bytes
    base, _ = _peak_kib_reading(write(tmp_path, "tiny.txt", "1 2 3"))
    peak, why = _peak_kib_reading(str(nul))
    assert "not a text file" in why and peak - base < 16 << 10, (peak, base)
    (tmp_path / "a.txt").write_text("a" * (50 << 20))           # one 50 MB word
    peak, why = _peak_kib_reading(str(tmp_path / "a.txt"))
    assert "line 1" in why and "not a page number" in why and peak - base < 16 << 10


def test_a_trace_streams_whatever_its_line_layout(tmp_path):
    from vmlab.replay.traces import BLOCK
    refs = [random.Random(5).randrange(1 << 40) for _ in range(400_000)]
    one_line = write(tmp_path, "one.txt", " ".join(map(str, refs)))     # spans several blocks
    assert os.path.getsize(one_line) > 2 * BLOCK
    assert list(read_trace(one_line).pages) == refs
    comment = "1, 2 # " + "x" * (BLOCK + 10) + "\n3 #\n4"              # a comment past a block
    assert list(read_trace(write(tmp_path, "c.txt", comment)).pages) == [1, 2, 3, 4]
    bad = write(tmp_path, "bad.txt", "1\n" * (BLOCK // 2) + "7 x9\n")
    with pytest.raises(TraceError, match=f"line {BLOCK // 2 + 1}: 'x9'"):
        read_trace(bad)
    long_lackey = write(tmp_path, "l.txt", "==1== x\n L 0" + "0" * BLOCK + ",4\n")
    with pytest.raises(TraceError, match="line 2: longer than"):
        read_trace(long_lackey)


def test_the_plot_ticks_are_whole_frames():
    from vmlab.front.plot import figure
    from vmlab.front.tracecmd import replay_all
    from vmlab.replay.traces import parse_refs
    data = replay_all(parse_refs([" ".join(map(str, BELADY))]), ["fifo", "lru"], [1, 2, 3, 4, 5])
    fig = figure(data, "belady")
    for ticks in (fig.axes[0].get_xticks(), fig.axes[0].get_yticks()):
        assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks), ticks


def test_plot_without_matplotlib_says_what_to_install(tmp_path, monkeypatch, capsys):
    """The lean install (and container image) has no matplotlib."""
    import importlib.util
    from vmlab.front.cli import main
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    path = write(tmp_path, "b.txt", " ".join(map(str, BELADY)))
    assert main(["trace", path, "--frames", "3", "--plot", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'vmlab[plot]'" in err and err.count("\n") == 1
    assert not (tmp_path / "b.png").exists()


def test_policy_only_replay_imports_no_machine(tmp_path):
    """vmlab trace without --vm never loads the VM, the lab or psutil."""
    path = write(tmp_path, "b.txt", " ".join(map(str, BELADY)))
    code = ("import sys\nfrom vmlab.front.cli import main\n"
            f"assert main(['trace', {path!r}, '--frames', '3', '--json']) == 0\n"
            "print(sorted(m for m in ('vmlab.core.machine', 'vmlab_fs', 'psutil') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr


# OSTEP's paging-policy.py -c on Belady's string, 3 frames: its Hit/Miss column.
OSTEP = {"fifo": "MMMMMMMHHMMH", "lru": "MMMMMMMHHMMM", "opt": "MMMMHHMHHMMH"}


def test_explain_matches_ostep_step_by_step(tmp_path):
    path = write(tmp_path, "b.txt", " ".join(map(str, BELADY)))
    r = run_vmlab("trace", path, "--frames", "3", "--policy", "fifo,lru,opt,clock", "--explain")
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [f"{p}, 3 frames" for p in ("fifo", "lru", "opt", "clock")]
    for block, policy in zip(blocks, ("fifo", "lru", "opt", "clock")):
        steps = block.splitlines()[2:-1]
        seq = "".join("H" if line.split()[2] == "hit" else "M" for line in steps)
        assert len(steps) == 12 and seq == OSTEP.get(policy, seq)
        misses = seq.count("M")
        assert block.splitlines()[-1] == f"FINALSTATS hits {12 - misses}   misses {misses}   hitrate {100 * (12 - misses) / 12:.2f}"
        assert misses == REF[policy](BELADY, 3)
    fifo = blocks[0].splitlines()
    assert fifo[5].split()[3:] == ["1", "[2", "3", "4]"]         # 4 replaces 1; FIFO order
    assert "> " in blocks[3] and "(R)" in blocks[3] and "(R)" not in blocks[0]
    long = write(tmp_path, "long.txt", " ".join(["1"] * 6000))
    r = run_vmlab("trace", long, "--frames", "3", "--explain")
    assert r.returncode == 2 and "at most 5000 references" in r.stderr
    r = run_vmlab("trace", path, "--frames", "3", "--explain", "--json")
    assert r.returncode == 2 and "--explain goes alone" in r.stderr
