"""What the lab filesystem saw: per-request counters, per-file counters, iolog.

Pure bookkeeping, no FUSE: the daemon calls ``record()`` once per request and
renders the ``.vmlab/`` files from here. Paths are as seen in the mount.
"""

from __future__ import annotations

import errno
import time
from collections import Counter, deque
from dataclasses import dataclass

# The iolog is kept in memory; past this size it starts again from empty
# (``tail -f`` reports "file truncated" and follows on).
IOLOG_MAX = 16 << 20
# Requests are logged as raw fields and turned into text only when someone
# reads the iolog (formatting cost 3/4 of the accounting). Unread, only the
# most recent ones are kept (about 7 MB of fields, 2 MB of text).
PENDING_MAX = 1 << 15


@dataclass(slots=True)
class FileCounts:
    reads: int = 0
    writes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0


def escape_path(path: str) -> str:
    """Escape white space the way /proc/mounts does, so columns stay columns."""
    return (path.replace("\\", "\\134").replace(" ", "\\040")
            .replace("\t", "\\011").replace("\n", "\\012"))


class Accounting:
    """Counters and request log of one mount.

    >>> a = Accounting()
    >>> a.record("read", "/swap.img", 4096, 4096, 12_000, 4096)
    >>> print(a.render_stats().splitlines()[0:4])
    ['reads 1', 'writes 0', 'read_bytes 4096', 'write_bytes 0']
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ops: Counter[str] = Counter()
        self.ctl_requests = 0       # requests on .vmlab/*: served, never in the figures above
        self.errors = 0
        self.files: dict[str, FileCounts] = {}
        self.totals = FileCounts()
        self.busy_ns = 0
        self._iolog = bytearray()
        self._pending: deque[tuple] = deque(maxlen=PENDING_MAX)
        self.rotations = 0
        self._sec = -1
        self._stamp = ""
        self._escaped: dict[str, str] = {}

    def record(self, op: str, path: str | None, offset: int, length: int,
               duration_ns: int, result: int) -> None:
        """Account one request. ``result`` is bytes moved, 0, or ``-errno``."""
        self.ops[op] += 1
        self.busy_ns += duration_ns
        if result < 0:
            self.errors += 1
        elif op == "read" or op == "write":
            fc = self.files.get(path)
            if fc is None:
                fc = self.files[path] = FileCounts()
            if op == "read":
                fc.reads += 1
                fc.read_bytes += result
                self.totals.reads += 1
                self.totals.read_bytes += result
            else:
                fc.writes += 1
                fc.write_bytes += result
                self.totals.writes += 1
                self.totals.write_bytes += result
        self._pending.append((time.time(), op, path, offset, length, duration_ns, result))

    @property
    def iolog(self) -> bytearray:
        """The request log as text: one line per request,
        ``time op path offset length duration result``."""
        if self._pending:
            self._render()
        return self._iolog

    def _render(self) -> None:
        escaped = self._escaped
        lines = []
        for now, op, path, offset, length, duration_ns, result in self._pending:
            sec = int(now)
            if sec != self._sec:  # strftime once a second, not once a line
                self._sec = sec
                self._stamp = time.strftime("%H:%M:%S", time.localtime(sec))
            name = escaped.get(path)
            if name is None:
                name = escaped[path] = escape_path(path or "-")
            res = str(result) if result >= 0 else _errname(-result)
            lines.append(f"{self._stamp}.{int((now - sec) * 1e6):06d} {op} {name} {offset} "
                         f"{length} {duration_ns // 1000}us {res}\n")
        self._pending.clear()
        text = "".join(lines).encode()
        if len(self._iolog) + len(text) > IOLOG_MAX:
            self.rotations += 1
            self._iolog = bytearray()
            text = text[-IOLOG_MAX:]
            text = text[text.find(b"\n") + 1:] if len(text) == IOLOG_MAX else text
        self._iolog += text

    def forget(self, path: str) -> None:
        """A file was removed: its row goes (totals keep what it did)."""
        self.files.pop(path, None)

    def rename(self, old: str, new: str) -> None:
        if old in self.files:
            self.files[new] = self.files.pop(old)

    # -- rendering: the contents of .vmlab/stats and .vmlab/files ------------

    def stats(self) -> dict[str, int]:
        t = self.totals
        out = {"reads": t.reads, "writes": t.writes,
               "read_bytes": t.read_bytes, "write_bytes": t.write_bytes,
               "requests": sum(self.ops.values()), "errors": self.errors,
               "busy_us": self.busy_ns // 1000, "ctl_requests": self.ctl_requests}
        for op in sorted(self.ops):
            out[f"op_{op}"] = self.ops[op]
        return out

    def render_stats(self) -> str:
        return "".join(f"{k} {v}\n" for k, v in self.stats().items())

    def render_files(self) -> str:
        rows = ["path reads writes read_bytes write_bytes\n"]
        for path in sorted(self.files):
            f = self.files[path]
            rows.append(f"{escape_path(path)} {f.reads} {f.writes} "
                        f"{f.read_bytes} {f.write_bytes}\n")
        return "".join(rows)


def host_page_io(served: int, io0: dict[str, int], io1: dict[str, int]) -> dict[str, int]:
    """The pages the daemon read and wrote between two samples of its I/O as
    the host kernel counts it (``/proc/PID/io``), given the requests it
    served meanwhile: each request is one read of ``/dev/fuse`` and one
    write of the reply, so the reads and writes left over are pages moved
    from and to backing files. (Exact over a window with no reads of
    ``.vmlab/*`` in it; a window that has them counts them in ``served``
    through ``ctl_requests``, give or take the one being read.)

    >>> host_page_io(4, {"syscr": 100, "syscw": 90}, {"syscr": 106, "syscw": 95})
    {'reads': 2, 'writes': 1}
    """
    return {"reads": io1["syscr"] - io0["syscr"] - served,
            "writes": io1["syscw"] - io0["syscw"] - served}


def _errname(err: int) -> str:
    return "-" + errno.errorcode.get(err, str(err))


def parse_stats(text: str) -> dict[str, int]:
    """Inverse of ``render_stats``: ``name value`` lines to a dict."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name and value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


def parse_files(text: str) -> dict[str, FileCounts]:
    """Inverse of ``render_files`` (paths unescaped)."""
    out = {}
    for line in text.splitlines()[1:]:
        parts = line.split(" ")
        if len(parts) != 5:
            continue
        path = (parts[0].replace("\\040", " ").replace("\\011", "\t")
                .replace("\\012", "\n").replace("\\134", "\\"))
        out[path] = FileCounts(*map(int, parts[1:]))
    return out
