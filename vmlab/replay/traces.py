"""Reading memory traces: reference strings and valgrind lackey output.

``refs``: page numbers separated by commas, spaces or newlines (``#`` starts
a comment). ``lackey``: ``valgrind --tool=lackey --trace-mem=yes`` output:
``I``, `` L``, `` S``, `` M`` lines of ``hexaddr,size``; ``==`` lines are
valgrind's own and ignored; an access that spans two pages touches both;
``M`` (modify) is a load and a store.
"""

from __future__ import annotations

import codecs
import re
from array import array
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

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


_LACKEY = re.compile(r"\s*([ILSM])\s+([0-9a-fA-F]+),\s*(\d+)\s*$")
_NOT_REFS = re.compile(r"[^0-9,\s]")       # after comments are gone
_COMMENT = re.compile(r"#[^\n]*")
_SEPARATORS = " ,\t\r\n"

BLOCK = 1 << 20             # traces are read in blocks of this size: memory stays bounded
MAX_TOKEN = 64              # a run without a separator longer than this is no page number
MAX_LINE = 4096             # a lackey line is a few dozen characters


def parse_refs(lines: Iterable[str]) -> Trace:
    """
    >>> list(parse_refs(["1, 2 3", "4 # four", ""]).pages)
    [1, 2, 3, 4]
    """
    t = Trace()
    for n, line in enumerate(lines, 1):
        t.pages.extend(_refs(line + "\n", n))
    t.writes = bytearray(len(t.pages))
    return t


def _refs(text: str, line: int) -> array:
    """The page numbers in ``text``, whose first line is line ``line``."""
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


def _refs_pieces(blocks: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(first line number, text) pieces of a reference string, each ending
    at a separator so no number is cut, comments that run past a block
    dropped; so a trace of one huge line needs no more memory than a block."""
    carry, line, in_comment = "", 1, False
    for text in blocks:
        if in_comment:
            nl = text.find("\n")
            if nl < 0:
                continue
            text, in_comment = text[nl:], False
        text = carry + text
        nl = text.rfind("\n") + 1
        body, rest = text[:nl], text[nl:]
        hash_at = rest.find("#")
        if hash_at >= 0:                # the last line's comment goes on past this block
            body, rest, in_comment = body + rest[:hash_at] + " ", "", True
        else:
            cut = max(rest.rfind(c) for c in _SEPARATORS) + 1
            body, rest = body + rest[:cut], rest[cut:]
        if len(rest) > MAX_TOKEN:
            _refuse(rest, 0, line + body.count("\n"))
        carry = rest
        yield line, body
        line += body.count("\n")
    if carry:
        yield line, carry


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


def _lines(blocks: Iterable[str]) -> Iterator[str]:
    """The lines of a text read in blocks; a line longer than MAX_LINE is an error."""
    carry, n = "", 0
    for text in blocks:
        lines = (carry + text).split("\n")
        carry = lines.pop()
        n += len(lines)
        if len(carry) > MAX_LINE:
            raise TraceError(f"line {n + 1}: longer than {MAX_LINE} characters: not a lackey record")
        yield from lines
    if carry:
        yield carry


def sniff(first_lines: list[str]) -> str:
    """``lackey`` if the trace looks like valgrind's, else ``refs``."""
    for line in first_lines:
        if line.startswith("==") or _LACKEY.match(line):
            return "lackey"
        if line.strip():
            return "refs"
    return "refs"


def _blocks(f: BinaryIO, name: str, first: bytes) -> Iterator[str]:
    """The file as text in blocks of BLOCK bytes, starting with ``first``
    (already read). A NUL byte or bad UTF-8 ends it with a TraceError."""
    decode = codecs.getincrementaldecoder("utf-8")("strict").decode
    raw = first
    while True:
        if b"\0" in raw:
            raise TraceError(f"{name}: not a text file (it holds NUL bytes)")
        try:
            text = decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise TraceError(f"{name}: not a text file") from None
        if text:
            yield text
        if not raw:
            return
        raw = f.read(BLOCK)


def read_trace(path: str, fmt: str = "auto") -> Trace:
    """Read a trace file (``-`` for standard input) as a stream of blocks:
    what is not a trace is refused within the first block, and memory is
    what the references take, whatever the size of the file."""
    import sys
    if fmt not in ("auto", "refs", "lackey"):
        raise TraceError(f"unknown format {fmt!r}: use auto, refs or lackey")
    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as e:
        raise TraceError(f"{path}: {e.strerror}") from None
    name = "stdin" if path == "-" else path
    try:
        try:
            first = f.read(BLOCK)
        except OSError as e:
            raise TraceError(f"{name}: {e.strerror}") from None
        blocks = _blocks(f, name, first)
        if fmt == "auto":
            head = first[:BLOCK].split(b"\n", 20)[:20]
            fmt = sniff([l.decode("utf-8", "replace") for l in head])
        if fmt == "lackey":
            t = parse_lackey(_lines(blocks))
        else:
            t = Trace()
            for line, text in _refs_pieces(blocks):
                t.pages.extend(_refs(text, line))
            t.writes = bytearray(len(t.pages))
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    if not len(t):
        raise TraceError(f"{name}: the trace has no references")
    return t
