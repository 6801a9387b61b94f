"""``vmlab run SCENARIO``: one scenario from ``demo/`` on a fresh Machine,
with its result, counters and fault costs, optionally watched live."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from vmlab import Machine, VMError
from vmlab.core.registry import instantiate
from vmlab_scenarios import REGISTRY, ScenarioFailed
from vmlab.front.term import print_table
from vmlab_fs.accounting import host_page_io

SHOWN = ("pgfault", "pgmajfault", "pswpin", "pswpout", "evictions", "writebacks", "cow_faults")


def list_scenarios() -> None:
    print_table(["scenario", "frames", "what it does"],
                [[s.name, str(s.frames), s.summary] for s in REGISTRY.values()],
                right=[False, True, False])


def run_scenario(name: str, frames: int | None = None, policy: str = "clock",
                 latency: str = "none", lab: str | None = None, seed: int = 0,
                 watch: tuple[str, float] | None = None, show: dict[str, Any] | None = None,
                 as_json: bool = False, **options: Any) -> int:
    """Run scenario ``name`` on a fresh Machine and report; returns the exit
    status (0 ok, 1 the scenario failed, 2 a view asked for a pid that never ran).
    ``options`` (tick, tau) go to the policy."""
    sc = REGISTRY[name]
    frames = frames or sc.frames
    show = show or {}
    if any(v is not None for v in options.values()):
        policy = instantiate(policy, frames, seed, **options)
    t0 = time.perf_counter()
    seen: set[int] = set()
    with Machine(frames=frames, policy=policy, latency=latency, lab=lab, seed=seed,
                 swap_mb=16) as m:
        if not as_json:
            lm = m.lab_mount
            shown = lm.latency() if lm else "none (a plain directory)"
            print(f"vmlab run {name}: {frames} frames, policy {m.policy.name}, latency {shown}, "
                  f"lab {m.lab}", flush=True)
        m.exit_hooks.append(lambda p: (seen.add(p.pid), _show(m, p, show, "at exit")))
        m.munmap_hooks.append(lambda p, a: _show(m, p, show, f"before munmap({a:#x})", swaps=False))
        views = ThreeViews(m) if watch and watch[0] == "vmstat" and m.lab_mount else None
        lines, error = _run_watched(sc, m, watch)
        seen |= set(m.procs)
        stats, costs = m.vmstat(), m.fault_costs()
        if views and not as_json:
            views.print()
    seconds = time.perf_counter() - t0
    if as_json:
        print(json.dumps({"scenario": name, "ok": error is None, "error": error, "lines": lines,
                          "frames": frames, "policy": m.policy.name, "seconds": round(seconds, 3),
                          "vmstat": stats, "fault_costs": costs}))
        return 0 if error is None else 1
    _report(lines, stats, costs, error, seconds)
    if error:
        return 1
    missing = [f"--{v} {pid}" for v in ("maps", "smaps") if (pid := show.get(v)) and pid not in seen]
    if missing:
        print(f"vmlab: error: {', '.join(missing)}: no such process in {name} "
              f"(its pids: {', '.join(map(str, sorted(seen)))})", file=sys.stderr)
        return 2
    return 0


def _run_watched(sc, m: Machine, watch: tuple[str, float] | None) -> tuple[list[str], str | None]:
    """The scenario's report lines and its error (None if it passed), watched live if asked."""
    try:
        if watch:
            from vmlab.front.live import Watcher
            with Watcher(m, watch[1], watch[0]):
                return sc.run(m), None
        return sc.run(m), None
    except (ScenarioFailed, VMError) as e:
        return [], f"{type(e).__name__}: {e}"


def _report(lines: list[str], stats: dict, costs: dict, error: str | None, seconds: float) -> None:
    for line in lines:
        print(f"  {line}")
    print("  " + "  ".join(f"{k} {stats[k]}" for k in SHOWN))
    print("  fault costs: " + " | ".join(f"{case} {c['count']} x median {c['median_ns'] / 1000:.1f} us"
                                         for case, c in costs.items()))
    print(f"FAILED: {error}" if error else f"ok ({seconds:.2f} s)")


class ThreeViews:
    """The same page I/O counted three ways over a run: by the VM, by the
    lab filesystem, and by the host kernel (the daemon's system calls).
    The window opens and closes with no read of ``.vmlab/*`` inside it."""

    def __init__(self, m: Machine) -> None:
        self.m, self.lab = m, m.lab_mount
        self.vm0, self.lab0 = m.vmstat(), self.lab.stats()
        self.io0 = self.lab.daemon_io(settle=0.02)   # the stats file's RELEASE served first

    def rows(self) -> list[list[str]]:
        io1 = self.lab.daemon_io()
        vm1, lab1 = self.m.vmstat(), self.lab.stats()
        d = lambda a, b, k: b[k] - a[k]
        vm_in = sum(d(self.vm0, vm1, k) for k in ("pswpin", "mmap_faults", "elf_faults",
                                                  "elf_header_reads"))
        vm_out = d(self.vm0, vm1, "pswpout") + d(self.vm0, vm1, "writebacks")
        host = host_page_io(d(self.lab0, lab1, "requests"), self.io0, io1)
        return [["VM: page-ins / page-outs (pswpin, pswpout, file pages)", str(vm_in), str(vm_out)],
                ["lab: reads / writes it served", str(d(self.lab0, lab1, "reads")),
                 str(d(self.lab0, lab1, "writes"))],
                ["host: the daemon's read/write calls - requests",
                 str(host["reads"]), str(host["writes"])]]

    def print(self) -> None:
        print_table(["the same I/O, counted three ways", "reads", "writes"], self.rows(),
                    right=[False, True, True])


def _show(m: Machine, p, show: dict[str, Any], when: str, swaps: bool = True) -> None:
    """Hook: print the views asked for, as the process is about to exit or unmap."""
    for view in ("maps", "smaps"):
        if show.get(view) == p.pid:
            text = p.smaps() if view == "smaps" else p.maps()
            print(f"--- pid {p.pid} {when}: /proc/{p.pid}/{view} ---\n{text}", end="", flush=True)
    if swaps and show.get("swaps"):
        print(f"--- /proc/swaps as pid {p.pid} exits ---\n{m.swaps()}", flush=True)
