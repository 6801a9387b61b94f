"""The VM's counters (Linux's /proc/vmstat names and units) and the measured
cost of every fault, by case."""

from __future__ import annotations

from array import array

# Order matters only for display.
COUNTERS = (
    "pgfault", "pgmajfault", "pswpin", "pswpout", "pgpgin", "pgpgout",
    "zero_faults", "stack_faults", "cow_faults", "elf_faults", "mmap_faults",
    "pagecache_faults", "swap_faults", "cow_reuses", "evictions", "writebacks",
    "segfaults", "bus_errors", "oom_kills", "elf_header_reads",
)
CASES = ("zero", "stack", "cow", "elf", "mmap", "pagecache", "swap")


def new_counters() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


class FaultCosts:
    """Nanoseconds per fault, kept per case.

    >>> c = FaultCosts(); c.record("zero", 1000); c.record("zero", 3000)
    >>> c.summary()["zero"]
    {'count': 2, 'median_ns': 2000, 'p99_ns': 3000}
    """

    def __init__(self) -> None:
        self.samples = {case: array("q") for case in CASES}

    def record(self, case: str, ns: int) -> None:
        self.samples[case].append(ns)

    def summary(self) -> dict[str, dict[str, int]]:
        out = {}
        for case, xs in self.samples.items():
            if xs:
                s = sorted(xs)
                n = len(s)
                median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
                out[case] = {"count": n, "median_ns": median,
                             "p99_ns": s[min(n - 1, (99 * n + 99) // 100 - 1)]}
        return out
