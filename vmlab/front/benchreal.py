"""``vmlab bench``'s real-fault figures: faults a real process takes on the
real machine, timed by the process itself, against the kernel's own
anonymous fault and a bare read through the same mount, in the same run."""

from __future__ import annotations

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


def measure_real(quick: bool) -> dict[str, Any]:
    """The three real-mode figures, or ``{"skipped": why}`` where userfaultfd
    is not available. The zero fill, the swap-in and the bare read take
    turns, three rounds (one if ``quick``), and each is the median of its
    rounds: this kind of machine has slow spells of a few seconds."""
    from vmlab.real.machine import RealMachine
    from vmlab.real.uffd import Unavailable
    pages = 1024 if quick else 4096
    frames = 256
    zero, swap, mean, bare = [], [], [], []
    try:
        with RealMachine(frames=pages + 8, policy="fifo") as zm, \
                RealMachine(frames=frames, policy="fifo") as sm:
            for _ in range(1 if quick else 3):
                z = zm.run(_zero_fill, pages * PAGE)
                s = sm.run(_swap_in, 2 * frames * PAGE, frames)
                bare.append(_bare_read_ns(sm.lab, frames, sm.mount.pid))
                zero.append(z["first"] - z["again"])
                swap.append(s["first"] - s["again"])
                mean.append(s["mean"] - s["again"])
            pager_zero = zm.fault_costs()["zero"]["median_ns"]
            pager_swap = sm.fault_costs()["swap"]["median_ns"]
            batch = sm.reclaim_batch
        with RealMachine(frames=pages, policy="fifo") as rm:
            scan_s = rm.run(_scan, pages * PAGE)
    except Unavailable as e:
        return {"skipped": str(e)}
    kernel = _kernel_fault_ns(pages)
    zero_ns, swap_ns, mean_ns, bare_ns = map(statistics.median, (zero, swap, mean, bare))
    return {"pages": pages, "zero_fault_ns": zero_ns, "kernel_fault_ns": kernel,
            "zero_ratio": zero_ns / kernel, "pager_zero_ns": pager_zero,
            "swapin_fault_ns": swap_ns, "mount_read_ns": bare_ns, "pager_swap_ns": pager_swap,
            "swapin_ratio": swap_ns / (bare_ns + zero_ns), "target": 1.25,
            "swapin_mean_ns": mean_ns, "reclaim_batch": batch,
            "swapin_mean_ratio": mean_ns / (bare_ns + zero_ns),
            "scan_faults_per_s": pages / scan_s}


def rows(r: dict[str, Any]) -> list[list[str]]:
    """The figures as table rows: figure, vmlab, against, ratio."""
    us = lambda ns: f"{ns / 1000:.1f} us"
    return [
        ["real zero-fill fault vs kernel anonymous fault", us(r["zero_fault_ns"]),
         us(r["kernel_fault_ns"]), f"{r['zero_ratio']:.1f}x"],
        ["  of which the pager's own service time", us(r["pager_zero_ns"]), "", ""],
        ["real swap-in fault vs bare O_DIRECT read + real zero fill", us(r["swapin_fault_ns"]),
         us(r["mount_read_ns"] + r["zero_fault_ns"]), f"{r['swapin_ratio']:.2f}x"],
        ["  of which the pager's own service time", us(r["pager_swap_ns"]), "", ""],
        [f"  mean, with its share of reclaim (batches of {r['reclaim_batch']})",
         us(r["swapin_mean_ns"]), "", f"{r['swapin_mean_ratio']:.2f}x"],
        ["real faults per second, scan, no eviction", f"{r['scan_faults_per_s']:,.0f}/s", "", ""],
    ]


def render(rf: dict[str, Any]) -> None:
    """The real-fault table, or why it was not measured."""
    from vmlab.front.term import print_table
    if "skipped" in rf:
        print(f"Real faults: not measured here: {rf['skipped']}")
        return
    print_table(["figure", "vmlab", "against", "ratio"], rows(rf),
                title=f"Real faults (userfaultfd; a real process's own timing, medians over "
                      f"{rf['pages']} pages)", right=[False, True, True, True])
