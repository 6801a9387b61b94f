"""``vmlab demo``: the six classic features of virtual memory (demand
paging, zero page, stack growth, copy-on-write, mmap, swap), each a scenario
from ``demo/`` on its own Machine (all on one fresh lab mount, so each
feature's faults are its own), then the classic table of page fault costs
with figures measured in this run.

Scenarios create their input files in the backing directory, so the FUSE
requests counted per feature are the VM's alone.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass

import vmlab_fs
from vmlab_fs.accounting import FileCounts
from vmlab import Machine
from vmlab.core.stats import Case
from vmlab_scenarios import REGISTRY, ScenarioFailed
from vmlab.front.term import fancy, print_table

# (row of the fault-cost table, fault case measured, scenario, frames)
FEATURES = [
    ("Demand paging", Case.ELF, "demand-paging", 32),
    ("Zero page", Case.ZERO, "zero-page", 128),
    ("Stack growth", Case.STACK, "stack-growth", 32),
    ("COW", Case.COW, "cow", 64),
    ("mmap", Case.MMAP, "mmap", 32),
    ("Swap in", Case.SWAP, "swap", 8),
]


@dataclass
class Result:
    feature: str
    case: Case
    lines: list[str]
    costs: dict[str, int]           # count, median_ns, p99_ns
    requests: int                   # reads + writes the filesystem saw
    error: str | None = None

    @property
    def major(self) -> bool:
        return self.case.major


def _requests(before: dict[str, FileCounts], after: dict[str, FileCounts]) -> int:
    zero = FileCounts()
    return sum(a.reads + a.writes - before.get(p, zero).reads - before.get(p, zero).writes
               for p, a in after.items())


def run_feature(mount: vmlab_fs.Mount, feature: str, case: Case, name: str, frames: int) -> Result:
    with Machine(lab=mount.path, frames=frames) as m:
        before = mount.files()
        error = None
        try:
            lines = REGISTRY[name].run(m)
        except ScenarioFailed as e:
            lines, error = [], str(e)
        after = mount.files()               # before close removes swap.img
        costs = m.fault_costs().get(case.key, {"count": 0, "median_ns": 0, "p99_ns": 0})
    return Result(feature, case, lines, costs, _requests(before, after), error)


def _us(ns: int) -> str:
    return f"{ns / 1000:,.0f} us" if ns >= 10_000 else f"{ns / 1000:.1f} us"


def cost_table(results: list[Result]) -> None:
    rows = [[r.feature, "Major" if r.major else "Minor", "Yes" if r.major else "No",
             str(r.costs["count"]), _us(r.costs["median_ns"]), _us(r.costs["p99_ns"]), str(r.requests)]
            for r in results]
    print_table(["Feature", "Fault type", "Disk I/O", "Faults", "Median", "p99", "FUSE requests"],
                rows, title="Page fault costs, measured (minor: memory only; major: the disk):",
                right=[False, False, False, True, True, True, True])


@contextlib.contextmanager
def _progress(text: str):
    if fancy():
        from rich.console import Console
        with Console().status(text):
            yield
    else:
        yield


def _scan_twice(mem: memoryview) -> bool:
    """Write one byte into every page, then read them all back."""
    n = len(mem) // 4096
    for p in range(n):
        mem[p * 4096] = p % 251
    return all(mem[p * 4096] == p % 251 for p in range(n))


def real_section(mount: vmlab_fs.Mount) -> bool:
    """A real process's memory paged through userfaultfd on the same mount
    (where userfaultfd is available), and the fault-cost table from its real
    faults. Returns False if the workload read back wrong data."""
    from vmlab.real.machine import RealMachine
    from vmlab.real.uffd import Unavailable
    print("\n7. Real faults  (vmlab real)")
    try:
        with RealMachine(frames=64, policy="clock", lab=mount.path, swap_mb=4) as rm:
            ok = rm.run(_scan_twice, 256 * 4096)
            v, costs = rm.vmstat(), rm.fault_costs()
    except Unavailable as e:
        print(f"   skipped: {e}")
        return True
    print(f"   a real child process wrote then read 1 MiB through 64 frames: {v['zero_faults']} "
          f"zero fills, {v['pswpout']} pages out, {v['swap_faults']} major faults, "
          f"{v['ref_faults']} reference-bit re-touches; data {'intact' if ok else 'WRONG'}")
    names = {"zero": "Zero fill", "swap": "Swap in", "ref": "Re-touch (ref bit)",
             "wp": "First write (dirty bit)"}
    rows = [[names[c], "Major" if c == "swap" else "Minor", str(x["count"]), _us(x["median_ns"]),
             _us(x["p99_ns"])] for c, x in costs.items() if c in names]
    print()
    print_table(["Real fault", "Fault type", "Faults", "Median", "p99"], rows,
                title="Real page faults, served by vmlab's pager (userfaultfd):",
                right=[False, False, True, True, True])
    return ok


def run_demo(latency: str = "none") -> int:
    with vmlab_fs.mount(latency=latency) as mount:
        print(f"vmlab demo: lab filesystem at {mount.path} (fuse.vmlab, latency {latency})\n",
              flush=True)
        results = []
        for n, (feature, case, name, frames) in enumerate(FEATURES, 1):
            with _progress(f"{n}/{len(FEATURES)} {feature}..."):
                r = run_feature(mount, feature, case, name, frames)
            results.append(r)
            print(f"{n}. {feature}  (vmlab run {name})", flush=True)
            for line in r.lines or [f"FAILED: {r.error}"]:
                print(f"   {line}", flush=True)
        print()
        cost_table(results)
        minor = statistics.median(r.costs["median_ns"] for r in results if not r.major)
        major = statistics.median(r.costs["median_ns"] for r in results if r.major)
        hint = "; try --latency hdd" if latency == "none" else ""
        print(f"\nmajor / minor fault cost: {major / minor:.1f}x here "
              f"(rule of thumb: from a disk, about 1000x slower{hint})")
        real_ok = real_section(mount)
    failed = [r.feature for r in results if r.error] + ([] if real_ok else ["Real faults"])
    if failed:
        print(f"\nvmlab demo: these features did not behave: {', '.join(failed)}")
        return 1
    print(f"\nunmounted {mount.path}")
    return 0
