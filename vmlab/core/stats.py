"""The VM's counters (Linux's /proc/vmstat names and units) and the measured
cost of every fault, by case."""

from __future__ import annotations

import enum
import random
from array import array

# Order matters only for display.
COUNTERS = (
    "pgfault", "pgmajfault", "pswpin", "pswpout", "pgpgin", "pgpgout",
    "zero_faults", "stack_faults", "cow_faults", "elf_faults", "mmap_faults",
    "pagecache_faults", "swap_faults", "cow_reuses", "evictions", "writebacks",
    "writeback_errors", "segfaults", "bus_errors", "oom_kills", "elf_header_reads",
    "pgscan",
)


class Case(enum.Enum):
    """What a fault turned out to be: the one record every fault leaves.
    Its value names its counter (``<value>_faults``) and its cost row.

    >>> Case.SWAP.major, Case.ZERO.major, Case.SWAP.counter, Case.SWAP.key
    (True, False, 'swap_faults', 'swap')
    """

    ZERO = "zero"               # a first touch: a zero-filled page
    STACK = "stack"             # a zero-filled page that grew the stack
    COW = "cow"                 # a write to a page shared copy-on-write
    ELF = "elf"                 # a page of an executable, read from its file
    MMAP = "mmap"               # a page of a mapped file, read from it
    PAGECACHE = "pagecache"     # a file page another mapping already holds
    SWAP = "swap"               # a page read back from swap
    # The real machine's own minor cases (vmlab.real):
    REF = "ref"                 # a touch of a page invalidated to sample its reference bit
    WP = "wp"                   # a first write to a clean, write-protected page: now dirty
    SWAPCACHE = "swapcache"     # a page swap readahead brought in, touched

    def __init__(self, name: str) -> None:
        # Plain attributes, set once: read on every fault, where an enum
        # property or .value (a descriptor) costs about 1 us a fault.
        self.key = name                                 # its cost row
        self.counter = name + "_faults"                 # its counter
        self.major = name in ("elf", "mmap", "swap")    # did it read the disk?


CASES = tuple(c.value for c in Case)
# Reclaim (getting a frame back) is timed apart from the fault that needed it,
# so a minor fault never seems to cost the disk time of the eviction it caused.
RECLAIM = "reclaim"
TIMED = CASES + (RECLAIM,)


def new_counters() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


class FaultCosts:
    """Nanoseconds per fault, kept per case. Counts are exact; past
    ``keep`` faults a case keeps a uniform random sample (reservoir
    sampling, seeded) so memory stays bounded however long the run.

    >>> c = FaultCosts(); c.record("zero", 1000); c.record("zero", 3000)
    >>> c.summary()["zero"]
    {'count': 2, 'median_ns': 2000, 'p99_ns': 3000}
    """

    def __init__(self, keep: int = 100_000) -> None:
        self.keep = keep
        self.samples = {case: array("q") for case in TIMED}
        self.counts = dict.fromkeys(TIMED, 0)
        self._rng = random.Random(0)

    def record(self, case: str, ns: int) -> None:
        n = self.counts[case] = self.counts[case] + 1
        xs = self.samples[case]
        if n <= self.keep:
            xs.append(ns)
        else:
            j = self._rng.randrange(n)
            if j < self.keep:
                xs[j] = ns

    def summary(self) -> dict[str, dict[str, int]]:
        out = {}
        for case, xs in self.samples.items():
            if xs:
                s = sorted(xs)
                n = len(s)
                median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
                out[case] = {"count": self.counts[case], "median_ns": median,
                             "p99_ns": s[min(n - 1, (99 * n + 99) // 100 - 1)]}
        return out
