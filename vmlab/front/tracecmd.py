"""``vmlab trace``: fault counts of a trace under several policies and
frame counts, policy-only or through a real Machine (``--vm``)."""

from __future__ import annotations

import time
from typing import Any

from vmlab.replay.cells import make_cells, results, run_cells
from vmlab.replay.traces import Trace

VM_COUNTERS = ("pgfault", "pgmajfault", "pswpin", "pswpout", "evictions")


SWEEP = 4                   # frame counts from which a sweep beats one pass of every cell


def needs_whole(policies: list[str], frames: list[int]) -> bool:
    """Whether a replay of these must hold the trace in memory (opt looks
    ahead; a sweep replays it once a frame count); else it streams."""
    return "opt" in policies or len(frames) >= SWEEP


def replay_all(source: Any, policies: list[str], frames: list[int],
               seed: int = 0, **options: Any) -> dict[str, Any]:
    """``{"refs": N, "pages": distinct, "results": [{"policy", "frames", "faults", "hits"}]}``
    of a Trace, or of a TraceStream when ``needs_whole`` says no: one pass
    feeds every policy and frame count; from SWEEP frame counts on, lru and
    opt take one stack pass for all of them and the others one replay a
    frame count, across the CPUs."""
    if isinstance(source, Trace) and len(frames) >= SWEEP:
        out = [r for p in policies for r in _sweep(source, p, frames, seed, **options)]
    else:
        cells = make_cells(policies, frames, seed, **options)
        run_cells(cells, source)
        out = results(cells, len(source))
    return {"refs": len(source), "pages": source.distinct(), "results": out}


def _sweep(trace: Trace, policy: str, frames: list[int], seed: int, **options: Any) -> list[dict[str, Any]]:
    from vmlab.core.registry import policy_class
    from vmlab.replay.curves import sweep
    t0 = time.perf_counter()
    faults = sweep(trace, policy, frames, seed, **options)
    each = round((time.perf_counter() - t0) / len(frames), 6)
    name = policy_class(policy).name if ":" in policy else policy
    return [{"policy": name, "frames": n, "faults": f, "hits": len(trace) - f, "seconds": each}
            for n, f in zip(frames, faults)]


def replay_vm(trace: Trace, policy: str, frames: int, lab: str | None, seed: int = 0) -> dict[str, int]:
    """Replay through a real Machine. Each distinct page gets a page of an
    anonymous mapping; a store writes a tag (its index) into it, a load
    checks the tag (or zeros, if nothing was stored yet). So the data really
    moves through swap and is verified on the way back, and the dirty bits
    are the trace's own (a policy that looks at them sees what the trace did).
    A trace with no stores at all (a reference string) has each page
    written at its first reference instead, so its pages go to swap."""
    from vmlab import Machine
    index: dict[int, int] = {}
    pages, writes = trace.pages.tolist(), trace.writes.tolist()
    for p in pages:
        index.setdefault(p, len(index))
    swap_mb = max(1, (len(index) * 4096 * 2) >> 20)
    with Machine(frames=frames, policy=policy, swap_mb=swap_mb, lab=lab, seed=seed) as m:
        proc = m.spawn()
        base = proc.mmap(None, 0x10000000, length=len(index) * 4096)
        read, write = proc.read, proc.write
        stored = bytearray(len(index))
        zeros = bytes(8)
        first_touch_stores = not any(writes)
        for p, w in zip(pages, writes):
            i = index[p]
            addr, tag = base + (i << 12), (i + 1).to_bytes(8, "little")
            if w or (first_touch_stores and not stored[i]):
                write(addr, tag)
                stored[i] = 1
            elif read(addr, 8) != (tag if stored[i] else zeros):
                raise RuntimeError(f"page {p:#x} came back with the wrong data")
        s = m.vmstat()
    out = {k: s[k] for k in VM_COUNTERS}
    out["faults"] = s["zero_faults"] + s["swap_faults"]
    return out


def render_results(data: dict[str, Any], name: str) -> None:
    from vmlab.front.term import print_table
    frames = sorted({r["frames"] for r in data["results"]})
    policies = list(dict.fromkeys(r["policy"] for r in data["results"]))
    cell = {(r["policy"], r["frames"]): r for r in data["results"]}
    rows = []
    for p in policies:
        row = [p]
        for n in frames:
            r = cell[p, n]
            vm = r.get("vm")
            extra = f" (vm {vm['faults']})" if vm else ""
            row.append(f"{r['faults']}{extra}")
        rows.append(row)
    print_table(["policy"] + [f"{n} frames" for n in frames], rows,
                title=f"{name}: {data['refs']} references, {data['pages']} distinct pages; "
                      "faults by policy and frames",
                right=[False] + [True] * len(frames))


def render_curve(data: dict[str, Any], name: str) -> None:
    """The miss-ratio curve as a table: a row per frame count, the faults
    and the miss ratio of each policy."""
    from vmlab.front.term import print_table
    policies = list(dict.fromkeys(r["policy"] for r in data["results"]))
    cell = {(r["policy"], r["frames"]): r["faults"] for r in data["results"]}
    frames = sorted({r["frames"] for r in data["results"]})
    refs = data["refs"]
    rows = [[str(n)] + [f"{cell[p, n]} ({cell[p, n] / refs:.2%})" for p in policies] for n in frames]
    print_table(["frames"] + [f"{p} faults (miss ratio)" for p in policies], rows,
                title=f"{name}: {refs} references, {data['pages']} distinct pages; miss-ratio curve",
                right=[True] * (len(policies) + 1))