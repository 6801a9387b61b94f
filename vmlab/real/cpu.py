"""Keeping processes on one CPU for a while: on a virtual machine a wake-up
across CPUs can cost more than the page fault it serves."""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Iterator


def current_cpu() -> int | None:
    """The CPU this process runs on, if it may stay there; None if unknown."""
    cpu = ctypes.CDLL(None).sched_getcpu()
    return cpu if cpu >= 0 and cpu in os.sched_getaffinity(0) else None


@contextlib.contextmanager
def pinned(where: dict[int, int]) -> Iterator[None]:
    """Run the body with each pid of ``where`` (0: this process) on its CPU,
    then give every one its mask back. A pid that cannot be moved (gone,
    or not ours to move) is left as it is."""
    before = []
    try:
        for pid, cpu in where.items():
            with contextlib.suppress(OSError):
                mask = os.sched_getaffinity(pid)
                os.sched_setaffinity(pid, {cpu})
                before.append((pid, mask))
        yield
    finally:
        for pid, mask in before:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, mask)
