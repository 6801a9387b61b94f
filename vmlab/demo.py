"""``vmlab demo``: every seed feature, once, on a fresh lab mount.

Each feature runs on its own Machine (all on one mount) so its faults and
their costs are its own; what the filesystem saw is read from ``.vmlab/files``
before and after. The table at the end is the seed's "Page Fault Costs" with
measured figures.
"""

from __future__ import annotations

import os
import shutil
import statistics
from dataclasses import dataclass, field

import fs
from fs.accounting import FileCounts
from vmlab import Machine, SegFault
from vmlab.process import PIE_BASE

PAGE = 4096
PHYS_BASE = 0xC0000000
DEMO_ELF = "/bin/ls"


@dataclass
class Result:
    feature: str
    case: str                      # the fault case whose costs are shown
    lines: list[str]
    costs: dict[str, int]          # count, median_ns, p99_ns
    requests: int                  # reads + writes the filesystem saw
    major: bool = False
    checks: list[bool] = field(default_factory=list)


def _requests(before: dict[str, FileCounts], after: dict[str, FileCounts]) -> int:
    zero = FileCounts()
    return sum(a.reads + a.writes - before.get(p, zero).reads - before.get(p, zero).writes
               for p, a in after.items())


def _run(mount: fs.Mount, feature: str, case: str, body, **machine) -> Result:
    """Inputs are made, and results checked, in the backing directory, so
    every request counted here is the VM's own."""
    with Machine(lab=mount.path, **machine) as m:
        before = mount.files()
        lines, checks = body(m, mount.backing)
        after = mount.files()               # before close removes swap.img
        costs = m.fault_costs().get(case, {"count": 0, "median_ns": 0, "p99_ns": 0})
    return Result(feature, case, lines, costs, _requests(before, after),
                  case in ("elf", "mmap", "swap"), checks)


# -- one body per feature: (machine, backing dir) -> (lines, checks) -----------

def demand_paging(m: Machine, backing: str):
    shutil.copyfile(DEMO_ELF, os.path.join(backing, "ls"))
    exe = os.path.join(m.lab, "ls")
    p = m.spawn()
    entry = p.load_elf(exe)
    pages = sum(len(v.pages) for v in p.vmas if v.kind == "elf")
    after_load = m.vmstat()["elf_faults"]
    code = next(v for v in p.vmas if v.executable)
    touched = list(range(code.start, code.end, 4 * PAGE))[:8]
    for addr in touched:
        p.read(addr, 16)
    first = p.read(entry, 4)
    ok = first == open(DEMO_ELF, "rb").read()[entry - PIE_BASE:][:4]
    s = m.vmstat()
    return ([f"loaded {DEMO_ELF} (copied to the mount): {pages} pages in "
             f"{sum(1 for v in p.vmas if v.kind == 'elf')} segments, {after_load} read at load",
             f"touched {len(touched) + 1} code pages: {s['elf_faults']} major faults "
             f"(+{s['elf_header_reads']} header read), code bytes match the file: {ok}"],
            [ok, after_load == 0])


def zero_page(m: Machine, backing: str):
    p = m.spawn()
    a = p.mmap(None, 0x10000000, length=64 * PAGE)
    for i in range(64):
        p.write(a + i * PAGE, b"\x01")
    ok = all(p.read(a + i * PAGE, 2) == b"\x01\x00" for i in range(64))
    s = m.vmstat()
    return ([f"mmap 256 KiB anonymous, touch 64 pages: {s['zero_faults']} minor faults, "
             f"no I/O; each page starts as zeros: {ok}"], [ok, s["pgmajfault"] == 0])


def stack_growth(m: Machine, backing: str):
    p = m.spawn()
    for i in range(40):                       # 40 frames of 512 bytes
        p.push(bytes([i]) * 512)
    ok = p.read(p.esp, 512) == bytes([39]) * 512
    grown = m.vmstat()["stack_faults"]
    try:
        p.read(p.esp - 4100, 1)
        caught = "no fault?!"
    except SegFault as e:
        caught = f"SegFault ({e}), exit status {p.exit_status}"
    return ([f"push 40 x 512 bytes: esp {PHYS_BASE:#x} -> {PHYS_BASE - 40 * 512:#x}, "
             f"{grown} stack-growth faults",
             f"read 4100 bytes below esp: {caught}"], [ok, p.exit_status == -1])


def copy_on_write(m: Machine, backing: str):
    parent = m.spawn()
    a = parent.mmap(None, 0x10000000, length=16 * PAGE)
    for i in range(16):
        parent.write(a + i * PAGE, bytes([i + 1]) * PAGE)
    child = parent.fork()
    for i in range(0, 16, 2):
        child.write(a + i * PAGE, b"child")
    ok = all(parent.read(a + i * PAGE, 5) == bytes([i + 1]) * 5 for i in range(16))
    ok = ok and all(child.read(a + i * PAGE, 5) == b"child" for i in range(0, 16, 2))
    s = m.vmstat()
    return ([f"fork a process with 16 dirty pages; the child writes 8 of them: "
             f"{s['cow_faults']} copy-on-write faults",
             f"parent still sees its data, child its own: {ok}"], [ok])


def memory_mapped_file(m: Machine, backing: str):
    with open(os.path.join(backing, "data.bin"), "wb") as f:
        f.write(bytes(range(256)) * 16 * 12)     # 12 pages
    p = m.spawn()
    a = p.mmap(os.path.join(m.lab, "data.bin"), 0x10000000)
    ok = p.read(a, 12 * PAGE) == bytes(range(256)) * 16 * 12
    for i in (1, 5, 9):
        p.write(a + i * PAGE, b"DIRTY")
    p.munmap(a)
    ok = ok and open(os.path.join(backing, "data.bin"), "rb").read()[5 * PAGE:][:5] == b"DIRTY"
    s = m.vmstat()
    return ([f"mmap a 12-page file shared, read it all: {s['mmap_faults']} major faults",
             f"dirty 3 pages, munmap: {s['writebacks']} write-backs, file updated: {ok}"], [ok])


def swap(m: Machine, backing: str):
    p = m.spawn()
    a = p.mmap(None, 0x10000000, length=64 * PAGE)
    for i in range(64):
        p.write(a + i * PAGE, bytes([i]) * PAGE)
    ok = all(p.read(a + i * PAGE, PAGE) == bytes([i]) * PAGE for i in range(64))
    s = m.vmstat()
    return ([f"64 pages through 8 frames (clock): pswpout {s['pswpout']}, pswpin {s['pswpin']}, "
             f"evictions {s['evictions']}",
             f"every page read back intact: {ok}; {m.swaps().splitlines()[1].split()[0]}"],
            [ok, s["pswpin"] > 0])


FEATURES = [
    ("Demand paging", "elf", demand_paging, {"frames": 32}),
    ("Zero page", "zero", zero_page, {"frames": 128}),
    ("Stack growth", "stack", stack_growth, {"frames": 32}),
    ("COW", "cow", copy_on_write, {"frames": 64}),
    ("mmap", "mmap", memory_mapped_file, {"frames": 32}),
    ("Swap in", "swap", swap, {"frames": 8}),
]


def _us(ns: int) -> str:
    return f"{ns / 1000:,.0f} us" if ns >= 10_000 else f"{ns / 1000:.1f} us"


def render_table(results: list[Result]) -> str:
    head = ("Feature", "Fault type", "Disk I/O", "Faults", "Median", "p99", "FUSE requests")
    rows = [head] + [(r.feature, "Major" if r.major else "Minor", "Yes" if r.major else "No",
                      str(r.costs["count"]), _us(r.costs["median_ns"]), _us(r.costs["p99_ns"]),
                      str(r.requests)) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in rows)


def run_demo(latency: str = "none") -> int:
    with fs.mount(latency=latency) as mount:
        print(f"vmlab demo: lab filesystem at {mount.path} (fuse.vmlab, latency {latency})\n",
              flush=True)
        results = []
        for n, (feature, case, body, machine) in enumerate(FEATURES, 1):
            r = _run(mount, feature, case, body, **machine)
            results.append(r)
            print(f"{n}. {feature}", flush=True)
            for line in r.lines:
                print(f"   {line}", flush=True)
        print("\nPage fault costs, measured (the seed's table):\n")
        print(render_table(results))
        minor = statistics.median(r.costs["median_ns"] for r in results if not r.major)
        major = statistics.median(r.costs["median_ns"] for r in results if r.major)
        hint = "; try --latency hdd" if latency == "none" else ""
        print(f"\nmajor / minor fault cost: {major / minor:.1f}x here "
              f"(the seed's rule of thumb: ~1000x on a disk{hint})")
    failed = [r.feature for r in results if not all(r.checks)]
    if failed:
        print(f"\nvmlab demo: these features did not behave: {', '.join(failed)}")
        return 1
    print(f"\nunmounted {mount.path}")
    return 0
