"""Getting a frame, and taking one back: Linux's vmscan in miniature.

A victim's page goes where its kind says: a page-cache page of a file is
written back if dirty and dropped; a dirty anonymous page goes to swap; a
clean anonymous page (zero-filled, never written) is simply dropped, since
its recipe makes it again. Every PTE in the victim's reverse map is
unmapped, so a page shared after fork leaves all its mappers at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from vmlab.core.errors import LabError, OutOfMemory, PageIOError
from vmlab.core.frame import Frame
from vmlab.core.page import PAGE_KIB, Pte

if TYPE_CHECKING:
    from vmlab.core.machine import Machine


def _needs_swap(f: Frame) -> bool:
    return f.file is None and f.is_dirty()


def get_frame(m: "Machine") -> Frame:
    """A free frame, evicting a victim if memory is full."""
    f = m.frames.alloc()
    return f if f is not None else evict(m)


TRIES = 2       # a victim whose write-out fails is tried once more, then passed over


def evict(m: "Machine") -> Frame:
    """Page out a victim and hand over its frame. A victim whose swap-out or
    write-back fails stays resident and dirty; another victim is tried.
    Raises OutOfMemory if none can go. Its time is reclaim's, not the fault's."""
    t0 = time.perf_counter_ns()
    try:
        return _evict(m)
    finally:
        ns = time.perf_counter_ns() - t0
        m.reclaim_ns += ns
        m.costs.record("reclaim", ns)


def _evict(m: "Machine") -> Frame:
    failures: dict[Frame, int] = {}
    last = ""          # only the text: the exception's traceback would pin frame views

    def ok(f: Frame) -> bool:
        if f.pinned or failures.get(f, 0) >= TRIES:
            return False
        return not (_needs_swap(f) and m.swap.used >= m.swap.slots)

    while (victim := m.policy.victim(ok)) is not None:
        m.stat["pgscan"] += 1
        try:
            page_out(m, victim)
        except LabError:
            raise                       # no other victim could fare better
        except PageIOError as e:
            m.stat["writeback_errors"] += 1
            failures[victim] = failures.get(victim, 0) + 1
            last = str(e)
            continue
        m.policy.released(victim)
        victim.rmap.clear()
        victim.dirty = False
        victim.file = None
        m.stat["evictions"] += 1
        return victim
    why = (f"writing pages out failed ({last})" if last
           else f"every frame holds a page that needs swap and swap ({m.swap.slots} slots) is full")
    raise OutOfMemory(f"out of memory: no frame of {len(m.frames.frames)} could be freed: {why}")


def page_out(m: "Machine", f: Frame) -> None:
    """Move the page in ``f`` out and unmap every PTE of it. The I/O comes
    first, so a failed write leaves the page resident and unchanged."""
    f.pinned = True
    try:
        if f.file is not None:
            if f.is_dirty():
                write_back(m, f)
            del m.pagecache[f.file.key, f.pgoff, f.nbytes]
            _forget_all(f)
            _let_go_of_file(m, f)
        elif f.is_dirty():
            slot = m.swap.alloc()
            try:
                with m.io:
                    m.swap.write(slot, f.view)
            except BaseException:
                m.swap.free(slot)
                raise
            m.stat["pswpout"] += 1
            m.stat["pgpgout"] += PAGE_KIB
            for q in f.rmap:
                q.frame, q.slot = None, slot
                q.writable = q.accessed = q.dirty = False
            m.slot_rmap[slot] = list(f.rmap)
        else:
            _forget_all(f)
    finally:
        f.pinned = False


def _forget_all(f: Frame) -> None:
    """Unmap a page whose recipe can make it again: its PTEs go."""
    for q in f.rmap:
        q.frame = None
        del q.proc.spt[q.vpn]


def write_back(m: "Machine", f: Frame) -> None:
    """One write of a shared file page: only its bytes inside the file.
    On failure nothing changes: the page stays dirty."""
    with m.io:
        f.file.write_page(f.pgoff, f.view[:f.nbytes])
    m.stat["writebacks"] += 1
    m.stat["pgpgout"] += PAGE_KIB
    f.dirty = False
    for q in f.rmap:
        q.dirty = False


def _let_go_of_file(m: "Machine", f: Frame) -> None:
    """An unmapped dirty page, now written, no longer holds its file open."""
    if f in m.unmapped_dirty:
        m.unmapped_dirty.discard(f)
        m.close_file(f.file)


def free_frame(m: "Machine", f: Frame) -> None:
    m.policy.released(f)
    if f.file is not None:
        m.pagecache.pop((f.file.key, f.pgoff, f.nbytes), None)
        _let_go_of_file(m, f)
    m.frames.free(f)


def release_pte(m: "Machine", pte: Pte) -> Exception | None:
    """munmap/exit of one page: write a dirty shared page back, then let go
    of the frame or swap slot (freed when the last user lets go). If the
    write-back fails the page stays in the page cache, dirty, to be retried
    on eviction and at close; the error is returned for the caller to report."""
    f = pte.frame
    error = None
    if f is not None:
        if f.file is not None and (pte.dirty or f.dirty):
            f.dirty, pte.dirty = True, False
            try:
                write_back(m, f)
            except PageIOError as e:
                m.stat["writeback_errors"] += 1
                error = e
        f.rmap.remove(pte)
        pte.frame = None
        if not f.rmap:
            if f.file is not None and f.dirty:
                if f not in m.unmapped_dirty:   # its file stays open until it is written
                    f.file.users += 1
                    m.unmapped_dirty.add(f)
            else:
                free_frame(m, f)
    elif pte.slot is not None:
        users = m.slot_rmap[pte.slot]
        users.remove(pte)
        if not users:
            del m.slot_rmap[pte.slot]
            m.swap.free(pte.slot)
        pte.slot = None
    return error


def flush_unmapped(m: "Machine") -> list[Exception]:
    """Try again to write dirty pages that outlived their mappings."""
    errors = []
    for f in list(m.unmapped_dirty):
        if not f.rmap:                  # (mapped again: its mapping writes it back)
            try:
                write_back(m, f)
            except PageIOError as e:
                errors.append(e)
                continue
            free_frame(m, f)
    return errors
