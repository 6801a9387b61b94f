"""The pager: serves a real workload's page faults from the core's frame
table, a replacement policy and the swap device on the lab mount.

The workload's region is a memfd mapped shared in the workload only; the
pager never maps it (it uses pread, UFFDIO_COPY and hole punching). A page
of the region is in one of these states, kept in two tables the pager
alone edits (``frame_of`` and ``slot_of``, its SPT; its compiled fast path,
``_fastpath.c``, edits them on its behalf):

    absent           never touched, or dropped clean: a touch zero-fills
    in swap          ``slot_of[page]`` holds its only copy: a touch reads it
    mapped           ``frame_of[page]`` is a frame's index (else -1) and the
                     page is in the workload's memory; clean pages are
                     write-protected
    held             in a frame's own bytes, not mapped: its reference bit
                     was cleared (or swap readahead brought it); a touch is
                     a minor fault served from those bytes

User space cannot read the MMU's accessed bits, so a reference bit is
simulated the 4.2BSD way: clearing a mapped page's bit (the policy's clock
hand does it) takes the page out of the workload's memory while the pager
keeps its bytes; the next touch faults (a ``ref`` fault, no I/O) and sets
the bit again.
"""

from __future__ import annotations

import mmap
import os
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from vmlab.core.errors import OutOfMemory, VMError
from vmlab.core.frame import FrameTable
from vmlab.core.labio import LabIO
from vmlab.core.page import PAGE_KIB
from vmlab.core.reclaim import TRIES, evict_by_policy, timed_reclaim
from vmlab.core.stats import Case, FaultCosts
from vmlab.real import fastpath
from vmlab.real.uffd import COPY_WP, FLAG_WP, FLAG_WRITE, PAGE, Uffd, address_of, punch
from vmlab_swapdisk import SwapDisk

INDEX = attrgetter("index")
SPURIOUS_LIMIT = 10_000     # reports in a row of one page already mapped: it is not

# The real machine's counters beyond the simulated machine's.
REAL_COUNTERS = ("ref_faults", "wp_faults", "swapcache_faults", "ref_arms", "swap_ra", "allocstall")


@dataclass(eq=False, slots=True)
class RealFrame:
    """One frame of the real machine. A policy sees ``index``, ``page`` (the
    page number in the region), ``referenced`` (clearing it takes a mapped
    page out of the workload's memory, so the next touch is seen) and
    ``dirty``. ``view`` holds the page's bytes while it is not mapped."""

    index: int
    view: memoryview
    page: int | None = None
    dirty: bool = False
    mapped: bool = False            # in the workload's memory (else held in view)
    readahead: bool = False         # brought by swap readahead, not touched yet
    addr: int = 0                   # the address of view: the source of a COPY
    cleared: list = field(default_factory=list)    # the pager's list of bits cleared
    _ref: bool = False

    @property
    def referenced(self) -> bool:
        """Touched since the bit was last cleared."""
        return self._ref

    @referenced.setter
    def referenced(self, value: bool) -> None:
        """Set or clear the bit; clearing a mapped page's queues it to be
        taken out of memory, so that its next touch is seen."""
        if self._ref and not value and self.mapped:
            self.cleared.append(self)
        self._ref = bool(value)

    def clear(self) -> None:
        """Empty: no page, clean, not mapped."""
        self.page = None
        self.dirty = self.mapped = self.readahead = self._ref = False


class Pager:
    """Serves the faults of one region of ``npages`` pages through ``uffd``,
    with the frames of ``table``, ``policy``'s choices and ``swap`` behind
    ``io``. Counters go to ``stat``, service times to ``costs``."""

    def __init__(self, uffd: Uffd, memfd: int, npages: int, table: FrameTable, policy: Any,
                 swap: SwapDisk, io: LabIO, stat: dict[str, int], costs: FaultCosts,
                 readahead: int = 0, scan_every: int = 0, batch: int = 1) -> None:
        self.uffd, self.memfd, self.npages = uffd, memfd, npages
        self.table, self.policy, self.swap, self.io = table, policy, swap, io
        self.stat, self.costs = stat, costs
        self.frames = tuple(table.frames)       # the candidates when every frame may go
        self.frame_of = array("i", b"\xff" * 4 * npages)             # page -> frame index (-1: none)
        self.slot_of = array("q", bytes(8 * npages))
        self.page_of = array("q", b"\xff" * 8 * (swap.slots + 1))     # slot -> page (-1: none)
        self.cleared: list[RealFrame] = []
        base = address_of(table.mem)
        for f in table.frames:
            f.clear()
            f.addr, f.cleared = base + f.index * PAGE, self.cleared
        self._zero = mmap.mmap(-1, PAGE)
        self.zero_addr = address_of(self._zero)
        self.cluster = 1 << readahead if readahead else 1
        self.touched = policy.touched if policy.wants_touch else None
        self.tick_every = policy.tick_every
        self.scan_every = scan_every if policy.wants_touch else 0
        self.faults = 0
        self.reclaim_ns = 0
        self.batch = batch
        self.zapped: list[int] | None = None     # pages reclaim will punch, while it runs
        self.filling: Any = ()                   # frames readahead took, not filled yet
        self.cands: list[RealFrame] = []         # reclaim's candidates, while it runs
        self.last_spurious, self.repeats = -1, 0
        self.fast: fastpath.FastPath | None = None

    def use_fast_path(self, ctl: tuple[int, int]) -> None:
        """Serve zero fills and swap-ins through the compiled fast path from
        now on (``serve``), watching the descriptors ``ctl`` beside the
        region's. Raises VMError where it cannot be had."""
        self.fast = fastpath.FastPath(self, ctl)

    # -- the fault path ------------------------------------------------------------

    def fault(self, page: int, flags: int) -> None:
        """Serve one fault message: decide from the page's state (two threads
        may report one page), call the handler for its case, count it."""
        t0 = time.perf_counter_ns()
        r0 = self.reclaim_ns
        fi = self.frame_of[page]
        write = bool(flags & FLAG_WRITE)
        if fi < 0:
            case = self.do_swap_page(page, write) if self.slot_of[page] else self.do_anonymous_page(page, write)
        elif not (f := self.frames[fi]).mapped:
            case = self.do_held_page(f, write)
        elif flags & FLAG_WP or (write and not f.dirty):
            case = self.do_wp_page(f)
        else:
            self._spurious(page)
            return
        self.count(case, time.perf_counter_ns() - t0 - (self.reclaim_ns - r0))
        self.uffd.wake(page)        # last: on one CPU the workload runs at once
        self.after_fault()

    def count(self, case: Case, ns: int) -> None:
        """Count a fault served as ``case`` in ``ns`` nanoseconds."""
        stat = self.stat
        stat["pgfault"] += 1
        stat[case.counter] += 1
        if case.major:
            stat["pgmajfault"] += 1
        self.costs.record(case.key, ns)

    def after_fault(self) -> None:
        """One more fault: the policy's tick and the reference scan when due."""
        self.faults += 1
        if self.tick_every and self.faults % self.tick_every == 0:
            self.policy.tick()
            self.arm_cleared()
        if self.scan_every and self.faults % self.scan_every == 0:
            self.scan_references()

    def _spurious(self, page: int) -> None:
        """A report for a page already mapped: another thread's, served
        already, so wake it. The same page reported again and again means
        it went behind the pager's back (madvise(MADV_REMOVE) on the
        region): a VMError, not a loop for ever."""
        self.repeats = self.repeats + 1 if page == self.last_spurious else 1
        self.last_spurious = page
        if self.repeats > SPURIOUS_LIMIT:
            raise VMError(f"page {page} of the region left memory behind the pager's back "
                          "(did the workload madvise(MADV_REMOVE) its memory?)")
        self.uffd.wake(page)

    def do_anonymous_page(self, page: int, write: bool) -> Case:
        """First touch (or a clean page dropped): a page of zeros, write-protected
        unless the touch is a write (then it is dirty at once)."""
        f = self.get_frame()
        self.uffd.copy(page, self.zero_addr, 0 if write else COPY_WP)
        self.install(f, page, write)
        return Case.ZERO

    def do_swap_page(self, page: int, write: bool) -> Case:
        """A page whose only copy is in swap: one read (with its readahead
        neighbours when ``cluster`` > 1), then mapped; a write frees the slot."""
        slot = self.slot_of[page]
        f = self.get_frame()
        run, first = [f], slot
        if self.cluster > 1:
            run, first = self._readahead_frames(f, slot)
        try:
            with self.io:
                if len(run) == 1:
                    self.swap.read(slot, f.view, aligned=True)
                else:
                    self.swap.read_run(first, [g.view for g in run])
        except BaseException:
            for g in run:
                self.table.free(g)
            raise
        self.swapped_in(page, len(run), write)
        self.uffd.copy(page, f.addr, 0 if write else COPY_WP)
        self.install(f, page, write)
        for i, g in enumerate(run):
            if g is not f:
                self.hold(g, self.page_of[first + i])
        return Case.SWAP

    def swapped_in(self, page: int, n: int, write: bool) -> None:
        """Count ``n`` pages read from swap for a fault on ``page`` (the rest
        readahead); a write makes its slot stale."""
        stat = self.stat
        stat["pswpin"] += n
        stat["pgpgin"] += n * PAGE_KIB
        stat["swap_ra"] += n - 1
        if write:
            self._drop_slot(page)

    def do_held_page(self, f: RealFrame, write: bool) -> Case:
        """A page held in its frame's bytes (its bit was cleared, or readahead
        brought it): mapped again from them, no I/O; the bit is set."""
        case = Case.SWAPCACHE if f.readahead else Case.REF
        if write and not f.dirty:
            f.dirty = True
            self._drop_slot(f.page)
        self.uffd.copy(f.page, f.addr, 0 if f.dirty else COPY_WP)
        f.mapped, f.readahead, f._ref = True, False, True
        if self.touched is not None:
            self.touched(f)
        return case

    def do_wp_page(self, f: RealFrame) -> Case:
        """A write to a clean (write-protected) page: dirty now, its swap copy
        stale; the protection goes and the writer wakes."""
        f.dirty = True
        self._drop_slot(f.page)
        self.uffd.protect(f.page, on=False)
        return Case.WP

    # -- the fast path ---------------------------------------------------------------

    def serve(self, deadline_ns: int) -> bool:
        """Serve faults through the fast path, and here the ones it hands
        back, until another descriptor is ready (True) or ``deadline_ns``
        (CLOCK_MONOTONIC; 0: none) has passed (False). Raises what
        ``fault`` raises."""
        fp, table = self.fast, self.table
        while True:
            fp.refill(table)
            rc = fp.serve(deadline_ns, self._budget())
            self.books()
            if rc == fastpath.HANDOFF:
                if fp.exhausted() and table.nr_free:
                    fp.retry()                  # it used its frames; the table has more
                else:
                    self.fault(*fp.fault())
            elif rc == fastpath.ERROR:
                self._fast_failed()
            elif rc != fastpath.FULL:
                return rc == fastpath.EVENT

    def _budget(self) -> int:
        """Faults the fast path may serve before the policy's next tick or
        reference scan is due (those run here, between faults)."""
        n = fastpath.LOG
        if self.tick_every:
            n = min(n, self.tick_every - self.faults % self.tick_every)
        if self.scan_every:
            n = min(n, self.scan_every - self.faults % self.scan_every)
        return n

    def books(self) -> None:
        """Keep the books of the faults the fast path served, in order, as
        ``fault`` keeps them: the frame, the policy, the counters."""
        frames = self.frames
        for r in self.fast.served():
            write = r.kind > 0xFF
            self.install(frames[r.frame], r.page, write)
            if r.kind & 0xFF == fastpath.CASE_SWAP:
                self.swap.count_reads(1)
                self.swapped_in(r.page, 1, write)
                self.count(Case.SWAP, r.ns)
            else:
                self.count(Case.ZERO, r.ns)
            self.after_fault()

    def _fast_failed(self) -> None:
        """Raise what failed in the fast path, as ``fault`` would have: a
        swap read's error through the I/O guard (PageIOError, LabError)."""
        failed = self.fast.failed_read()
        if failed is None:
            raise self.fast.failure()
        slot, got, err = failed
        with self.io:
            if got < 0:
                raise OSError(err, os.strerror(err))
            self.swap.count_reads(1)
            self.swap.reject(slot, got)

    # -- the tables ------------------------------------------------------------------

    def install(self, f: RealFrame, page: int, dirty: bool) -> None:
        """``page`` is now mapped in frame ``f``, referenced; the policy is told."""
        f.page, f.dirty, f.mapped, f._ref = page, dirty, True, True
        self.frame_of[page] = f.index
        self.policy.loaded(f)

    def hold(self, f: RealFrame, page: int) -> None:
        """``page`` is now held (not mapped) in ``f``, unreferenced: readahead."""
        f.page, f.dirty, f.mapped, f.readahead, f._ref = page, False, False, True, False
        self.frame_of[page] = f.index
        self.policy.loaded(f)

    def _drop_slot(self, page: int) -> None:
        """The page's swap copy is stale (it was written): free its slot."""
        slot = self.slot_of[page]
        if slot:
            self.swap.free(slot)
            self.slot_of[page] = 0
            self.page_of[slot] = -1

    def _readahead_frames(self, f: RealFrame, slot: int) -> tuple[list[RealFrame], int]:
        """Frames for the run of swapped-out pages around ``slot`` inside its
        aligned cluster (Linux's vm.page-cluster), ``f`` for ``slot`` itself;
        returns them in slot order and the run's first slot."""
        lo = slot & ~(self.cluster - 1)
        hi = min(lo + self.cluster, len(self.page_of))
        first, last = slot, slot
        while first - 1 >= max(lo, 1) and self._in_swap(first - 1):
            first -= 1
        while last + 1 < hi and self._in_swap(last + 1):
            last += 1
        self.filling = run = [f]        # not candidates for reclaim: no page yet
        start = slot
        try:
            for s in [*range(slot + 1, last + 1), *range(slot - 1, first - 1, -1)]:
                try:
                    g = self.get_frame()
                except OutOfMemory:     # none to spare: the run so far is contiguous
                    break
                if s > slot:
                    run.append(g)
                else:
                    run.insert(0, g)
                    start = s
        finally:
            self.filling = ()
        return run, start

    def _in_swap(self, slot: int) -> bool:
        """Does ``slot`` hold the only copy of a page that is not in memory?"""
        page = self.page_of[slot]
        return page >= 0 and self.slot_of[page] == slot and self.frame_of[page] < 0

    # -- reclaim ----------------------------------------------------------------------

    def get_frame(self) -> RealFrame:
        """A free frame (one the fast path holds first: the lowest); when
        none is left, reclaim frees a batch first. Raises OutOfMemory,
        LabError, PolicyError."""
        if self.fast is not None and (i := self.fast.take()) is not None:
            return self.frames[i]
        f = self.table.alloc()
        if f is None:
            self.reclaim()
            f = self.table.alloc()
        return f

    def reclaim(self) -> None:
        """Free up to ``batch`` frames, the policy's victims one by one by the
        core's reclaim loop (Linux frees SWAP_CLUSTER_MAX pages a time), and
        take their pages out of memory with one hole punch per contiguous
        run. Raises OutOfMemory (not one could go), LabError, PolicyError."""
        self.stat["allocstall"] += 1
        # No frame is free, so every frame holds a page but those being filled.
        self.cands = cands = list(self.frames)
        for g in self.filling:
            del cands[bisect_left(cands, g.index, key=INDEX)]
        freed = 0
        self.zapped = []
        with timed_reclaim(self, lambda: freed):
            try:
                while freed < self.batch:
                    try:
                        v = evict_by_policy(self, self.policy, self.candidates, self._give,
                                            len(self.frames), self.swap.slots)
                    except OutOfMemory:
                        if freed:
                            break
                        raise
                    del cands[bisect_left(cands, v.index, key=INDEX)]
                    self.table.free(v)
                    freed += 1
            finally:
                self.flush_zapped()

    def _give(self, v: RealFrame) -> None:
        """Take victim ``v``'s page out. The pages whose bits the policy
        cleared are taken out of memory first, ``v`` aside. Raises
        PageIOError: ``v`` stays, dirty."""
        self.arm_cleared(skip=v)
        self.page_out(v)
        self.policy.released(v)

    def candidates(self, failures: dict[RealFrame, int]) -> list[RealFrame]:
        """The frames that may go now: every one holding a page (a list kept
        through the batch, no list to build) unless swap is full or a
        write-out failed."""
        full = self.swap.used >= self.swap.slots
        if not failures and not full:
            return self.cands
        return [f for f in self.cands if failures.get(f, 0) < TRIES and not (full and f.dirty)]

    def page_out(self, v: RealFrame) -> None:
        """Take ``v``'s page out of memory: a dirty one is written to a new
        slot first (write-protected, then copied, so no write is lost); a
        clean one has a copy already (swap, or zeros) and is dropped.
        Raises PageIOError, and then the page stays, dirty."""
        page = v.page
        if v.dirty:
            if v.mapped:
                self.uffd.protect(page, on=True)
                os.preadv(self.memfd, [v.view], page * PAGE)
            slot = self.swap.alloc()
            try:
                with self.io:
                    self.swap.write(slot, v.view, aligned=True)
            except BaseException:
                self.swap.free(slot)
                raise
            self.slot_of[page], self.page_of[slot] = slot, page
            self.stat["pswpout"] += 1
            self.stat["pgpgout"] += PAGE_KIB
        if v.mapped:
            self.zap(page)
        self.frame_of[page] = -1

    def zap(self, page: int) -> None:
        """Take ``page`` (its bytes saved, or in swap) out of the workload's
        memory: at once, or during reclaim with the run it joins (the page
        stays protected till then, so a write in between is seen)."""
        if self.zapped is None:
            punch(self.memfd, page * PAGE)
        else:
            self.zapped.append(page)

    def flush_zapped(self) -> None:
        """Punch the pages reclaim gathered, one call per contiguous run."""
        pages, self.zapped = sorted(self.zapped), None
        i = 0
        while i < len(pages):
            j = i + 1
            while j < len(pages) and pages[j] == pages[j - 1] + 1:
                j += 1
            punch(self.memfd, pages[i] * PAGE, (j - i) * PAGE)
            i = j

    # -- reference bits ---------------------------------------------------------------

    def arm_cleared(self, skip: RealFrame | None = None) -> None:
        """Take out of memory the mapped pages whose bits were just cleared
        (keeping their bytes), so their next touch is seen."""
        cleared = self.cleared
        while cleared:
            f = cleared.pop()
            if f is not skip and f.mapped and not f._ref:
                self.arm(f)

    def arm(self, f: RealFrame) -> None:
        """Hold ``f``'s page in its frame's bytes and drop it from memory;
        a dirty page is write-protected first so no write slips between."""
        off = f.page * PAGE
        if f.dirty:
            self.uffd.protect(f.page, on=True)
        os.preadv(self.memfd, [f.view], off)
        self.zap(f.page)
        f.mapped = False
        self.stat["ref_arms"] += 1

    def scan_references(self) -> None:
        """For a policy that wants touches (LRU): clear every mapped page's
        bit, so the first touch of each after this is reported."""
        for f in self.frames:
            if f.mapped:
                f.referenced = False
        self.arm_cleared()

    def close(self) -> None:
        """Let go of the zero page (the tables go with the pager)."""
        self._zero.close()
