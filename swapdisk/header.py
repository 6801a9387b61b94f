"""Linux's swap header (``mkswap``'s ``SWAPSPACE2``, version 1) in page 0.

Writing the real layout lets ``file swap.img`` and ``blkid`` recognise the
device; slot 0 is the header, slots ``1..last_page`` hold pages.
"""

from __future__ import annotations

import struct
import uuid as uuidlib
from dataclasses import dataclass

PAGE = 4096
MAGIC = b"SWAPSPACE2"
_INFO = struct.Struct("<III16s16s")     # version, last_page, nr_badpages, uuid, label
_INFO_AT = 1024                          # after the boot bits
MAX_LAST_PAGE = 0xFFFFFFFF               # a 32-bit field


class BadSwapHeader(ValueError):
    """The file does not start with a version 1 swap header."""


@dataclass(frozen=True)
class SwapHeader:
    last_page: int
    uuid: str
    label: str = ""

    @property
    def slots(self) -> int:
        """Usable page slots (all pages but the header)."""
        return self.last_page

    def pack(self) -> bytes:
        page = bytearray(PAGE)
        label = self.label.encode()[:16]
        _INFO.pack_into(page, _INFO_AT, 1, self.last_page, 0,
                        uuidlib.UUID(self.uuid).bytes, label)
        page[PAGE - len(MAGIC):] = MAGIC
        return bytes(page)

    @classmethod
    def unpack(cls, page: bytes) -> "SwapHeader":
        if len(page) < PAGE or page[PAGE - len(MAGIC):PAGE] != MAGIC:
            raise BadSwapHeader("no SWAPSPACE2 signature (not a swap file; run vmlab mkswap)")
        version, last_page, _bad, raw_uuid, label = _INFO.unpack_from(page, _INFO_AT)
        if version != 1 or last_page < 1:
            raise BadSwapHeader(f"unsupported swap header (version {version}, last page {last_page})")
        return cls(last_page, str(uuidlib.UUID(bytes=raw_uuid)),
                   label.rstrip(b"\0").decode(errors="replace"))

    @classmethod
    def for_size(cls, size: int, label: str = "vmlab") -> "SwapHeader":
        """A new header for a ``size``-byte file; ValueError for a size that
        is not whole pages, under 2 pages or past the format's 2^32 pages,
        or a label over 16 bytes (the format's field).

        >>> SwapHeader.for_size(1 << 20).slots
        255
        """
        if size % PAGE or size < 2 * PAGE:
            raise ValueError(f"swap size must be a multiple of {PAGE} and at least 2 pages")
        if size // PAGE - 1 > MAX_LAST_PAGE:
            raise ValueError(f"swap size {size} is over the format's limit of "
                             f"{(MAX_LAST_PAGE + 1) * PAGE >> 40} TiB")
        if len(label.encode()) > 16:
            raise ValueError(f"swap label {label[:40]!r} is over 16 bytes")
        return cls(size // PAGE - 1, str(uuidlib.uuid4()), label)
