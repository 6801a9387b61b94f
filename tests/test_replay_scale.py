"""Trace replay at scale: the numpy parsers agree with the exact ones,
streaming keeps memory bounded, folded repeats and one-pass curves count
exactly what per-size replays count."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import run_vmlab
from vmlab.replay import cells as cells_mod
from vmlab.replay.cells import make_cells, run_cells
from vmlab.replay.curves import lru_curve, opt_curve
from vmlab.replay.fastparse import lackey_block, refs_block
from vmlab.replay.lineparse import lackey_lines, refs_text
from vmlab.replay.policies import POLICIES, next_use
from vmlab.replay.traces import Trace, read_trace


def _lackey_text(rng: random.Random, lines: int) -> str:
    out = ["==7== Lackey, an example Valgrind tool"]
    for _ in range(lines):
        addr = rng.choice([rng.randrange(1 << 32), rng.randrange(1 << 40), (1 << 64) - 9 * 4096,
                           rng.randrange(64) * 4096 + 4090])
        digits = f"{addr:08x}"
        if rng.random() < 0.1:
            digits = digits.upper()
        size = rng.choice([1, 4, 8, 16, 4100, 9000])
        out.append(f"{rng.choice(['I ', ' L', ' S', ' M'])} {digits},{size}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("seed", range(20))
def test_the_numpy_lackey_parser_agrees_with_the_exact_one(seed):
    text = _lackey_text(random.Random(seed), 300)
    pages, writes = lackey_block(text.encode())
    exact_pages, exact_writes = lackey_lines(text.split("\n"))
    assert pages.tolist() == exact_pages.tolist() and writes.tolist() == list(exact_writes)


def test_what_the_numpy_parsers_do_not_take_goes_to_the_exact_ones():
    assert lackey_block(b"I 04000000,4\n") is None                   # one space: not lackey's own
    assert lackey_block(b" L 1,0\n") is None                         # a size of 0: the exact one says why
    assert lackey_block(b" L ffffffffffffffff,4\n") is None          # past 2^64
    assert lackey_block(b" X 1,4\n") is None and lackey_block(b" L 1,4") is None
    assert refs_block(b"1 2 # c") is None and refs_block(b"9" * 20) is None
    assert refs_block(b" \n\t").tolist() == [] and refs_block(b"1,2 ,3\r\n4").tolist() == [1, 2, 3, 4]
    for blob in (b"1,,2\n\n3 ", b"0 4503599627370495", b"  7"):
        assert refs_block(blob).tolist() == list(refs_text(blob.decode(), 1))


def test_a_real_lackey_trace_reads_the_same_by_both(tmp_path):
    log = tmp_path / "true.lackey"
    subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", "/bin/true"],
                   check=True, capture_output=True, timeout=120)
    t = read_trace(str(log))
    pages, writes = lackey_lines(log.read_text().split("\n"))
    assert len(t) > 100_000 and t.pages.tolist() == pages.tolist() and t.writes.tolist() == list(writes)
    assert t.distinct() == len(set(pages))


def test_next_use_in_chunks(monkeypatch):
    rng = random.Random(3)
    for chunk in (1, 2, 7, 1 << 20):
        monkeypatch.setattr("vmlab.replay.policies.CHUNK", chunk)
        refs = [rng.randrange(9) for _ in range(300)]
        want = [next((j for j in range(i + 1, len(refs)) if refs[j] == refs[i]), len(refs) + i)
                for i in range(len(refs))]
        assert next_use(np.array(refs)).tolist() == want


@pytest.mark.parametrize("seed", range(30))
def test_folded_repeats_and_chunks_count_exactly(seed, monkeypatch):
    rng = random.Random(seed)
    refs: list[int] = []
    while len(refs) < rng.randrange(1, 2000):
        refs += [rng.randrange(rng.randrange(1, 30))] * rng.choice([1, 1, 2, 5])
    monkeypatch.setattr(cells_mod, "FEED", rng.choice([1, 3, 50, 1 << 16]))
    n = rng.randrange(1, 12)
    cells = make_cells(["fifo", "lru", "opt", "clock", "random"], [n], seed=4)
    run_cells(cells, Trace(np.array(refs, np.int64), np.zeros(len(refs), np.uint8)))
    assert {c.name: c.faults for c in cells} == {p: POLICIES[p](refs, n, 4) for p in POLICIES}


@pytest.mark.parametrize("seed", range(30))
def test_one_pass_curves_equal_replays_at_every_size(seed):
    rng = random.Random(seed)
    refs = [rng.randrange(rng.randrange(1, 50)) for _ in range(rng.randrange(1, 600))]
    k = rng.randrange(1, 40)
    pages = np.array(refs, np.int64)
    assert lru_curve(pages, k).tolist() == [POLICIES["lru"](refs, n) for n in range(1, k + 1)]
    assert opt_curve(pages, k).tolist() == [POLICIES["opt"](refs, n) for n in range(1, k + 1)]


def test_curves_of_a_real_trace_from_the_cli(tmp_path):
    log = tmp_path / "true.lackey"
    subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={log}", "/bin/true"],
                   check=True, capture_output=True, timeout=120)
    r = run_vmlab("trace", str(log), "--policy", "lru,opt,fifo,clock", "--frames", "1-24",
                  "--curve", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    got = {(x["policy"], x["frames"]): x["faults"] for x in json.loads(r.stdout)["results"]}
    refs = read_trace(str(log)).pages.tolist()
    for policy in ("lru", "opt", "fifo", "clock"):
        for n in (1, 2, 5, 11, 24):
            assert got[policy, n] == POLICIES[policy](refs, n), (policy, n)
    table = run_vmlab("trace", str(log), "--policy", "lru", "--frames", "1-24", "--curve")
    assert table.returncode == 0 and "miss-ratio curve" in table.stdout
    assert f"{got['lru', 24]} (" in table.stdout


@pytest.mark.parametrize("frames", ["5-3", "0-4", "1-5000", "1-", "a-b"])
def test_bad_frame_ranges(tmp_path, frames):
    p = tmp_path / "t.txt"
    p.write_text("1 2 3")
    r = run_vmlab("trace", str(p), "--frames", frames)
    assert r.returncode == 2 and "bad frame counts" in r.stderr and r.stderr.count("\n") == 1


def _peak_kib(args: list[str]) -> int:
    """Peak RSS (KiB) of a fresh interpreter running the vmlab CLI."""
    code = ("import sys\nsys.argv = ['vmlab', 'trace'] + sys.argv[1:]\n"
            "from vmlab.front.cli import main\nrc = main()\n"
            "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
            "print(hwm[0], file=sys.stderr)\nsys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return int(r.stderr.split()[-1])


def test_memory_is_bounded_streaming_and_16_bytes_a_reference_with_opt(tmp_path):
    rng = np.random.default_rng(1)
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    n = 4_000_000
    np.savetxt(big, rng.integers(0, 5000, n), fmt="%d")
    np.savetxt(small, rng.integers(0, 5000, 1000), fmt="%d")
    base = _peak_kib([str(small), "--policy", "lru,clock", "--frames", "64"])
    streamed = _peak_kib([str(big), "--policy", "lru,clock", "--frames", "64"])
    assert streamed - base < 48 << 10, (streamed, base)        # not 9 bytes a reference: streamed
    held = _peak_kib([str(big), "--policy", "lru,opt", "--frames", "64"])
    assert held - base < (16 * n >> 10) + (16 << 10), (held, base)   # 13 B a reference + blocks
