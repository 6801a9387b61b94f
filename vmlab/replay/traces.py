"""Reading memory traces as a stream of blocks: reference strings and
valgrind lackey output (the formats are described in ``lineparse``).

A file is read 1 MiB at a time. Each block is parsed by numpy when it is
in canonical form (``fastparse``), else line by line (``lineparse``),
which names the bad line. A trace's pages are kept as one int64 array and
its stores as one byte each: 9 bytes a reference; or not kept at all, when
the replay needs no look-ahead (``TraceStream``).
"""

from __future__ import annotations

import codecs
import os
import sys
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from vmlab.replay.fastparse import lackey_block, refs_block
from vmlab.replay.lineparse import TraceError, lackey_lines, refs_text, sniff

BLOCK = 1 << 20             # traces are read in blocks of this size: memory stays bounded
MAX_TOKEN = 64              # a run without a separator longer than this is no page number
MAX_LINE = 4096             # a lackey line is a few dozen characters
Chunk = tuple[np.ndarray, np.ndarray]          # (pages int64, writes uint8)


class Trace:
    """A whole trace in memory: ``pages`` (int64) and ``writes`` (uint8, 1
    where the reference stores), one entry a reference."""

    def __init__(self, pages: np.ndarray, writes: np.ndarray, distinct_pages: int = -1) -> None:
        self.pages, self.writes, self.distinct_pages = pages, writes, distinct_pages

    def __len__(self) -> int:
        return len(self.pages)

    def distinct(self) -> int:
        """How many different pages the trace touches."""
        if self.distinct_pages < 0:
            self.distinct_pages = len(np.unique(self.pages))
        return self.distinct_pages


def parse_refs(lines: Iterable[str]) -> Trace:
    """
    >>> parse_refs(["1, 2 3", "4 # four", ""]).pages.tolist()
    [1, 2, 3, 4]
    """
    pages = np.concatenate([np.array(refs_text(line + "\n", n), np.int64)
                            for n, line in enumerate(lines, 1)] or [np.zeros(0, np.int64)])
    return Trace(pages, np.zeros(len(pages), np.uint8))


def parse_lackey(lines: Iterable[str]) -> Trace:
    """
    >>> t = parse_lackey(["I  04000000,3", " S 7ff000ffe,4"])
    >>> [hex(p) for p in t.pages], t.writes.tolist()
    (['0x4000', '0x7ff000', '0x7ff001'], [0, 1, 1])
    """
    pages, writes = lackey_lines(lines)
    return Trace(np.array(pages, np.int64), np.array(writes, np.uint8))


class TraceStream:
    """A trace file's references, chunk by chunk (one chunk a block), for
    replays that need no look-ahead: memory stays bounded whatever the
    length. Iterate once; then ``len()`` and ``distinct()`` give the counts.
    Opening checks the file and the format at once (TraceError)."""

    def __init__(self, path: str, fmt: str = "auto") -> None:
        if fmt not in ("auto", "refs", "lackey"):
            raise TraceError(f"unknown format {fmt!r}: use auto, refs or lackey")
        self.name = "stdin" if path == "-" else path
        try:
            self._file: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")
            self._first = self._file.read(BLOCK)
        except OSError as e:
            raise TraceError(f"{path}: {e.strerror}") from None
        if fmt == "auto":
            head = self._first.split(b"\n", 20)[:20]
            fmt = sniff([line.decode("utf-8", "replace") for line in head])
        self.format, self.refs = fmt, 0
        self._distinct = _Distinct()

    def __len__(self) -> int:
        return self.refs

    def distinct(self) -> int:
        """How many different pages the references read so far touch."""
        return self._distinct.count()

    def size_hint(self) -> int:
        """An estimate of the references to come, from the file's size."""
        try:
            size = max(len(self._first), _file_size(self._file))
        except OSError:
            size = len(self._first)
        return size // (2 if self.format == "refs" else 8)

    def __iter__(self) -> Iterator[Chunk]:
        parse = _refs_chunks if self.format == "refs" else _lackey_chunks
        try:
            for pages, writes in parse(_blocks(self._file, self.name, self._first)):
                self.refs += len(pages)
                self._distinct.add(pages)
                yield pages, writes
        finally:
            if self._file is not sys.stdin.buffer:
                self._file.close()
        if not self.refs:
            raise TraceError(f"{self.name}: the trace has no references")


def read_trace(path: str, fmt: str = "auto") -> Trace:
    """Read a trace file (``-`` for standard input) into memory, 9 bytes a
    reference: what is not a trace is refused within the first block."""
    stream = TraceStream(path, fmt)
    pages, writes = _Growing(stream.size_hint(), np.int64), _Growing(stream.size_hint(), np.uint8)
    for p, w in stream:
        pages.extend(p)
        writes.extend(w)
    return Trace(pages.view(), writes.view(), stream.distinct())


def _file_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


class _Growing:
    """An array that grows by doubling. Its reserve is never touched, so it
    costs address space, not memory."""

    def __init__(self, capacity: int, dtype: type) -> None:
        self._a, self._n = np.empty(max(capacity, 1 << 16), dtype), 0

    def extend(self, x: np.ndarray) -> None:
        end = self._n + len(x)
        if end > len(self._a):
            bigger = np.empty(max(2 * len(self._a), end), self._a.dtype)
            bigger[:self._n] = self._a[:self._n]
            self._a = bigger
        self._a[self._n:end] = x
        self._n = end

    def view(self) -> np.ndarray:
        return self._a[:self._n]


class _Distinct:
    """Counts the different pages of a stream: each chunk's own, merged into
    one sorted array when they outnumber it (amortized n log n)."""

    def __init__(self) -> None:
        self._seen, self._pending, self._n = np.zeros(0, np.int64), [], 0

    def add(self, pages: np.ndarray) -> None:
        if not len(pages):
            return
        lo = int(pages.min())
        span = int(pages.max()) - lo + 1
        if span <= 1 << 22:                 # a bitmap is faster than a sort
            mark = np.zeros(span, bool)
            mark[pages - lo] = True
            unique = np.flatnonzero(mark) + lo
        else:
            unique = np.unique(pages)
        self._pending.append(unique)
        self._n += len(unique)
        if self._n > 2 * len(self._seen) + 4096:
            self.count()

    def count(self) -> int:
        if self._pending:
            self._seen = np.unique(np.concatenate([self._seen, *self._pending]))
            self._pending, self._n = [], 0
        return len(self._seen)


def _blocks(f: BinaryIO, name: str, first: bytes) -> Iterator[bytes]:
    """The file in blocks of BLOCK bytes, starting with ``first`` (already
    read). A NUL byte or bad UTF-8 ends it with a TraceError."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    raw = first
    while True:
        if b"\0" in raw:
            raise TraceError(f"{name}: not a text file (it holds NUL bytes)")
        if not (raw.isascii() and not decoder.getstate()[0]):
            try:
                decoder.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise TraceError(f"{name}: not a text file") from None
        if not raw:
            return
        yield raw
        try:
            raw = f.read(BLOCK)
        except OSError as e:
            raise TraceError(f"{name}: {e.strerror}") from None


def _refs_chunks(blocks: Iterable[bytes]) -> Iterator[Chunk]:
    for line, body in _refs_pieces(blocks):
        pages = refs_block(body)
        if pages is None:                   # comments, junk: the exact parser
            pages = np.array(refs_text(body.decode("utf-8"), line), np.int64)
        yield pages, np.zeros(len(pages), np.uint8)


def _lackey_chunks(blocks: Iterable[bytes]) -> Iterator[Chunk]:
    for line, body in _line_pieces(blocks):
        chunk = lackey_block(body)
        if chunk is None:                   # not lackey's own layout: the exact parser
            pages, writes = lackey_lines(body.decode("utf-8").split("\n"), line)
            chunk = np.array(pages, np.int64), np.array(writes, np.uint8)
        yield chunk


_SEPARATORS = (b" ", b",", b"\t", b"\r", b"\n")


def _refs_pieces(blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) pieces of a reference string, each ending
    at a separator so no number is cut, comments that run past a block
    dropped; so a trace of one huge line needs no more memory than a block."""
    carry, line, in_comment = b"", 1, False
    for raw in blocks:
        if in_comment:
            nl = raw.find(b"\n")
            if nl < 0:
                continue
            raw, in_comment = raw[nl:], False
        raw = carry + raw
        nl = raw.rfind(b"\n") + 1
        body, rest = raw[:nl], raw[nl:]
        hash_at = rest.find(b"#")
        if hash_at >= 0:                    # the last line's comment goes on past this block
            body, rest, in_comment = body + rest[:hash_at] + b" ", b"", True
        else:
            cut = max(rest.rfind(c) for c in _SEPARATORS) + 1
            body, rest = body + rest[:cut], rest[cut:]
        if len(rest) > MAX_TOKEN:
            refs_text(rest.decode("utf-8", "replace"), line + body.count(b"\n"))
        carry = rest
        yield line, body
        line += body.count(b"\n")
    if carry:
        yield line, carry


def _line_pieces(blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(first line number, whole lines) pieces of a text read in blocks; a
    line longer than MAX_LINE is an error."""
    carry, line = b"", 1
    for raw in blocks:
        raw = carry + raw
        nl = raw.rfind(b"\n") + 1
        body, carry = raw[:nl], raw[nl:]
        if len(carry) > MAX_LINE:
            at = line + body.count(b"\n")
            raise TraceError(f"line {at}: longer than {MAX_LINE} characters: not a lackey record")
        yield line, body
        line += body.count(b"\n")
    if carry:
        yield line, carry + b"\n"


__all__ = ["BLOCK", "Trace", "TraceError", "TraceStream", "parse_lackey", "parse_refs",
           "read_trace"]
