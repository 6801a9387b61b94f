"""The supplemental page table: how each virtual page is materialised.

Two pieces, as in Linux: a ``Vma`` per mapping says how any page in its range
is made (zero-filled, or read from a file at an offset), and a ``Pte`` per
page that has state records where that page is now (in a frame, or in a swap
slot). A page with no ``Pte`` has never been touched, or was dropped clean:
its recipe comes from its ``Vma`` again. So the table grows with the pages a
process uses, not with the size of its mappings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vmlab.core.filemap import MappedFile
    from vmlab.core.frame import Frame

PAGE = 4096
PAGE_SHIFT = 12
PAGE_MASK = PAGE - 1
PAGE_KIB = PAGE // 1024         # Linux counts pgpgin/pgpgout, Rss and Swap in KiB


def page_round_up(n: int) -> int:
    return (n + PAGE_MASK) & ~PAGE_MASK


@dataclass(eq=False, slots=True)
class Vma:
    """One mapping: ``[start, end)``, page-aligned."""

    start: int
    end: int
    kind: str                       # "stack", "elf", "mmap" (a file) or "anon"
    writable: bool
    executable: bool = False
    shared: bool = False            # MAP_SHARED: writes reach the file
    file: "MappedFile | None" = None
    offset: int = 0                 # file offset of ``start``
    file_bytes: int = 0             # bytes of file data from ``start``; zeros after

    def recipe(self, vpn: int) -> tuple[str, int, int]:
        """``("zero", 0, 0)`` or ``("file", offset, read_bytes)`` for a page.

        >>> Vma(0x1000, 0x4000, "elf", False, file=None).recipe(2)
        ('zero', 0, 0)
        """
        rel = (vpn << PAGE_SHIFT) - self.start
        if self.file is None or rel >= self.file_bytes:
            return ("zero", 0, 0)
        return ("file", self.offset + rel, min(PAGE, self.file_bytes - rel))

    def past_eof(self, vpn: int) -> bool:
        """A file mapping's page wholly beyond the end of the file (SIGBUS in Linux)."""
        return self.kind == "mmap" and (vpn << PAGE_SHIFT) - self.start >= page_round_up(self.file_bytes)

    def __contains__(self, addr: int) -> bool:
        return self.start <= addr < self.end

    @property
    def pages(self) -> range:
        return range(self.start >> PAGE_SHIFT, self.end >> PAGE_SHIFT)


@dataclass(eq=False, slots=True)
class Pte:
    """Where one page of one process is now, with its MMU bits.

    ``writable`` is the hardware bit: the VMA allows writes and the frame is
    not shared copy-on-write. ``accessed`` and ``dirty`` are set by the MMU
    (``Process.read``/``write``) and cleared by reclaim.
    """

    proc: "AddressSpace"
    vpn: int
    frame: "Frame | None" = None
    slot: int | None = None         # swap slot when paged out
    writable: bool = False
    accessed: bool = False
    dirty: bool = False


class AddressSpace(Protocol):
    """What the fault path needs of a process (``Process`` is one): its
    SPT, its mappings, its stack and stack pointer, and its fault counts."""

    pid: int
    spt: dict[int, Pte]
    vmas: list[Vma]
    stack: Vma
    esp: int
    minflt: int
    majflt: int

    def find_vma(self, addr: int) -> Vma | None: ...
