"""The exact, line-by-line trace parsers: slow, but they name the line of
any error. ``fastparse`` reads canonical blocks; whatever it does not
take comes here. Formats:

``refs``: page numbers separated by commas, spaces or newlines (``#`` starts
a comment). ``lackey``: ``valgrind --tool=lackey --trace-mem=yes`` output:
``I``, `` L``, `` S``, `` M`` lines of ``hexaddr,size``; ``==`` lines are
valgrind's own and ignored; an access that spans two pages touches both;
``M`` (modify) is a load and a store.
"""

from __future__ import annotations

import re
from array import array
from typing import Iterable

PAGE_SHIFT = 12
MAX_PAGE = (1 << 52) - 1            # 64-bit addresses, 4 KiB pages
MAX_ACCESS = 1 << 20                # one instruction's access; lackey's are at most a few hundred bytes


class TraceError(ValueError):
    """A trace that cannot be read; the message names the line."""


_LACKEY = re.compile(r"\s*([ILSM])\s+([0-9a-fA-F]+),\s*(\d+)\s*$")
_NOT_REFS = re.compile(r"[^0-9,\s]")       # after comments are gone
_COMMENT = re.compile(r"#[^\n]*")
_SEPARATORS = " ,\t\r\n"


def refs_text(text: str, line: int) -> array:
    """The page numbers in ``text``, whose first line is line ``line``.

    >>> list(refs_text("1, 2 3\\n4 # four\\n", 1))
    [1, 2, 3, 4]
    """
    if "#" in text:
        text = _COMMENT.sub("", text)
    bad = _NOT_REFS.search(text)
    if bad:
        _refuse(text, bad.start(), line)
    try:
        pages = array("q", map(int, text.replace(",", " ").split()))
    except OverflowError:
        pages = array("q")
    if len(pages) and max(pages) <= MAX_PAGE:
        return pages
    for m in re.finditer(r"\d+", text):
        if int(m.group()) > MAX_PAGE:
            _refuse(text, m.start(), line)
    return pages


def _refuse(text: str, at: int, line: int) -> None:
    start = max(text.rfind(c, 0, at) for c in _SEPARATORS) + 1
    end = min((i for i in (text.find(c, at) for c in _SEPARATORS) if i >= 0), default=len(text))
    raise TraceError(f"line {line + text.count(chr(10), 0, at)}: "
                     f"{text[start:end][:40]!r} is not a page number")


def lackey_lines(lines: Iterable[str], line1: int = 1) -> tuple[array, bytearray]:
    """Pages and store flags of lackey ``lines``, the first being line ``line1``.

    >>> pages, writes = lackey_lines(["==1== Lackey", "I  04000000,3", " M 7ff000ffe,4"])
    >>> [hex(p) for p in pages], list(writes)
    (['0x4000', '0x7ff000', '0x7ff001', '0x7ff000', '0x7ff001'], [0, 0, 0, 1, 1])
    """
    pages, writes = array("q"), bytearray()
    for n, line in enumerate(lines, line1):
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
    return pages, writes


def sniff(first_lines: list[str]) -> str:
    """``lackey`` if the trace looks like valgrind's, else ``refs``."""
    for line in first_lines:
        if line.startswith("==") or _LACKEY.match(line):
            return "lackey"
        if line.strip():
            return "refs"
    return "refs"


