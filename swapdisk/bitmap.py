"""A slot bitmap: one bit per swap slot, first-fit from a rotating hint."""

from __future__ import annotations

import re

_NOT_FULL = re.compile(b"[^\xff]")     # a byte with at least one free bit


class SlotBitmap:
    """
    >>> b = SlotBitmap(10, reserved=1)
    >>> b.alloc(), b.alloc(), b.used
    (1, 2, 2)
    >>> b.free(1); b.alloc()
    1
    """

    def __init__(self, nbits: int, reserved: int = 0) -> None:
        self.nbits = nbits
        self.bits = bytearray((nbits + 7) // 8)
        # Bits past the end are marked used so a search never returns them.
        for i in range(nbits, len(self.bits) * 8):
            self.bits[i >> 3] |= 1 << (i & 7)
        self.reserved = reserved
        for i in range(reserved):
            self.bits[i >> 3] |= 1 << (i & 7)
        self.used = 0
        self._hint = 0

    def alloc(self) -> int | None:
        """Mark the lowest free slot at or after the hint used; None when full."""
        m = _NOT_FULL.search(self.bits, self._hint) or _NOT_FULL.search(self.bits, 0)
        if m is None:
            return None
        byte = m.start()
        b = self.bits[byte]
        bit = (~b & (b + 1)).bit_length() - 1       # lowest clear bit
        self.bits[byte] = b | (1 << bit)
        self.used += 1
        self._hint = byte
        return byte * 8 + bit

    def take(self, slot: int) -> None:
        """Mark the free ``slot`` used (it must be free)."""
        if not (self.reserved <= slot < self.nbits) or self.is_used(slot):
            raise ValueError(f"slot {slot} is not free")
        self.bits[slot >> 3] |= 1 << (slot & 7)
        self.used += 1

    def free(self, slot: int) -> None:
        if not (self.reserved <= slot < self.nbits) or not self.is_used(slot):
            raise ValueError(f"slot {slot} is not allocated")
        self.bits[slot >> 3] &= ~(1 << (slot & 7)) & 0xFF
        self.used -= 1
        self._hint = min(self._hint, slot >> 3)

    def is_used(self, slot: int) -> bool:
        return bool(self.bits[slot >> 3] & (1 << (slot & 7)))
