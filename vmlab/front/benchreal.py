"""``vmlab bench``'s real-fault figures: faults a real process takes on the
real machine, timed by the process itself, against the kernel's own
anonymous fault and a bare read through the same mount, in the same run."""

from __future__ import annotations

import contextlib
import mmap
import os
import statistics
import time
from typing import Any

from vmlab.real.cpu import pinned

PAGE = 4096


def _touch_times(mem: memoryview, first: int, n: int) -> list[int]:
    """Nanoseconds of one read of each page ``first`` .. ``first + n - 1``."""
    ns = time.perf_counter_ns
    out = []
    for p in range(first, first + n):
        t0 = ns()
        mem[p * PAGE]
        out.append(ns() - t0)
    return out


def _zero_fill(mem: memoryview) -> dict:
    """First touch minus second touch, per page: the fault alone."""
    n = len(mem) // PAGE
    return {"first": statistics.median(_touch_times(mem, 0, n)),
            "again": statistics.median(_touch_times(mem, 0, n))}


def _swap_in(mem: memoryview, frames: int) -> dict:
    """Dirty every page of a region twice the frames, read it all once (every
    page then has a swap copy, the resident ones are clean), then time a
    second read: each touch is one swap-in, and reclaim drops clean pages
    a batch at a time (the mean carries its share, the median mostly not)."""
    n = len(mem) // PAGE
    for p in range(n):
        mem[p * PAGE] = 1 + p % 250
    _touch_times(mem, 0, n)
    times = _touch_times(mem, 0, n)
    return {"first": statistics.median(times), "mean": statistics.fmean(times),
            "again": statistics.median(_touch_times(mem, n - frames // 2, frames // 2))}


def _scan(mem: memoryview) -> float:
    """Seconds to write one byte of every page, in order (numpy's loop)."""
    import numpy as np
    a = np.frombuffer(mem, dtype=np.uint8)
    t0 = time.perf_counter()
    a[::PAGE] = 1
    return time.perf_counter() - t0


def _kernel_fault_ns(pages: int) -> float:
    """The kernel's anonymous minor fault: first touch minus second touch."""
    m = mmap.mmap(-1, pages * PAGE)
    v = memoryview(m)
    try:
        return max(statistics.median(_touch_times(v, 0, pages))
                   - statistics.median(_touch_times(v, 0, pages)), 1.0)
    finally:
        v.release()
        m.close()


def _bare_read_ns(lab: str, pages: int, daemon: int) -> float:
    """A 4 KiB O_DIRECT read through the mount, median; the reader and the
    mount's daemon on one CPU, as the real machine runs its pager and its own."""
    path = os.path.join(lab, "bench-real.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(pages * PAGE))
    buf = mmap.mmap(-1, PAGE)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    cpu = min(os.sched_getaffinity(0))
    try:
        with pinned({0: cpu, daemon: cpu}):
            ns = time.perf_counter_ns
            times = []
            for i in range(pages):
                t0 = ns()
                os.preadv(fd, [buf], i * PAGE)
                times.append(ns() - t0)
            return statistics.median(times)
    finally:
        os.close(fd)
        buf.close()
        os.unlink(path)


def _pager_round(zm: Any, sm: Any, pages: int, frames: int, bare: list[float],
                 got: dict[str, list]) -> None:
    """One round on a pager's two machines: its zero fill of ``pages`` and
    its swap-in with ``frames`` into ``got``, then a bare read through the
    swap-in's mount into ``bare``."""
    z = zm.run(_zero_fill, pages * PAGE)
    s = sm.run(_swap_in, 2 * frames * PAGE, frames)
    bare.append(_bare_read_ns(sm.lab, frames, sm.mount.pid))
    got["zero"].append(z["first"] - z["again"])
    got["swap"].append(s["first"] - s["again"])
    got["mean"].append(s["mean"] - s["again"])


def measure_real(quick: bool) -> dict[str, Any]:
    """The real-mode figures, or ``{"skipped": why}`` where userfaultfd is
    not available: the pager with its compiled fast path (where built) and
    all in Python. Each pager's zero fill and swap-in and a bare read take
    turns with the other's, five rounds (one if ``quick``), each figure
    the median of its rounds: this kind of machine has slow spells of a
    few seconds."""
    from vmlab.real.fastpath import why_not
    from vmlab.real.machine import RealMachine
    from vmlab.real.uffd import Unavailable
    pages = 1024 if quick else 4096
    frames = 256
    bare: list[float] = []
    pagers = [True, False] if why_not() is None else [False]
    got = {fast: {"zero": [], "swap": [], "mean": []} for fast in pagers}
    try:
        with contextlib.ExitStack() as stack:
            machines = {}
            for fast in pagers:
                zm = stack.enter_context(RealMachine(frames=pages + 8, policy="fifo", fastpath=fast))
                sm = stack.enter_context(RealMachine(frames=frames, policy="fifo", fastpath=fast))
                machines[fast] = zm, sm
            for _ in range(1 if quick else 5):
                for fast in pagers:
                    _pager_round(*machines[fast], pages, frames, bare, got[fast])
            zm, sm = machines[pagers[0]]
            pager_zero = zm.fault_costs()["zero"]["median_ns"]
            pager_swap = sm.fault_costs()["swap"]["median_ns"]
            batch = sm.reclaim_batch
        with RealMachine(frames=pages, policy="fifo") as rm:
            scan_s = rm.run(_scan, pages * PAGE)
    except Unavailable as e:
        return {"skipped": str(e)}
    kernel = _kernel_fault_ns(pages)
    bare_ns = statistics.median(bare)
    main, py = ({k: statistics.median(v) for k, v in got[f].items()} for f in (pagers[0], False))
    return {"pages": pages, "fastpath": pagers[0], "fastpath_missing": why_not(),
            "zero_fault_ns": main["zero"], "kernel_fault_ns": kernel,
            "zero_ratio": main["zero"] / kernel, "pager_zero_ns": pager_zero,
            "swapin_fault_ns": main["swap"], "mount_read_ns": bare_ns,
            "pager_swap_ns": pager_swap,
            "swapin_ratio": main["swap"] / (bare_ns + main["zero"]), "target": 1.25,
            "swapin_mean_ns": main["mean"], "reclaim_batch": batch,
            "swapin_mean_ratio": main["mean"] / (bare_ns + main["zero"]),
            "py_zero_fault_ns": py["zero"], "py_swapin_fault_ns": py["swap"],
            "py_swapin_ratio": py["swap"] / (bare_ns + py["zero"]),
            "scan_faults_per_s": pages / scan_s}


def rows(r: dict[str, Any]) -> list[list[str]]:
    """The figures as table rows: figure, vmlab, against, ratio."""
    us = lambda ns: f"{ns / 1000:.1f} us"
    out = [
        ["real zero-fill fault vs kernel anonymous fault", us(r["zero_fault_ns"]),
         us(r["kernel_fault_ns"]), f"{r['zero_ratio']:.1f}x"],
        ["  of which the pager's own service time", us(r["pager_zero_ns"]), "", ""],
        ["real swap-in fault vs bare O_DIRECT read + real zero fill", us(r["swapin_fault_ns"]),
         us(r["mount_read_ns"] + r["zero_fault_ns"]), f"{r['swapin_ratio']:.2f}x"],
        ["  of which the pager's own service time", us(r["pager_swap_ns"]), "", ""],
        [f"  mean, with its share of reclaim (batches of {r['reclaim_batch']})",
         us(r["swapin_mean_ns"]), "", f"{r['swapin_mean_ratio']:.2f}x"],
    ]
    if r["fastpath"]:
        out += [["pager all in Python (--python-pager): zero fill", us(r["py_zero_fault_ns"]),
                 "", ""],
                ["  swap-in vs bare read + its zero fill", us(r["py_swapin_fault_ns"]),
                 us(r["mount_read_ns"] + r["py_zero_fault_ns"]), f"{r['py_swapin_ratio']:.2f}x"]]
    return out + [["real faults per second, scan, no eviction",
                   f"{r['scan_faults_per_s']:,.0f}/s", "", ""]]


def render(rf: dict[str, Any]) -> None:
    """The real-fault table, or why it was not measured."""
    from vmlab.front.term import print_table
    if "skipped" in rf:
        print(f"Real faults: not measured here: {rf['skipped']}")
        return
    print_table(["figure", "vmlab", "against", "ratio"], rows(rf),
                title=f"Real faults (userfaultfd; a real process's own timing, medians over "
                      f"{rf['pages']} pages)", right=[False, True, True, True])
    if rf["fastpath_missing"]:
        print(f"  (pager all in Python: {rf['fastpath_missing']})")
