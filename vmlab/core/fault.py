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
from typing import TYPE_CHECKING, Callable

from vmlab.core.errors import BusError, LabError, PageIOError, SegFault, VMError
from vmlab.core.frame import Frame
from vmlab.core.page import PAGE, PAGE_KIB, PAGE_MASK, PAGE_SHIFT, Pte, Vma
from vmlab.core.reclaim import free_frame, get_frame
from vmlab.core.stats import Case

if TYPE_CHECKING:
    from vmlab.core.machine import Machine
    from vmlab.core.process import Process

PUSHA_SLACK = 32        # PUSHA writes 32 bytes below esp before moving it
_ZERO = bytes(PAGE)
_ns = time.perf_counter_ns


def handle_fault(m: "Machine", p: "Process", addr: int, write: bool) -> Pte:
    """Serve a fault at ``addr``; returns the PTE, now present (and writable
    if ``write``). Raises SegFault, BusError or OutOfMemory. Counts the fault
    in one update, so a sampler never sees half of it, and times it without
    the reclaim it caused (timed apart, as Linux's pgsteal)."""
    t0, r0 = _ns(), m.reclaim_ns
    try:
        pte, case = _dispatch(m, p, addr, write)
    except BaseException:
        m.stat["pgfault"] += 1
        raise
    stat = m.stat
    stat.update({"pgfault": stat["pgfault"] + 1, case.counter: stat[case.counter] + 1,
                 "pgmajfault": stat["pgmajfault"] + case.major})
    if case.major:
        p.majflt += 1
    else:
        p.minflt += 1
    m.costs.record(case.value, _ns() - t0 - (m.reclaim_ns - r0))
    return pte


def _dispatch(m: "Machine", p: "Process", addr: int, write: bool) -> tuple[Pte, Case]:
    """Check the address, find the mapping (or grow the stack), and call the
    handler for the case; returns the PTE and the case. Raises as handle_fault."""
    if addr >= m.phys_base or addr < PAGE:
        raise SegFault(f"pid {p.pid}: access to {addr:#x}, outside user memory")
    vpn = addr >> PAGE_SHIFT
    vma = p.find_vma(addr)
    grew = vma is None and (vma := grow_stack(m, p, addr)) is not None
    if vma is None:
        raise SegFault(f"pid {p.pid}: no mapping at {addr:#x} (esp {p.esp:#x})")
    if write and not vma.writable:
        raise SegFault(f"pid {p.pid}: write to read-only page at {addr:#x}")

    pte = p.spt.get(vpn)
    if pte is not None and pte.frame is not None:
        case = do_wp_page(m, pte)
    elif pte is not None and pte.slot is not None:
        case = do_swap_page(m, pte, vma)
    elif vma.recipe(vpn)[0] == "file" or vma.past_eof(vpn):
        case = do_file_page(m, p, vpn, vma)
    else:
        case = do_anonymous_page(m, p, vpn, vma, Case.STACK if grew else Case.ZERO)
    pte = p.spt[vpn]
    if write and not pte.writable:
        break_cow(m, pte)
    return pte, case


def grow_stack(m: "Machine", p: "Process", addr: int) -> Vma | None:
    """Extend the stack down to ``addr`` if this is a stack access."""
    stack = p.stack
    if not (addr < stack.start and addr >= p.esp - PUSHA_SLACK
            and addr >= m.phys_base - m.stack_max):
        return None
    start = addr & ~PAGE_MASK
    if any(v is not stack and v.end > start and v.start < stack.start for v in p.vmas):
        return None                     # would run into another mapping
    stack.start = start
    return stack


def install(p: "Process", vpn: int, f: Frame, writable: bool) -> Pte:
    pte = p.spt.get(vpn)
    if pte is None:
        pte = p.spt[vpn] = Pte(p, vpn)
    pte.frame, pte.slot = f, None
    pte.writable, pte.accessed, pte.dirty = writable, True, False
    f.rmap.append(pte)
    return pte


def page_in(m: "Machine", read: Callable[[memoryview], None], what: str) -> Frame:
    """A new frame filled by ``read``, pinned while the I/O is in flight. If
    the read fails the frame goes back and the process gets a BusError."""
    f = get_frame(m)
    f.pinned = True
    try:
        with m.io:
            read(f.view)
    except PageIOError as e:
        free_frame(m, f)
        raise _as_bus_error(e, what) from None
    except BaseException:
        free_frame(m, f)
        raise
    finally:
        f.pinned = False
    return f


def _as_bus_error(e: PageIOError, what: str) -> VMError:
    """A page that could not be read is the faulting process's BusError; a
    lab that is gone or hung (LabError) stays what it is."""
    return e if isinstance(e, LabError) else BusError(f"{what}: {e}")


# -- one handler per case ---------------------------------------------------

def do_anonymous_page(m: "Machine", p: "Process", vpn: int, vma: Vma, case: Case) -> Case:
    f = get_frame(m)
    f.view[:] = _ZERO
    install(p, vpn, f, vma.writable)
    m.policy.loaded(f)
    return case


def do_file_page(m: "Machine", p: "Process", vpn: int, vma: Vma) -> Case:
    if vma.past_eof(vpn):
        raise BusError(f"pid {p.pid}: page {vpn << PAGE_SHIFT:#x} is past the end of "
                       f"{vma.file.path}")
    _, offset, nbytes = vma.recipe(vpn)
    key = (vma.file.key, offset, nbytes)
    f = m.pagecache.get(key)
    if f is not None:                   # another mapping has it: no I/O
        install(p, vpn, f, vma.shared and vma.writable)
        return Case.PAGECACHE
    f = page_in(m, lambda view: vma.file.read_page(offset, nbytes, view),
                f"pid {p.pid}: reading {vma.file.path} at {offset}")
    m.stat["pgpgin"] += PAGE_KIB
    f.file, f.pgoff, f.nbytes = vma.file, offset, nbytes
    m.pagecache[key] = f
    # Private mappings see the page cache read-only; a write copies it.
    install(p, vpn, f, vma.shared and vma.writable)
    m.policy.loaded(f)
    return Case.ELF if vma.kind == "elf" else Case.MMAP


def do_swap_page(m: "Machine", pte: Pte, vma: Vma) -> Case:
    slot = pte.slot
    if m.frames.nr_free == 0 and m.swap.used >= m.swap.slots:
        f, users = _swap_in_through_bounce(m, pte, slot)
    else:
        f = page_in(m, lambda view: m.swap.read(slot, view, aligned=True),
                    f"pid {pte.proc.pid}: swap-in of slot {slot} failed")
        users = m.slot_rmap.pop(slot)
        m.swap.free(slot)                   # the slot is free once read back
    m.stat["pswpin"] += 1
    m.stat["pgpgin"] += PAGE_KIB
    # Every PTE that shared the page before it left shares the frame again
    # (read-only if more than one).
    alone = len(users) == 1
    for q in users:
        q.frame, q.slot = f, None
        q.writable = alone and vma.writable
        q.accessed = q is pte
        q.dirty = False
        f.rmap.append(q)
    f.dirty = True                          # the only copy is in memory now
    m.policy.loaded(f)
    return Case.SWAP


def _swap_in_through_bounce(m: "Machine", pte: Pte, slot: int) -> tuple[Frame, list[Pte]]:
    """Memory and swap are both full: a victim needs a slot before this page
    can have a frame. Read the page aside and lend its slot to the victim;
    if no frame comes of it (every write-out failed), the slot is taken
    back as it was and the error raised: nothing is lost or unmapped."""
    try:
        with m.io:
            m.swap.read(slot, m.bounce, aligned=True)
    except PageIOError as e:
        raise _as_bus_error(e, f"pid {pte.proc.pid}: swap-in of slot {slot} failed") from None
    users = m.slot_rmap.pop(slot)
    crc = m.swap.lend(slot)
    try:
        f = get_frame(m)
    except BaseException:
        m.swap.take_back(slot, crc)         # no victim's write reached it
        m.slot_rmap[slot] = users
        raise
    f.view[:] = m.bounce
    return f, users


def do_wp_page(m: "Machine", pte: Pte) -> Case:
    break_cow(m, pte)
    return Case.COW


def break_cow(m: "Machine", pte: Pte) -> None:
    """Give ``pte`` a page it may write: the same frame if it is the last
    user of an anonymous page, else a private copy."""
    old = pte.frame
    if old.file is None and len(old.rmap) == 1:
        pte.writable = True
        m.stat["cow_reuses"] += 1
        return
    data = bytes(old.view)              # snapshot: getting a frame may evict `old`
    old.rmap.remove(pte)
    pte.frame = None
    if not old.rmap:
        free_frame(m, old)              # then the next get_frame cannot fail
    try:
        new = get_frame(m)
    except BaseException:
        # No eviction succeeded, so `old` is as it was: map it back.
        old.rmap.append(pte)
        pte.frame = old
        raise
    new.view[:] = data
    new.dirty = True
    install(pte.proc, pte.vpn, new, True)
    m.policy.loaded(new)
