"""The page fault handler.

``handle_fault`` reads top to bottom like Linux's ``handle_pte_fault``: check
the address, find the mapping (or grow the stack), then dispatch to one
handler per case, each of which gets a frame, fills it and installs it:

    present, write to a copy-on-write page   -> do_wp_page      (minor)
    paged out to swap                        -> do_swap_page    (major)
    file-backed (executable or mmap)         -> do_file_page    (major, or
                                                minor if another mapper has it)
    anonymous                                -> do_anonymous_page (minor: zero
                                                page, or stack growth)

A write to a page that arrives read-only (shared after fork, or a private
mapping of a file) is then broken copy-on-write in the same fault.
"""

from __future__ import annotations

import time
from typing import Callable

from vmlab.core.errors import BusError, LabError, PageIOError, SegFault, VMError
from vmlab.core.frame import Frame
from vmlab.core.mm import MM
from vmlab.core.page import PAGE, PAGE_KIB, PAGE_MASK, PAGE_SHIFT, AddressSpace, Pte, Vma
from vmlab.core.reclaim import get_frame
from vmlab.core.stats import Case

PUSHA_SLACK = 32        # PUSHA writes 32 bytes below esp before moving it
_ZERO = bytes(PAGE)
_ns = time.perf_counter_ns


def handle_fault(mm: MM, p: AddressSpace, addr: int, write: bool) -> Pte:
    """Serve a fault at ``addr``; returns the PTE, present (writable if ``write``).
    Raises SegFault, BusError, OutOfMemory or LabError; counted either way.

    The counters move in one update, so a sampler never sees half a fault,
    and the time excludes the reclaim it caused (timed apart, as pgsteal)."""
    t0, r0 = _ns(), mm.reclaim_ns
    try:
        pte, case = _dispatch(mm, p, addr, write)
    except BaseException:
        mm.stat["pgfault"] += 1
        raise
    stat, counter, major = mm.stat, case.counter, case.major
    stat.update({"pgfault": stat["pgfault"] + 1, counter: stat[counter] + 1,
                 "pgmajfault": stat["pgmajfault"] + major})
    if major:
        p.majflt += 1
    else:
        p.minflt += 1
    mm.costs.record(case.key, _ns() - t0 - (mm.reclaim_ns - r0))
    return pte


def _dispatch(mm: MM, p: AddressSpace, addr: int, write: bool) -> tuple[Pte, Case]:
    """Check the address, find the mapping (or grow the stack), and call the
    handler for the case; returns the PTE and the case. Raises as handle_fault."""
    if addr >= mm.phys_base or addr < PAGE:
        raise SegFault(f"pid {p.pid}: access to {addr:#x}, outside user memory")
    vpn = addr >> PAGE_SHIFT
    vma = p.find_vma(addr)
    grew = vma is None and (vma := grow_stack(mm, p, addr)) is not None
    if vma is None:
        raise SegFault(f"pid {p.pid}: no mapping at {addr:#x} (esp {p.esp:#x})")
    if write and not vma.writable:
        raise SegFault(f"pid {p.pid}: write to read-only page at {addr:#x}")

    pte = p.spt.get(vpn)
    if pte is not None and pte.frame is not None:
        case = do_wp_page(mm, pte)
    elif pte is not None and pte.slot is not None:
        case = do_swap_page(mm, pte, vma)
    elif vma.recipe(vpn)[0] == "file" or vma.past_eof(vpn):
        case = do_file_page(mm, p, vpn, vma)
    else:
        case = do_anonymous_page(mm, p, vpn, vma, Case.STACK if grew else Case.ZERO)
    pte = p.spt[vpn]
    if write and not pte.writable:
        break_cow(mm, pte)
    return pte, case


def grow_stack(mm: MM, p: AddressSpace, addr: int) -> Vma | None:
    """The stack, grown down to ``addr``, if this is a stack access (within
    PUSHA_SLACK below esp, inside stack_max, clear of other mappings); else None."""
    stack = p.stack
    if not (addr < stack.start and addr >= p.esp - PUSHA_SLACK
            and addr >= mm.phys_base - mm.stack_max):
        return None
    start = addr & ~PAGE_MASK
    if any(v is not stack and v.end > start and v.start < stack.start for v in p.vmas):
        return None                     # would run into another mapping
    stack.start = start
    return stack


def page_in(mm: MM, read: Callable[[memoryview], None], what: str) -> Frame:
    """A new frame filled by ``read``, pinned while the I/O is in flight.
    Raises BusError (the frame goes back), OutOfMemory or LabError."""
    f = get_frame(mm)
    f.pinned = True
    try:
        with mm.io:
            read(f.view)
    except PageIOError as e:
        mm.free_frame(f)
        raise _as_bus_error(e, what) from None
    except BaseException:
        mm.free_frame(f)
        raise
    finally:
        f.pinned = False
    return f


def _as_bus_error(e: PageIOError, what: str) -> VMError:
    """A page that could not be read is the faulting process's BusError; a
    lab that is gone or hung (LabError) stays what it is."""
    return e if isinstance(e, LabError) else BusError(f"{what}: {e}")


# -- one handler per case ---------------------------------------------------

def do_anonymous_page(mm: MM, p: AddressSpace, vpn: int, vma: Vma, case: Case) -> Case:
    """A zero-filled page at ``vpn`` (a first touch, or stack growth)."""
    f = get_frame(mm)
    f.view[:] = _ZERO
    mm.map_page(p, vpn, f, vma.writable)
    mm.loaded(f)
    return case


def do_file_page(mm: MM, p: AddressSpace, vpn: int, vma: Vma) -> Case:
    """A page of a file: from the page cache if a mapping has it (minor),
    else one read (major). Raises BusError past the end of the file."""
    if vma.past_eof(vpn):
        raise BusError(f"pid {p.pid}: page {vpn << PAGE_SHIFT:#x} is past the end of "
                       f"{vma.file.path}")
    _, offset, nbytes = vma.recipe(vpn)
    writable = vma.shared and vma.writable   # private mappings see the cache read-only: COW
    f = mm.cached_page(vma.file, offset, nbytes)
    if f is not None:
        mm.map_page(p, vpn, f, writable)
        return Case.PAGECACHE
    f = page_in(mm, lambda view: vma.file.read_page(offset, nbytes, view),
                f"pid {p.pid}: reading {vma.file.path} at {offset}")
    mm.stat["pgpgin"] += PAGE_KIB
    mm.cache_page(f, vma.file, offset, nbytes)
    mm.map_page(p, vpn, f, writable)
    mm.loaded(f)
    return Case.ELF if vma.kind == "elf" else Case.MMAP


def do_swap_page(mm: MM, pte: Pte, vma: Vma) -> Case:
    """The page in ``pte``'s slot, read back (major) and mapped again into
    every PTE that shared it; the slot is freed."""
    slot = pte.slot
    if mm.frames.nr_free == 0 and mm.swap.used >= mm.swap.slots:
        f, users = _swap_in_through_bounce(mm, pte, slot)
    else:
        f = page_in(mm, lambda view: mm.swap.read(slot, view, aligned=True),
                    f"pid {pte.proc.pid}: swap-in of slot {slot} failed")
        users = mm.unpark(slot)
        mm.swap.free(slot)                  # the slot is free once read back
    mm.stat["pswpin"] += 1
    mm.stat["pgpgin"] += PAGE_KIB
    mm.map_swapped(users, f, pte, vma.writable)
    mm.loaded(f)
    return Case.SWAP


def _swap_in_through_bounce(mm: MM, pte: Pte, slot: int) -> tuple[Frame, list[Pte]]:
    """Memory and swap both full: read the page aside and lend its slot to
    the victim. Raises BusError, or OutOfMemory with the slot taken back as it was."""
    try:
        with mm.io:
            mm.swap.read(slot, mm.bounce, aligned=True)
    except PageIOError as e:
        raise _as_bus_error(e, f"pid {pte.proc.pid}: swap-in of slot {slot} failed") from None
    users = mm.unpark(slot)
    crc = mm.swap.lend(slot)
    try:
        f = get_frame(mm)
    except BaseException:
        mm.swap.take_back(slot, crc)        # no victim's write reached it
        mm.repark(slot, users)
        raise
    f.view[:] = mm.bounce
    return f, users


def do_wp_page(mm: MM, pte: Pte) -> Case:
    """A write to a present, read-only page: copy-on-write."""
    break_cow(mm, pte)
    return Case.COW


def break_cow(mm: MM, pte: Pte) -> None:
    """Give ``pte`` a page it may write: the same frame if it is the last user
    of an anonymous page, else a copy. Raises OutOfMemory with ``pte`` as it was."""
    old = pte.frame
    if old.file is None and len(old.rmap) == 1:
        pte.writable = True
        mm.stat["cow_reuses"] += 1
        return
    data = bytes(old.view)              # snapshot: getting a frame may evict `old`
    mm.unmap_page(pte)
    if not old.rmap:
        mm.free_frame(old)              # then the next get_frame cannot fail
    try:
        new = get_frame(mm)
    except BaseException:
        # No eviction succeeded, so `old` is as it was: map it back.
        mm.remap_page(pte, old)
        raise
    new.view[:] = data
    new.page_dirty = True
    mm.map_page(pte.proc, pte.vpn, new, True)
    mm.loaded(new)
