"""``vmlab trace``: fault counts of a trace under several policies and
frame counts, policy-only or through a real Machine (``--vm``)."""

from __future__ import annotations

import time
from typing import Any

from vmlab.core.registry import policy_class
from vmlab.replay.generic import replay_spec
from vmlab.replay.policies import POLICIES
from vmlab.replay.traces import Trace

VM_COUNTERS = ("pgfault", "pgmajfault", "pswpin", "pswpout", "evictions")


def replay_all(trace: Trace, policies: list[str], frames: list[int],
               seed: int = 0, **options: Any) -> dict[str, Any]:
    """``{"refs": N, "pages": distinct, "results": [{"policy", "frames", "faults", "hits"}]}``;
    built-ins run their tight loops, a FILE.py:Class policy the Policy interface."""
    refs = trace.pages.tolist()
    results = []
    for policy in policies:
        name = policy if policy in POLICIES else policy_class(policy).name
        for n in frames:
            t0 = time.perf_counter()
            if policy in POLICIES:
                faults = POLICIES[policy](refs, n, seed)
            else:
                faults = replay_spec(policy, refs, trace.writes, n, seed, **options)
            results.append({"policy": name, "frames": n, "faults": faults,
                            "hits": len(refs) - faults,
                            "seconds": round(time.perf_counter() - t0, 6)})
    return {"refs": len(refs), "pages": trace.distinct(), "results": results}


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
    for p in trace.pages:
        index.setdefault(p, len(index))
    swap_mb = max(1, (len(index) * 4096 * 2) >> 20)
    with Machine(frames=frames, policy=policy, swap_mb=swap_mb, lab=lab, seed=seed) as m:
        proc = m.spawn()
        base = proc.mmap(None, 0x10000000, length=len(index) * 4096)
        read, write = proc.read, proc.write
        stored = bytearray(len(index))
        zeros = bytes(8)
        first_touch_stores = not any(trace.writes)
        for p, w in zip(trace.pages, trace.writes):
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
