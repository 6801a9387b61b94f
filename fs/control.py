"""The ``.vmlab/control`` language: latency models, fault injection, reset.

One command per line (``#`` starts a comment)::

    latency none|ssd|hdd|<N>us|<N>ms    delay every read, write and fsync
    fail read|write|rw PATH EIO|ENOSPC [K|all]
                                        the next K (default: all) reads or
                                        writes on PATH fail, as a reader
                                        sees them; PATH '*' = any
    clear [PATH]                        drop fault rules (all, or PATH's)
    reset                               zero the counters and the iolog

Pure logic: the daemon feeds lines in and asks ``delay_ns`` and ``injected``
on each request.
"""

from __future__ import annotations

import errno
import math
import re
from dataclasses import dataclass

HELP = __doc__.split("::", 1)[1].split("\n\nPure", 1)[0].strip("\n")

SSD_NS = 100_000               # a NVMe/SATA SSD 4 KiB random access, roughly
HDD_HALF_ROTATION_NS = 4_170_000   # 7200 rpm: 8.33 ms a turn, half on average
HDD_SEEK_MIN_NS = 500_000      # track to track
HDD_SEEK_SPAN_NS = 4_500_000   # extra for a full stroke
HDD_STROKE = 1 << 30           # distance that counts as a full stroke
HDD_TRANSFER_NS_PER_KIB = 7_000     # ~146 MB/s media rate


class ControlError(ValueError):
    """A control command that cannot be carried out (one line of text)."""


def parse_latency(spec: str) -> "Latency":
    """``none``, ``ssd``, ``hdd``, ``250us`` or ``4ms`` to a latency model."""
    spec = spec.strip().lower()
    if spec in ("none", "0", "0us"):
        return Latency("none", 0)
    if spec == "ssd":
        return Latency("ssd", SSD_NS)
    if spec == "hdd":
        return Latency("hdd", 0)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms)", spec)
    if not m:
        raise ControlError(f"bad latency {spec!r}: use none, ssd, hdd, <N>us or <N>ms")
    ns = float(m.group(1)) * (1_000 if m.group(2) == "us" else 1_000_000)
    if ns > 60e9:
        raise ControlError(f"latency {spec!r} is over a minute")
    return Latency(spec, int(ns))


@dataclass
class Latency:
    """A per-request delay. ``hdd`` models seek distance plus rotation.

    >>> h = parse_latency("hdd")
    >>> h.delay_ns("/f", 0, 4096) // 1000, h.delay_ns("/f", 4096, 4096) // 1000
    (7296, 28)
    """

    name: str
    fixed_ns: int
    _head: tuple[str, int] | None = None

    def delay_ns(self, path: str, offset: int, length: int) -> int:
        if self.name != "hdd":
            return self.fixed_ns
        transfer = length * HDD_TRANSFER_NS_PER_KIB // 1024
        head, self._head = self._head, (path, offset + length)
        if head == (path, offset):
            return transfer             # the head is already there: streaming
        if head is None or head[0] != path:
            distance = HDD_STROKE // 3  # the mean seek of a random access
        else:
            distance = min(abs(offset - head[1]), HDD_STROKE)
        seek = HDD_SEEK_MIN_NS + HDD_SEEK_SPAN_NS * math.sqrt(distance / HDD_STROKE)
        return int(seek) + HDD_HALF_ROTATION_NS + transfer


@dataclass
class FaultRule:
    ops: frozenset[str]
    path: str
    err: int
    remaining: int | None       # None: every request

    def describe(self) -> str:
        ops = "rw" if len(self.ops) == 2 else next(iter(self.ops))
        left = "all" if self.remaining is None else str(self.remaining)
        return f"fail {ops} {self.path} {errno.errorcode[self.err]} {left}"


_OPS = {"read": frozenset({"read"}), "write": frozenset({"write"}),
        "rw": frozenset({"read", "write"})}
_ERRS = {"EIO": errno.EIO, "ENOSPC": errno.ENOSPC}


class Control:
    """State set through ``.vmlab/control``."""

    def __init__(self, latency: str = "none") -> None:
        self.set_latency(latency)
        self.rules: list[FaultRule] = []
        self._retry: tuple[tuple[str, str, int], int] | None = None
        self.last_error = ""
        self.reset_requested = False

    def set_latency(self, spec: str) -> None:
        self.latency = parse_latency(spec)
        self.delaying = bool(self.latency.fixed_ns) or self.latency.name == "hdd"   # read per request

    @property
    def injecting(self) -> bool:
        """Is any request to be failed? (False, the usual answer, is cheap.)"""
        return bool(self.rules) or self._retry is not None

    def injected(self, op: str, path: str, offset: int = 0, cached: bool = False) -> int:
        """The errno to fail this request with, or 0; consumes a count.

        A read through the page cache (``cached``: not O_DIRECT) that fails
        is sent again by the kernel at once (readahead, then the read
        itself) before the reader sees the error: that retry fails too,
        without a count, so ``fail read PATH EIO 1`` is one failed read()."""
        retry, self._retry = self._retry, None
        if retry is not None and retry[0] == (op, path, offset):
            return retry[1]
        for rule in self.rules:
            if op in rule.ops and (rule.path == path or rule.path == "*"):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self.rules.remove(rule)
                if cached and op == "read":
                    self._retry = ((op, path, offset), rule.err)
                return rule.err
        return 0

    def execute(self, text: str) -> None:
        """Run every line of ``text``; stop at the first bad one."""
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                try:
                    self._command(line.split())
                except ControlError as e:
                    self.last_error = str(e)
                    raise

    def _command(self, words: list[str]) -> None:
        verb, args = words[0].lower(), words[1:]
        if verb == "latency" and len(args) == 1:
            self.set_latency(args[0])
        elif verb == "fail" and len(args) in (3, 4):
            self.rules.append(_fault_rule(args))
        elif verb == "clear" and len(args) <= 1:
            self.rules = [r for r in self.rules if args and r.path != args[0]]
            self._retry = None
        elif verb == "reset" and not args:
            self.reset_requested = True
        else:
            raise ControlError(f"bad command {' '.join(words)!r}; read .vmlab/control for help")

    def render(self) -> str:
        lines = [f"latency {self.latency.name}"]
        lines += [r.describe() for r in self.rules]
        if self.last_error:
            lines.append(f"# last error: {self.last_error}")
        lines.append("#")
        lines += ["# " + h for h in HELP.splitlines()]
        return "\n".join(lines) + "\n"


def _fault_rule(args: list[str]) -> FaultRule:
    op, path, err = args[0].lower(), args[1], args[2].upper()
    if op not in _OPS:
        raise ControlError(f"bad operation {args[0]!r}: use read, write or rw")
    if path != "*" and not path.startswith("/"):
        raise ControlError(f"bad path {path!r}: give it as seen in the mount, from '/'")
    if err not in _ERRS:
        raise ControlError(f"bad error {args[2]!r}: use EIO or ENOSPC")
    count = args[3].lower() if len(args) == 4 else "all"
    if count == "all":
        remaining = None
    elif count.isdigit() and int(count) > 0:
        remaining = int(count)
    else:
        raise ControlError(f"bad count {args[3]!r}: a whole number above 0, or all")
    return FaultRule(_OPS[op], path, _ERRS[err], remaining)
