"""Getting a frame, and taking one back: Linux's vmscan in miniature.

A victim's page goes where its kind says: a page-cache page of a file is
written back if dirty and dropped; a dirty anonymous page goes to swap; a
clean anonymous page (zero-filled, never written) is simply dropped, since
its recipe makes it again. Every PTE in the victim's reverse map is
unmapped, so a page shared after fork leaves all its mappers at once.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator, Sequence

from vmlab.core.errors import LabError, OutOfMemory, PageIOError
from vmlab.core.frame import Frame
from vmlab.core.mm import MM
from vmlab.core.page import PAGE_KIB, Pte
from vmlab.core.stats import RECLAIM

TRIES = 2       # a victim whose write-out fails is tried once more, then passed over


def _needs_swap(f: Frame) -> bool:
    """Would evicting ``f`` take a swap slot (a dirty anonymous page)?"""
    return f.file is None and f.dirty


def get_frame(mm: MM) -> Frame:
    """A free frame, evicting a victim if memory is full.
    Raises OutOfMemory (no victim could go) or LabError."""
    f = mm.frames.alloc()
    return f if f is not None else evict(mm)


def evict(mm: MM) -> Frame:
    """Page a victim out and hand its empty frame over; its time is
    reclaim's, not the fault's. Raises OutOfMemory or LabError."""
    def ok(failures: dict[Any, int]) -> list[Frame]:
        """The frames that may go: mapped, unpinned, not failed too often,
        and not needing a slot when swap is full."""
        full = mm.swap.used >= mm.swap.slots
        return [f for f in mm.frames.frames if not f.pinned and failures.get(f, 0) < TRIES
                and f.in_use() and not (full and _needs_swap(f))]

    def give(f: Frame) -> None:
        """Page ``f`` out and forget it. Raises PageIOError (``f`` stays)."""
        page_out(mm, f)
        mm.reclaimed(f)
    with timed_reclaim(mm):
        return evict_by_policy(mm, mm.policy, ok, give, len(mm.frames.frames), mm.swap.slots)


@contextlib.contextmanager
def timed_reclaim(books: Any, pages: Callable[[], int] = lambda: 1) -> Iterator[None]:
    """Time the body as reclaim's, apart from the fault's (``books.reclaim_ns``),
    and record each of the ``pages()`` pages it freed in ``books.costs``.

    Each page's entry is its share of the body's time."""
    t0 = time.perf_counter_ns()
    try:
        yield
    finally:
        ns = time.perf_counter_ns() - t0
        books.reclaim_ns += ns
        n = pages()
        for _ in range(n):
            books.costs.record(RECLAIM, ns // n)


def evict_by_policy(books: Any, policy: Any, candidates: Callable[[dict[Any, int]], Sequence[Any]],
                    give: Callable[[Any], None], nframes: int, slots: int) -> Any:
    """The reclaim loop of both machines: returns the victim whose page
    ``give`` took out; raises OutOfMemory when none could go.

    ``policy`` picks among ``candidates(failures)``. A victim whose write
    fails (PageIOError) stays resident and dirty, is tried TRIES times, then
    passed over; a LabError ends it. Counted in ``books.stat``; the caller
    times it (``timed_reclaim``)."""
    failures: dict[Any, int] = {}
    last = ""          # only the text: the exception's traceback would pin frame views
    while cands := candidates(failures):
        victim = policy.victim(cands)
        books.stat["pgscan"] += 1
        try:
            give(victim)
        except LabError:
            raise                       # no other victim could fare better
        except PageIOError as e:
            books.stat["writeback_errors"] += 1
            failures[victim] = failures.get(victim, 0) + 1
            last = str(e)
            continue
        books.stat["evictions"] += 1
        return victim
    why = (f"writing pages out failed ({last})" if last
           else f"every frame holds a page that needs swap and swap ({slots} slots) is full")
    raise OutOfMemory(f"out of memory: no frame of {nframes} could be freed: {why}")


def page_out(mm: MM, f: Frame) -> None:
    """Move the page in ``f`` out and unmap every PTE of it. The I/O comes
    first, so a failed write (PageIOError) leaves the page resident and unchanged."""
    f.pinned = True
    try:
        if f.file is not None:
            if f.dirty:
                write_back(mm, f)
            mm.uncache_page(f)
            mm.forget_page(f)
        elif f.dirty:
            swap_out(mm, f)
        else:
            mm.forget_page(f)
    finally:
        f.pinned = False


def swap_out(mm: MM, f: Frame) -> None:
    """Write anonymous page ``f`` to a new slot and point its PTEs there.
    Raises PageIOError (the slot is given back, nothing changed)."""
    slot = mm.swap.alloc()
    try:
        with mm.io:
            mm.swap.write(slot, f.view)
    except BaseException:
        mm.swap.free(slot)
        raise
    mm.stat["pswpout"] += 1
    mm.stat["pgpgout"] += PAGE_KIB
    mm.park(f, slot)


def write_back(mm: MM, f: Frame) -> None:
    """One write of a shared file page: only its bytes inside the file.
    Raises PageIOError, and then nothing changes: the page stays dirty."""
    with mm.io:
        f.file.write_page(f.pgoff, f.view[:f.nbytes])
    mm.stat["writebacks"] += 1
    mm.stat["pgpgout"] += PAGE_KIB
    f.page_dirty = False
    for q in f.rmap:
        q.dirty = False


def release_pte(mm: MM, pte: Pte) -> Exception | None:
    """munmap/exit of one page: write it back if dirty and shared, let go of its
    frame or slot. Returns a failed write-back's error (the page stays, dirty).

    Frames and slots are freed with their last user; a page whose write-back
    failed stays cached as an orphan, retried on eviction and at close."""
    if pte.slot is not None:
        mm.leave_slot(pte)
        return None
    f = pte.frame
    if f is None:
        return None
    error = None
    if f.file is not None and (pte.dirty or f.page_dirty):
        f.page_dirty, pte.dirty = True, False
        try:
            write_back(mm, f)
        except PageIOError as e:
            mm.stat["writeback_errors"] += 1
            error = e
    mm.unmap_page(pte)
    if not f.rmap:
        if f.file is not None and f.page_dirty:
            mm.orphan(f)                # its file stays open until it is written
        else:
            mm.free_frame(f)
    return error


def flush_orphans(mm: MM) -> list[Exception]:
    """Try again to write the dirty pages that outlived their mappings;
    returns the failures."""
    errors = []
    for f in list(mm.orphans):
        if not f.rmap:                  # (mapped again: its mapping writes it back)
            try:
                write_back(mm, f)
            except PageIOError as e:
                errors.append(e)
                continue
            mm.free_frame(f)
    return errors
