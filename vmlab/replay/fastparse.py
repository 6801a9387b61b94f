"""Trace blocks parsed by numpy, without a Python step per reference.

Each parser takes a block of whole lines (or whole numbers) as bytes and
returns its pages (int64) and store flags (uint8), or None when anything
in the block is not in the canonical form: then the exact line parser in
``traces`` reads that block, and either agrees or names the bad line. So
the fast path never decides what is an error.
"""

from __future__ import annotations

import re

import numpy as np

from vmlab.replay.lineparse import MAX_ACCESS, MAX_PAGE, PAGE_SHIFT

_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _HEX[bytes([_c]).upper()[0]] = _i
_DEC = np.full(256, 255, np.uint8)
_DEC[48:58] = np.arange(10)
_REF_CLASS = np.zeros(256, np.uint8)           # 0: not in a plain reference string
_REF_CLASS[48:58] = 1                          # 1: a digit
_REF_CLASS[list(b" \t\n\r\x0b\x0c,")] = 2      # 2: a separator
_VALGRIND = re.compile(rb"(?m)^==[^\n]*\n")
_POW10 = 10 ** np.arange(7, -1, -1, dtype=np.int64)
_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.uint8))


def refs_block(raw: bytes) -> np.ndarray | None:
    """The page numbers in ``raw`` (digits, commas and ASCII white space
    only), or None if it holds anything else or a number past MAX_PAGE.

    >>> refs_block(b"1,2 3\\n4"), refs_block(b"1 # c")
    (array([1, 2, 3, 4]), None)
    """
    cls = _REF_CLASS[np.frombuffer(raw, np.uint8)]
    if not cls.all():
        return None
    if not (cls == 1).any():
        return _EMPTY[0]
    pages = np.fromstring(raw.replace(b",", b" "), dtype=np.int64, sep=" ")
    return None if pages.max() > MAX_PAGE else pages


def lackey_block(raw: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Pages and store flags of ``raw``, whole lines of valgrind lackey
    output (``I  addr,size``, `` L``/`` S``/`` M`` records, ``==`` lines),
    or None if any line is not one of those in lackey's own layout.

    >>> pages, writes = lackey_block(b"==1== x\\nI  04000ffe,4\\n M 7ff000,4\\n")
    >>> pages.tolist(), writes.tolist()
    ([16384, 16385, 2047, 2047], [0, 0, 0, 1])
    """
    if b"==" in raw:
        raw = _VALGRIND.sub(b"", raw)
    if not raw:
        return _EMPTY
    a = np.frombuffer(raw, np.uint8)
    nl = np.flatnonzero(a == 10)
    if not len(nl) or nl[-1] != len(a) - 1:
        return None
    starts = np.concatenate(([0], nl[:-1] + 1))
    if (nl - starts < 6).any():                        # "I  0,1" is the shortest record
        return None
    kind = _kinds(a, starts)
    comma = np.flatnonzero(a == 44)
    if kind is None or len(comma) != len(nl):
        return None
    alen, slen = comma - starts - 3, nl - comma - 1    # one comma per line, inside it
    if alen.min() < 1 or alen.max() > 16 or slen.min() < 1 or slen.max() > 8:
        return None
    nibbles, size = _digits(a, comma, alen, 16, _HEX), _digits(a, nl, slen, 8, _DEC)
    if nibbles is None or size is None:
        return None
    packed = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])   # two a byte
    addr = packed.view(">u8").ravel().astype(np.uint64)
    size = size.astype(np.int64) @ _POW10
    if size.min() < 1 or size.max() > MAX_ACCESS or (addr > ~np.uint64(0) - (size - 1).astype(np.uint64)).any():
        return None
    return _expand(addr, size, kind)


def _kinds(a: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """Each line's kind (b"I", b"L", b"S", b"M"), or None if a line does
    not open with ``I  `` or `` X ``."""
    c0, c1, c2 = a[starts], a[starts + 1], a[starts + 2]
    instr = (c0 == 73) & (c1 == 32)
    data = (c0 == 32) & ((c1 == 76) | (c1 == 83) | (c1 == 77))
    if not ((instr | data) & (c2 == 32)).all():
        return None
    return np.where(instr, 73, c1)


def _digits(a: np.ndarray, end: np.ndarray, length: np.ndarray, width: int,
            table: np.ndarray) -> np.ndarray | None:
    """The ``length`` digits before each ``end``, right-aligned in rows of
    ``width`` (zeros in front), as values by ``table``; None if one is not
    a digit."""
    padded = np.concatenate((np.zeros(width, np.uint8), a))
    windows = np.lib.stride_tricks.as_strided(padded, (len(a) + 1, width), (1, 1))
    d = table[windows[end]]                        # rows of the width bytes before each end
    d[np.arange(-width, 0) < -length[:, None]] = 0
    return None if (d == 255).any() else d


def _expand(addr: np.ndarray, size: np.ndarray, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One reference a page an access touches; an M is a load then a store
    of every page it touches."""
    first = (addr >> np.uint64(PAGE_SHIFT)).astype(np.int64)
    span = ((addr + (size - 1).astype(np.uint64)) >> np.uint64(PAGE_SHIFT)).astype(np.int64) - first + 1
    modify = kind == 77
    if (span == 1).all() and not modify.any():
        return first, (kind == 83).astype(np.uint8)
    count = span * (1 + modify)
    line = np.repeat(np.arange(len(count)), count)
    k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    pages = first[line] + k % span[line]
    writes = (kind[line] == 83) | (modify[line] & (k >= span[line]))
    return pages, writes.astype(np.uint8)
