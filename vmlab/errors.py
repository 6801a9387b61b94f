"""The errors a process can run into. All subclass VMError."""


class VMError(Exception):
    """Base of vmlab's errors."""


class SegFault(VMError):
    """An invalid access: the process is dead afterwards (exit status -1)."""


class BusError(VMError):
    """The backing file or swap device failed to deliver a page; the process is dead."""


class OutOfMemory(VMError):
    """No frame could be freed (every victim needs swap and swap is full)."""


class MapError(VMError):
    """mmap (or an ELF load) refused; the address space is unchanged."""
