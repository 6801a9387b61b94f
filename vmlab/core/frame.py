"""Physical memory: one pre-faulted anonymous mmap cut into page frames,
each knowing which PTEs map it (the reverse map).

Frames are handed out lowest index first, so memory fills in order, which is
what the textbook clock assumes.
"""

from __future__ import annotations

import heapq
import mmap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmlab.core.errors import OutOfMemory
from vmlab.core.page import PAGE

if TYPE_CHECKING:
    from vmlab.core.filemap import MappedFile
    from vmlab.core.page import Pte


@dataclass(eq=False, slots=True)
class Frame:
    """One physical page. A replacement policy sees ``index``, ``page``,
    ``referenced`` (which it may clear) and ``dirty``."""

    index: int
    view: memoryview
    rmap: list["Pte"] = field(default_factory=list)
    pinned: bool = False            # I/O in flight or being copied: not a victim
    known: bool = False             # the policy was told it is loaded (and not yet released)
    page_dirty: bool = False        # differs from its backing store (PTE dirty bits aside)
    file: "MappedFile | None" = None    # page cache frame of a shared file mapping
    pgoff: int = 0                  # its file offset
    nbytes: int = 0                 # its bytes inside the file (what a write-back writes)

    def clear(self) -> None:
        """Empty: no mappings, clean, unpinned, no file."""
        self.rmap.clear()
        self.pinned = self.page_dirty = False
        self.file = None

    def in_use(self) -> bool:
        """Mapped, or a dirty file page kept after its last mapping went
        because its write-back failed (retried on eviction and at close)."""
        return bool(self.rmap) or self.file is not None

    @property
    def dirty(self) -> bool:
        """Written since it was loaded: the page's own flag, or a PTE's dirty bit."""
        return self.page_dirty or any(p.dirty for p in self.rmap)

    @property
    def referenced(self) -> bool:
        """Accessed since the bit was last cleared (a PTE's accessed bit)."""
        return any(p.accessed for p in self.rmap)

    @referenced.setter
    def referenced(self, value: bool) -> None:
        for p in self.rmap:
            p.accessed = bool(value)

    @property
    def page(self) -> tuple | None:
        """What it holds: ``(file key, offset)`` for a file page,
        ``(pid, vpn)`` of its first mapper for an anonymous one; None if empty."""
        if self.file is not None:
            return (self.file.key, self.pgoff)
        return (self.rmap[0].proc.pid, self.rmap[0].vpn) if self.rmap else None


class FrameTable:
    """
    >>> ft = FrameTable(3)
    >>> [ft.alloc().index for _ in range(3)], ft.alloc(), ft.nr_free
    ([0, 1, 2], None, 0)
    """

    def __init__(self, nframes: int, frame: type = Frame) -> None:
        """``nframes`` pre-faulted page frames; ``frame``: the class of each
        (made as ``frame(index, view)``). Raises OutOfMemory if they cannot be had."""
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
        try:
            self.mem = mmap.mmap(-1, nframes * PAGE, flags=flags)
        except (OSError, MemoryError, OverflowError) as e:
            raise OutOfMemory(f"cannot allocate {nframes} frames ({nframes * PAGE} bytes): "
                              f"{getattr(e, 'strerror', None) or e}") from None
        view = memoryview(self.mem)
        self.frames = [frame(i, view[i * PAGE:(i + 1) * PAGE]) for i in range(nframes)]
        self._free = list(range(nframes))

    def alloc(self) -> Frame | None:
        return self.frames[heapq.heappop(self._free)] if self._free else None

    @staticmethod
    def reset(frame: Frame) -> None:
        """Make ``frame`` empty (its own ``clear()``)."""
        frame.clear()

    def free(self, frame: Frame) -> None:
        """Empty ``frame`` and put it back on the free list."""
        self.reset(frame)
        heapq.heappush(self._free, frame.index)

    def free_all(self) -> None:
        """Empty every frame and put them all back on the free list."""
        for f in self.frames:
            f.clear()
        self._free = list(range(len(self.frames)))

    @property
    def nr_free(self) -> int:
        return len(self._free)

    def close(self) -> None:
        for f in self.frames:
            f.view.release()
        self.frames = []
        try:
            self.mem.close()
        except BufferError:
            pass    # a view lives on (in a traceback, say): freed when it goes
