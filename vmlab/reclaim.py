"""Getting a frame, and taking one back: Linux's vmscan in miniature.

A victim's page goes where its kind says: a page-cache page of a file is
written back if dirty and dropped; a dirty anonymous page goes to swap; a
clean anonymous page (zero-filled, never written) is simply dropped, since
its recipe makes it again. Every PTE in the victim's reverse map is
unmapped, so a page shared after fork leaves all its mappers at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmlab.errors import OutOfMemory
from vmlab.frame import Frame
from vmlab.page import Pte

if TYPE_CHECKING:
    from vmlab.machine import Machine


def _evictable(f: Frame) -> bool:
    return not f.pinned


def _needs_swap(f: Frame) -> bool:
    return f.file is None and f.is_dirty()


def get_frame(m: "Machine") -> Frame:
    """A free frame, evicting a victim if memory is full."""
    f = m.frames.alloc()
    return f if f is not None else evict(m)


def evict(m: "Machine") -> Frame:
    victim = m.policy.victim(_evictable)
    if victim is not None and _needs_swap(victim) and m.swap.used >= m.swap.slots:
        victim = m.policy.victim(lambda f: _evictable(f) and not _needs_swap(f))
    if victim is None:
        raise OutOfMemory(f"out of memory: all {len(m.frames.frames)} frames hold pages "
                          f"that need swap, and swap ({m.swap.slots} slots) is full")
    page_out(m, victim)
    m.policy.released(victim)
    victim.rmap.clear()
    victim.dirty = False
    victim.file = None
    m.stat["evictions"] += 1
    return victim


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
        elif f.is_dirty():
            slot = m.swap.alloc()
            try:
                m.swap.write(slot, f.view)
            except BaseException:
                m.swap.free(slot)
                raise
            m.stat["pswpout"] += 1
            m.stat["pgpgout"] += 4
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
    """One write of a shared file page: only its bytes inside the file."""
    f.file.write_page(f.pgoff, f.view[:f.nbytes])
    m.stat["writebacks"] += 1
    m.stat["pgpgout"] += 4
    f.dirty = False
    for q in f.rmap:
        q.dirty = False


def free_frame(m: "Machine", f: Frame) -> None:
    m.policy.released(f)
    if f.file is not None:
        m.pagecache.pop((f.file.key, f.pgoff, f.nbytes), None)
    m.frames.free(f)


def release_pte(m: "Machine", pte: Pte) -> None:
    """munmap/exit of one page: write a dirty shared page back, then let go
    of the frame or swap slot (freed when the last user lets go)."""
    f = pte.frame
    if f is not None:
        if f.file is not None and (pte.dirty or f.dirty):
            f.dirty = True
            write_back(m, f)
        f.rmap.remove(pte)
        pte.frame = None
        if not f.rmap:
            free_frame(m, f)
    elif pte.slot is not None:
        users = m.slot_rmap[pte.slot]
        users.remove(pte)
        if not users:
            del m.slot_rmap[pte.slot]
            m.swap.free(pte.slot)
        pte.slot = None
