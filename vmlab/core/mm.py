"""The memory manager's state: the frame table, the swap device, the page
cache, the swap slots' users, the open files, the counters; and the verbs
that change its tables. No other code edits them, so the invariants that
tie a PTE, a frame's reverse map, a swap slot and a file together are kept
here, in one place:

- a PTE maps a frame iff it is in that frame's ``rmap``; it names a swap
  slot iff it is in that slot's users; never both;
- a frame with a file is in the page cache under ``(file, offset, bytes)``;
- a file stays open while a mapping holds it, or an orphan (a dirty file
  page whose mappings went before its write-back succeeded) needs it.
"""

from __future__ import annotations

from typing import Any, Callable

from vmlab.core.filemap import MappedFile
from vmlab.core.frame import Frame, FrameTable
from vmlab.core.labio import LabIO
from vmlab.core.page import Pte
from vmlab.core.policy import Policy, access_hook
from vmlab.core.stats import FaultCosts, new_counters
from vmlab_swapdisk import SwapDisk


class MM:
    """Everything the fault and reclaim paths work on, with the verbs that
    keep its tables consistent. ``Machine`` makes one and shows it."""

    def __init__(self, frames: FrameTable, policy: Policy, phys_base: int, stack_max: int) -> None:
        """Empty tables over ``frames``; the swap device, the I/O guard and
        the bounce page are set once the lab holds them."""
        self.frames, self.policy = frames, policy
        self.phys_base, self.stack_max = phys_base, stack_max
        self.touch = access_hook(policy)          # what the MMU calls on each access
        self.stat = new_counters()
        self.costs = FaultCosts()
        self.reclaim_ns = 0                         # time spent evicting, all faults together
        self.swap: SwapDisk | None = None           # set once the lab holds the swap file
        self.io: LabIO | None = None                # the I/O guard every page-in/out passes
        self.bounce: memoryview | None = None       # a page-aligned page beside the frames
        self.pagecache: dict[tuple[Any, int, int], Frame] = {}
        self.slot_users: dict[int, list[Pte]] = {}
        self.files: dict[tuple[int, int], MappedFile] = {}
        self.orphans: set[Frame] = set()
        self.procs: dict[int, Any] = {}
        self._next_pid = 1
        self.exit_hooks: list[Callable[[Any], None]] = []         # see a process just before it goes
        self.munmap_hooks: list[Callable[[Any, int], None]] = []  # ... and each munmap

    # -- processes -----------------------------------------------------------

    def new_pid(self) -> int:
        """The next process id (1, 2, ...; never reused)."""
        pid, self._next_pid = self._next_pid, self._next_pid + 1
        return pid

    def add_process(self, p: Any) -> None:
        """``p`` is alive: it counts among the machine's processes."""
        self.procs[p.pid] = p

    def remove_process(self, p: Any) -> None:
        """``p`` is gone (its pages released before)."""
        self.procs.pop(p.pid, None)

    # -- files: one descriptor per file, counted references ---------------------

    def open_file(self, path: str) -> MappedFile:
        """The one descriptor for ``path`` (shared by its mappings), with a
        reference for the caller. Raises MapError."""
        f = MappedFile(path)
        known = self.files.get(f.key)
        if known is not None:
            f.close()
            f = known
        else:
            self.files[f.key] = f
        f.users += 1
        return f

    def hold_file(self, f: MappedFile) -> None:
        """One more reference (a mapping, or an orphaned page) to ``f``."""
        f.users += 1

    def put_file(self, f: MappedFile) -> None:
        """Drop a reference; the last one closes the file."""
        f.users -= 1
        if f.users == 0:
            del self.files[f.key]
            f.close()

    # -- PTEs and frames ------------------------------------------------------

    def map_page(self, p: Any, vpn: int, f: Frame, writable: bool) -> Pte:
        """Map frame ``f`` at ``vpn`` in ``p`` (accessed, clean); returns the PTE."""
        pte = p.spt.get(vpn)
        if pte is None:
            pte = p.spt[vpn] = Pte(p, vpn)
        self._attach(pte, f, writable, accessed=True)
        return pte

    @staticmethod
    def _attach(pte: Pte, f: Frame, writable: bool, accessed: bool) -> None:
        """``pte`` maps ``f`` (clean), off any slot: the one place a PTE gets a frame."""
        pte.frame, pte.slot = f, None
        pte.writable, pte.accessed, pte.dirty = writable, accessed, False
        f.rmap.append(pte)

    def unmap_page(self, pte: Pte) -> Frame:
        """Take ``pte`` off its frame; returns the frame."""
        f = pte.frame
        f.rmap.remove(pte)
        pte.frame = None
        return f

    def remap_page(self, pte: Pte, f: Frame) -> None:
        """Put ``pte`` back on ``f`` with its bits as they were (undoes unmap_page)."""
        f.rmap.append(pte)
        pte.frame = f

    def forget_page(self, f: Frame) -> None:
        """Every PTE of ``f`` goes: its recipe (a file, or zeros) makes it again."""
        for q in f.rmap:
            q.frame = None
            del q.proc.spt[q.vpn]
        f.rmap.clear()

    def share_page(self, pte: Pte, child_pte: Pte) -> None:
        """fork: ``child_pte`` maps what ``pte`` maps, frame or slot; an
        anonymous frame becomes copy-on-write for both."""
        f = pte.frame
        if f is None:
            child_pte.slot = pte.slot
            self.slot_users[pte.slot].append(child_pte)
            return
        if f.file is None:
            f.page_dirty = f.page_dirty or pte.dirty
            pte.dirty = pte.writable = False
        child_pte.frame, child_pte.writable = f, pte.writable
        f.rmap.append(child_pte)

    # -- the page cache ------------------------------------------------------

    @staticmethod
    def _key(file: MappedFile, offset: int, nbytes: int) -> tuple[Any, int, int]:
        """The page cache's one key for a file page."""
        return (file.key, offset, nbytes)

    def cached_page(self, file: MappedFile, offset: int, nbytes: int) -> Frame | None:
        """The frame holding that page of ``file``, if a mapping brought it in."""
        return self.pagecache.get(self._key(file, offset, nbytes))

    def cache_page(self, f: Frame, file: MappedFile, offset: int, nbytes: int) -> None:
        """``f`` now holds ``nbytes`` of ``file`` at ``offset``."""
        f.file, f.pgoff, f.nbytes = file, offset, nbytes
        self.pagecache[self._key(file, offset, nbytes)] = f

    def uncache_page(self, f: Frame) -> None:
        """``f`` leaves the page cache; an orphan no longer holds its file."""
        self.pagecache.pop(self._key(f.file, f.pgoff, f.nbytes), None)
        if f in self.orphans:
            self.orphans.discard(f)
            self.put_file(f.file)

    def orphan(self, f: Frame) -> None:
        """A dirty file page outlived its mappings (its write-back failed):
        it stays cached, holding its file open, until written."""
        if f not in self.orphans:
            self.hold_file(f.file)
            self.orphans.add(f)

    # -- swap slots ------------------------------------------------------------

    def park(self, f: Frame, slot: int) -> None:
        """``f``'s page is in ``slot`` now: every PTE of it points there."""
        for q in f.rmap:
            q.frame, q.slot = None, slot
            q.writable = q.accessed = q.dirty = False
        self.slot_users[slot] = list(f.rmap)
        f.rmap.clear()

    def unpark(self, slot: int) -> list[Pte]:
        """The PTEs waiting on ``slot``, taken off it (``repark`` undoes it)."""
        return self.slot_users.pop(slot)

    def repark(self, slot: int, users: list[Pte]) -> None:
        """Undo ``unpark``: the page is still in ``slot``, for ``users``."""
        self.slot_users[slot] = users

    def map_swapped(self, users: list[Pte], f: Frame, faulting: Pte, writable: bool) -> None:
        """A page back from swap in ``f``: every PTE that shared it maps it again
        (read-only if shared); ``f`` is dirty, the only copy being in memory."""
        alone = len(users) == 1
        for q in users:
            self._attach(q, f, alone and writable, accessed=q is faulting)
        f.page_dirty = True

    def leave_slot(self, pte: Pte) -> None:
        """``pte`` lets go of its slot, freed when its last user goes."""
        users = self.slot_users[pte.slot]
        users.remove(pte)
        if not users:
            del self.slot_users[pte.slot]
            self.swap.free(pte.slot)
        pte.slot = None

    # -- frames: taken, freed, handed over ----------------------------------------

    def loaded(self, f: Frame) -> None:
        """``f`` holds a page now: the policy is told (once; ``released`` pairs it)."""
        f.known = True
        self.policy.loaded(f)

    def _release(self, f: Frame) -> None:
        """The policy is told ``f`` is empty, if it knew of it (a frame whose
        page-in failed never reached it)."""
        if f.known:
            f.known = False
            self.policy.released(f)

    def free_frame(self, f: Frame) -> None:
        """``f`` goes back to the free list, out of the policy and the page cache."""
        self._release(f)
        if f.file is not None:
            self.uncache_page(f)
        self.frames.free(f)

    def reclaimed(self, f: Frame) -> None:
        """``f``'s page is out: the frame is empty, to be handed over at once."""
        self._release(f)
        self.frames.reset(f)
