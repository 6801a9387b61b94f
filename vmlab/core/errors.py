"""The errors a process can run into. All subclass VMError."""

from __future__ import annotations

import errno


class VMError(Exception):
    """Base of vmlab's errors."""


class SegFault(VMError):
    """An invalid access: the process is dead afterwards (exit status -1)."""


class BusError(VMError):
    """The backing file or swap device failed to deliver a page; the process is dead."""


class OutOfMemory(VMError):
    """No frame could be freed (swap full, or every write-out failed): the
    process is dead. From ``Machine()``: its frames could not be allocated."""


class MapError(VMError):
    """mmap (or an ELF load) refused; the address space is unchanged."""


class PolicyError(VMError):
    """A replacement policy misbehaved (raised, chose a frame that was not a
    candidate, or took too long); the fault that asked is undone, the
    machine's pages and swap are as they were."""


class WriteBackError(VMError):
    """Dirty pages of a file could not be written at munmap/exit/close. They
    stay in memory and are retried on eviction and at close: not lost."""


class WorkloadError(VMError):
    """A real machine's workload ended without returning: it died (a signal,
    an exit), outran its timeout, or raised what could not be passed back."""


class PageIOError(VMError):
    """A page could not be read from or written to the lab (the errno and
    its text say why). Every I/O failure of the VM becomes this, or its
    LabError, in one place (``LabIO``); on the fault path a failed read is
    then the process's BusError, a failed write a victim passed over."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class LabError(PageIOError):
    """The lab filesystem stopped answering (its daemon died, or a request
    took longer than ``io_timeout`` and the connection was aborted), or,
    from ``Machine()``, could not hold the swap file (full, read-only...)."""


# What a FUSE mount returns once its daemon is gone or the connection aborted.
LAB_GONE = frozenset({errno.ENOTCONN, errno.ECONNABORTED})
