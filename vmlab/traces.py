"""Reading memory traces: reference strings and valgrind lackey output.

``refs``: page numbers separated by commas, spaces or newlines (``#`` starts
a comment). ``lackey``: ``valgrind --tool=lackey --trace-mem=yes`` output:
``I``, `` L``, `` S``, `` M`` lines of ``hexaddr,size``; ``==`` lines are
valgrind's own and ignored; an access that spans two pages touches both;
``M`` (modify) is a load and a store.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from typing import Iterable

PAGE_SHIFT = 12
MAX_PAGE = (1 << 52) - 1            # 64-bit addresses, 4 KiB pages
MAX_ACCESS = 1 << 20                # one instruction's access; lackey's are at most a few hundred bytes


class TraceError(ValueError):
    """A trace that cannot be read; the message names the line."""


@dataclass
class Trace:
    pages: array = field(default_factory=lambda: array("q"))
    writes: bytearray = field(default_factory=bytearray)   # 1 where the reference stores

    def __len__(self) -> int:
        return len(self.pages)

    def distinct(self) -> int:
        return len(set(self.pages))


_SPLIT = re.compile(r"[,\s]+")
_LACKEY = re.compile(r"\s*([ILSM])\s+([0-9a-fA-F]+),\s*(\d+)\s*$")


def parse_refs(lines: Iterable[str]) -> Trace:
    """
    >>> list(parse_refs(["1, 2 3", "4 # four", ""]).pages)
    [1, 2, 3, 4]
    """
    t = Trace()
    for n, line in enumerate(lines, 1):
        for tok in _SPLIT.split(line.split("#", 1)[0].strip()):
            if not tok:
                continue
            if not (tok.isascii() and tok.isdigit()) or int(tok) > MAX_PAGE:   # not '²
                raise TraceError(f"line {n}: {tok[:40]!r} is not a page number")
            t.pages.append(int(tok))
    t.writes = bytearray(len(t.pages))
    return t


def parse_lackey(lines: Iterable[str]) -> Trace:
    """
    >>> t = parse_lackey(["==1== Lackey", "I  04000000,3", " M 7ff000ffe,4"])
    >>> [hex(p) for p in t.pages], list(t.writes)
    (['0x4000', '0x7ff000', '0x7ff001', '0x7ff000', '0x7ff001'], [0, 0, 0, 1, 1])
    """
    pages, writes = array("q"), bytearray()
    for n, line in enumerate(lines, 1):
        if line.startswith("==") or not line.strip():
            continue
        m = _LACKEY.match(line)
        if m is None:
            raise TraceError(f"line {n}: not a lackey record: {line.strip()[:60]!r}")
        kind, addr, size = m.group(1), int(m.group(2), 16), int(m.group(3))
        if not 0 < size <= MAX_ACCESS or addr + size - 1 > MAX_PAGE << PAGE_SHIFT | 0xFFF:
            raise TraceError(f"line {n}: bad access {line.strip()[:60]!r}")
        first, last = addr >> PAGE_SHIFT, (addr + size - 1) >> PAGE_SHIFT
        span = range(first, last + 1)
        for flag in ((0, 1) if kind == "M" else (1,) if kind == "S" else (0,)):
            for p in span:
                pages.append(p)
                writes.append(flag)
    return Trace(pages, writes)


def sniff(first_lines: list[str]) -> str:
    """``lackey`` if the trace looks like valgrind's, else ``refs``."""
    for line in first_lines:
        if line.startswith("==") or _LACKEY.match(line):
            return "lackey"
        if line.strip():
            return "refs"
    return "refs"


def read_trace(path: str, fmt: str = "auto") -> Trace:
    """Read a trace file (``-`` for standard input)."""
    import sys
    if fmt not in ("auto", "refs", "lackey"):
        raise TraceError(f"unknown format {fmt!r}: use auto, refs or lackey")
    try:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="strict")
    except OSError as e:
        raise TraceError(f"{path}: {e.strerror}") from None
    try:
        try:
            head = [f.readline() for _ in range(20)]
        except UnicodeDecodeError:
            raise TraceError(f"{path}: not a text file") from None
        if fmt == "auto":
            fmt = sniff(head)
        parser = parse_lackey if fmt == "lackey" else parse_refs
        try:
            t = parser(_chain(head, f))
        except UnicodeDecodeError:
            raise TraceError(f"{path}: not a text file") from None
    finally:
        if f is not sys.stdin:
            f.close()
    if not len(t):
        raise TraceError(f"{path}: the trace has no references")
    return t


def _chain(head: list[str], rest) -> Iterable[str]:
    yield from head
    yield from rest
