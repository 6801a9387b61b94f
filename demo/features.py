"""One scenario per classic feature of virtual memory: demand paging, zero page, stack growth,
copy-on-write, mmap, swap. ``vmlab demo`` runs all six."""

from __future__ import annotations

import os
import random
import shutil

from vmlab import Machine, SegFault
from vmlab.core.process import PIE_BASE

from .common import PAGE, PHYS_BASE, ScenarioFailed, check, scenario

DEMO_ELF = "/bin/ls"


@scenario("demand-paging", frames=32)
def demand_paging(m: Machine) -> list[str]:
    """Load a real ELF from the mount; only the pages touched are read."""
    shutil.copyfile(DEMO_ELF, os.path.join(m.backing, "ls"))
    p = m.spawn()
    entry = p.load_elf(os.path.join(m.lab, "ls"))
    pages = sum(len(v.pages) for v in p.vmas if v.kind == "elf")
    at_load = m.vmstat()["elf_faults"]
    code = next(v for v in p.vmas if v.executable)
    touched = list(range(code.start, code.end, 4 * PAGE))[:8]
    for addr in touched:
        p.read(addr, 16)
    with open(DEMO_ELF, "rb") as f:
        check(p.read(entry, 16) == f.read()[entry - PIE_BASE:][:16], "code differs from the file")
    check(at_load == 0, "pages were read at load time")
    s = m.vmstat()
    return [f"loaded {DEMO_ELF} (copied to the mount): {pages} pages in "
            f"{sum(1 for v in p.vmas if v.kind == 'elf')} segments, {at_load} read at load",
            f"touched {len(touched) + 1} code pages: {s['elf_faults']} major faults "
            f"(+{s['elf_header_reads']} header read), code bytes match the file"]


@scenario("zero-page", frames=128)
def zero_page(m: Machine) -> list[str]:
    """Anonymous memory: every first touch is a minor fault with no I/O."""
    p = m.spawn()
    a = p.mmap(None, 0x10000000, length=64 * PAGE)
    for i in range(64):
        p.write(a + i * PAGE, b"\x01")
    check(all(p.read(a + i * PAGE, 2) == b"\x01\x00" for i in range(64)), "a page did not start as zeros")
    s = m.vmstat()
    check(s["pgmajfault"] == 0 or m.vmstat()["nr_frames"] < 64, "zero pages caused disk I/O")
    return [f"mmap 256 KiB anonymous, touch 64 pages: {s['zero_faults']} minor faults, "
            f"{s['pgmajfault']} major; every page started as zeros"]


@scenario("stack-growth", frames=32)
def stack_growth(m: Machine) -> list[str]:
    """The stack grows on faults within esp - 32; further below is a segfault."""
    p = m.spawn()
    for i in range(40):                       # 40 frames of 512 bytes
        p.push(bytes([i]) * 512)
    check(p.read(p.esp, 512) == bytes([39]) * 512, "pushed data lost")
    grown = m.vmstat()["stack_faults"]
    try:
        p.read(p.esp - 4100, 1)
    except SegFault as e:
        caught = f"SegFault ({e}), exit status {p.exit_status}"
    else:
        raise ScenarioFailed("no fault 4100 bytes below esp")
    check(p.exit_status == -1, "the process survived a segfault")
    return [f"push 40 x 512 bytes: esp {PHYS_BASE:#x} -> {PHYS_BASE - 40 * 512:#x}, "
            f"{grown} stack-growth faults",
            f"read 4100 bytes below esp: {caught}"]


@scenario("cow", frames=64)
def copy_on_write(m: Machine) -> list[str]:
    """fork shares every page read-only; the first write copies one page."""
    parent = m.spawn()
    a = parent.mmap(None, 0x10000000, length=16 * PAGE)
    for i in range(16):
        parent.write(a + i * PAGE, bytes([i + 1]) * PAGE)
    child = parent.fork()
    for i in range(0, 16, 2):
        child.write(a + i * PAGE, b"child")
    check(all(parent.read(a + i * PAGE, 5) == bytes([i + 1]) * 5 for i in range(16)),
          "the child's writes reached the parent")
    check(all(child.read(a + i * PAGE, 5) == b"child" for i in range(0, 16, 2)), "the child lost its writes")
    s = m.vmstat()
    return [f"fork a process with 16 dirty pages; the child writes 8 of them: "
            f"{s['cow_faults']} copy-on-write faults",
            "the parent still sees its data, the child its own"]


@scenario("mmap", frames=32)
def memory_mapped_file(m: Machine) -> list[str]:
    """A shared file mapping: page-ins on first touch, dirty pages written back."""
    with open(os.path.join(m.backing, "data.bin"), "wb") as f:
        f.write(bytes(range(256)) * 16 * 12)     # 12 pages
    p = m.spawn()
    a = p.mmap(os.path.join(m.lab, "data.bin"), 0x10000000)
    check(p.read(a, 12 * PAGE) == bytes(range(256)) * 16 * 12, "mapped data differs from the file")
    for i in (1, 5, 9):
        p.write(a + i * PAGE, b"DIRTY")
    p.munmap(a)
    with open(os.path.join(m.backing, "data.bin"), "rb") as f:
        check(f.read()[5 * PAGE:][:5] == b"DIRTY", "a dirty page was not written back")
    s = m.vmstat()
    return [f"mmap a 12-page file shared, read it all: {s['mmap_faults']} major faults",
            f"dirty 3 pages, munmap: {s['writebacks']} write-backs; the file holds the writes"]


@scenario("swap", frames=8)
def swap(m: Machine) -> list[str]:
    """More pages than frames: dirty pages go to swap and come back intact
    (read back in a shuffled order: random access, as a disk sees it)."""
    p = m.spawn()
    a = p.mmap(None, 0x10000000, length=64 * PAGE)
    for i in range(64):
        p.write(a + i * PAGE, bytes([i]) * PAGE)
    order = random.Random(64).sample(range(64), 64)
    check(all(p.read(a + i * PAGE, PAGE) == bytes([i]) * PAGE for i in order),
          "a page came back from swap with wrong data")
    s = m.vmstat()
    return [f"64 pages through {s['nr_frames']} frames ({m.policy.name}): pswpout {s['pswpout']}, "
            f"pswpin {s['pswpin']}, evictions {s['evictions']}",
            f"every page read back intact; swap file {m.swap_path}"]
