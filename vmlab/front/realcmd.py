"""``vmlab real WORKLOAD``: a real process's memory paged by vmlab, with its
faults, I/O and fault costs; ``--against-kernel`` runs the same workload
under the kernel's own reclaim through the same mount and puts both side
by side."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from vmlab.core.views import VMSTAT_HEAD, vmstat_line
from vmlab.front.term import print_table
from vmlab.front.units import human_bytes

SHOWN = ("pgfault", "pgmajfault", "pswpin", "pswpout", "zero_faults", "swap_faults",
         "ref_faults", "wp_faults", "swapcache_faults", "ref_arms", "swap_ra", "evictions",
         "allocstall")

WHAT = {  # case -> (kind, what it is)
    "zero": ("minor", "first touch: a page of zeros"),
    "swap": ("major", "read back from swap (one FUSE read)"),
    "ref": ("minor", "re-touch after its reference bit was cleared"),
    "wp": ("minor", "first write to a clean page (dirty tracking)"),
    "swapcache": ("minor", "a page swap readahead brought in"),
    "reclaim": ("-", "eviction: each page its share of a batch"),
}


def run_real(workload: Callable[..., Any], label: str, size: int, frames: int, policy: Any,
             latency: str, lab: str | None, seed: int, readahead: int, vmstat_every: float | None,
             as_json: bool, against_kernel: bool, timeout: float | None = None,
             tick: int | None = None, tau: int | None = None,
             reclaim_batch: int | None = None, fastpath: bool | None = None) -> int:
    """Run one workload on a RealMachine (and under the kernel if asked) and
    report; returns the exit status (0, or 1 if the workload's check failed)."""
    from vmlab.real.machine import RealMachine
    with RealMachine(frames=frames, policy=policy, latency=latency, lab=lab, seed=seed,
                     readahead=readahead, swap_mb=max(1, -(-size // (1 << 20)) + 1),
                     tick=tick, tau=tau, reclaim_batch=reclaim_batch, fastpath=fastpath) as rm:
        mount = rm.lab_mount
        if not as_json:
            print(f"vmlab real {label}: {human_bytes(size)} region, {frames} frames "
                  f"({human_bytes(frames * 4096)}), policy {rm.policy.name}, lab {rm.lab}, "
                  f"pager {'compiled fast path' if rm.fastpath else 'in Python'}", flush=True)
        report, every = _watch(vmstat_every, as_json)
        files0 = _swap_counts(mount, rm.swap_path)
        t0 = time.perf_counter()
        result = rm.run(workload, size, seed, frames, timeout=timeout, every=every, report=report)
        seconds = time.perf_counter() - t0
        if report is not None:
            report(rm.vmstat(), last=True)
        stats, costs = rm.vmstat(), rm.fault_costs()
        files1 = _swap_counts(mount, rm.swap_path)
        io = {k: files1[k] - files0[k] for k in files1}
        kernel = None
        if against_kernel:
            from vmlab.real.kernel import run_under_kernel
            if mount is None:
                raise ValueError(f"--against-kernel needs a vmlab mount, and {rm.lab} is not one")
            if not as_json:
                print("now the same workload under the kernel's reclaim (memory cgroup)...", flush=True)
            kernel = run_under_kernel(workload, size, frames, mount, (seed, frames), timeout,
                                      daemon=rm.mount.pid if rm.mount else None)
    ok = _passed(result) and (kernel is None or _passed(kernel["result"]))
    if as_json:
        print(json.dumps({"workload": label, "size": size, "frames": frames, "ok": ok,
                          "fastpath": rm.fastpath,
                          "result": _jsonable(result), "seconds": round(seconds, 3),
                          "vmstat": stats, "fault_costs": costs, "swap_io": io,
                          "kernel": _jsonable(kernel)}))
        return 0 if ok else 1
    _report(result, stats, costs, io, seconds)
    if kernel is not None:
        _compare(stats, io, seconds, kernel, frames)
    print("ok" if ok else "FAILED: the workload's own check of its result failed")
    return 0 if ok else 1


def _passed(result: Any) -> bool:
    """Did the workload's own check pass? (A result without one: yes.)"""
    return bool(result.get("ok", True)) if isinstance(result, dict) else True


def _swap_counts(mount: Any, path: str) -> dict[str, int]:
    """What the mount counted on the swap file: reads, writes (0s off a mount)."""
    if mount is None:
        return {"reads": 0, "writes": 0}
    fc = mount.files().get("/" + os.path.basename(path))
    return {"reads": fc.reads if fc else 0, "writes": fc.writes if fc else 0}


def _watch(every: float | None, as_json: bool) -> tuple[Any, float | None]:
    """The --vmstat reporter (None if not asked): a line per interval."""
    if not every or as_json:
        return None, None
    state: dict[str, Any] = {}

    def report(cur: dict, last: bool = False) -> None:
        """Print the head once, then a line of rates since the last one."""
        now = time.monotonic()
        if not state:
            print("\n".join(VMSTAT_HEAD), flush=True)
            state.update(prev=dict.fromkeys(cur, 0) | {"nr_processes": 1}, t=now - every)
        print(vmstat_line(state["prev"], cur, now - state["t"]), flush=True)
        state.update(prev=cur, t=now)
    return report, every


def _report(result: Any, stats: dict, costs: dict, io: dict, seconds: float) -> None:
    """The run's result, I/O, counters and fault-cost table."""
    print(f"  result: {result!r:.200}")
    print(f"  time {seconds:.2f} s; swap.img as the mount counted it: {io['reads']} reads, "
          f"{io['writes']} writes")
    print("  " + "  ".join(f"{k} {stats[k]}" for k in SHOWN))
    rows = []
    for case, c in costs.items():
        kind, what = WHAT.get(case, ("", case))
        rows.append([case, kind, what, str(c["count"]), f"{c['median_ns'] / 1000:.1f} us",
                     f"{c['p99_ns'] / 1000:.1f} us"])
    print_table(["case", "type", "what", "count", "median", "p99"], rows,
                title="Fault costs, measured in the pager (real faults):",
                right=[False, False, False, True, True, True])


def _compare(stats: dict, io: dict, seconds: float, kernel: dict, frames: int) -> None:
    """One table: vmlab's pager against the kernel's reclaim, same workload."""
    minor = stats["pgfault"] - stats["pgmajfault"]
    rows = [["vmlab (userfaultfd pager)", str(minor), str(stats["pgmajfault"]),
             str(io["reads"]), str(io["writes"]), f"{seconds:.2f}"],
            ["kernel (memory cgroup)", str(kernel["minor"]), str(kernel["major"]),
             str(kernel["reads"]), str(kernel["writes"]), f"{kernel['seconds']:.2f}"]]
    print_table(["pager", "minor faults", "major faults", "FUSE reads", "FUSE writes", "seconds"],
                rows, title=f"The same workload, {frames} frames, the same mount:",
                right=[False, True, True, True, True, True])
    print(f"  (kernel: a file mapped shared, cgroup limit = {frames} pages + the interpreter's "
          f"{human_bytes(kernel['baseline'])}; its first touches read the file's holes too, and "
          "its FUSE writes include the final flush)")


def _jsonable(value: Any) -> Any:
    """``value`` if JSON takes it, else its repr."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def load_workload(name: str | None, script: str | None) -> tuple[Callable[..., Any], str]:
    """The workload function and its label. Raises ValueError."""
    from vmlab.real.workloads import WORKLOADS
    from vmlab.real.workloads import script as from_script
    if script:
        return from_script(script), os.path.basename(script)
    if name not in WORKLOADS:
        raise ValueError(f"no workload {name!r}: use one of {', '.join(WORKLOADS)}, "
                         "or --script FILE.py")
    return WORKLOADS[name], name
