"""userfaultfd(2) from Python: the calls the pager makes, through ctypes and
``fcntl.ioctl`` (no package wraps it). Constants and layouts are those of
``linux/userfaultfd.h`` on x86-64 and arm64.

Every call raises OSError with the kernel's errno; ``open_uffd`` raises
``Unavailable`` with one line saying what is missing and how to enable it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import struct
from typing import Any

from vmlab.core.errors import VMError

PAGE = 4096

# syscall numbers of userfaultfd
_SYSCALL = {"x86_64": 323, "aarch64": 282}

UFFD_API = 0xAA
FEATURE_MISSING_SHMEM = 1 << 5
FEATURE_WP_SHMEM = 1 << 12              # UFFD_FEATURE_WP_HUGETLBFS_SHMEM
REGISTER_MISSING, REGISTER_WP = 1, 2
COPY_DONTWAKE, COPY_WP = 1, 2
WP_ON, WP_DONTWAKE = 1, 2
EVENT_PAGEFAULT = 0x12
FLAG_WRITE, FLAG_WP = 1, 2
MSG_SIZE = 32

IOC_API = 0xC018AA3F
IOC_REGISTER = 0xC020AA00
IOC_WAKE = 0x8010AA02
IOC_COPY = 0xC028AA03
IOC_WRITEPROTECT = 0xC018AA06
IOC_NEW = 0xAA00                        # on /dev/userfaultfd

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)

HOW_TO = ("run as root, or let users have it with 'sysctl vm.unprivileged_userfaultfd=1'; "
          "in a container, pass --device /dev/userfaultfd")


class Unavailable(VMError):
    """userfaultfd cannot be had here; the message says why and what to do."""


def open_uffd() -> int:
    """A new userfaultfd (non-blocking, close-on-exec) after the API
    handshake, for this process's memory. Raises Unavailable."""
    flags = os.O_CLOEXEC | os.O_NONBLOCK
    nr = _SYSCALL.get(platform.machine())
    why = f"no userfaultfd syscall number known for {platform.machine()}"
    fd = -1
    if nr is not None:
        fd = _libc.syscall(nr, flags)
        if fd < 0:
            why = f"userfaultfd(): {os.strerror(ctypes.get_errno())}"
    if fd < 0:                          # the device is allowed where the syscall is not
        try:
            dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise Unavailable(f"userfaultfd is not available ({why}; /dev/userfaultfd: "
                              f"{e.strerror}): {HOW_TO}") from None
        try:
            fd = fcntl.ioctl(dev, IOC_NEW, flags)
        except OSError as e:
            raise Unavailable(f"userfaultfd is not available ({why}; /dev/userfaultfd: "
                              f"{e.strerror}): {HOW_TO}") from None
        finally:
            os.close(dev)
    try:
        api = bytearray(struct.pack("QQQ", UFFD_API, FEATURE_MISSING_SHMEM | FEATURE_WP_SHMEM, 0))
        fcntl.ioctl(fd, IOC_API, api, True)
    except OSError as e:
        os.close(fd)
        raise Unavailable(f"userfaultfd here lacks write-protection of shared memory "
                          f"(UFFDIO_API: {e.strerror}): vmlab needs Linux 6.1 or later") from None
    return fd


def address_of(buffer: Any) -> int:
    """The address of a writable buffer's first byte (an mmap, an array):
    a COPY's source, or a table compiled code shares."""
    c = ctypes.c_char.from_buffer(buffer)
    try:
        return ctypes.addressof(c)
    finally:
        del c


def register(fd: int, start: int, length: int) -> None:
    """Have ``fd`` report missing pages and writes to protected pages in
    [start, start + length). Raises OSError."""
    buf = bytearray(struct.pack("QQQQ", start, length, REGISTER_MISSING | REGISTER_WP, 0))
    fcntl.ioctl(fd, IOC_REGISTER, buf, True)


def punch(memfd: int, offset: int, length: int = PAGE) -> None:
    """Free [offset, offset + length) of ``memfd``: the page is gone from
    every mapping, and the next touch faults again. Raises OSError."""
    if _libc.fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length):
        e = ctypes.get_errno()
        raise OSError(e, f"fallocate(PUNCH_HOLE): {os.strerror(e)}")


class Uffd:
    """One registered region of a workload, as the pager drives it. The
    ioctl argument buffers are made once and reused: a fault costs a few
    microseconds, and building them would be a good part of it."""

    def __init__(self, fd: int, base: int) -> None:
        self.fd, self.base = fd, base
        self._copy = bytearray(40)
        self._wp = bytearray(24)
        self._range = bytearray(16)

    def read(self) -> list[tuple[int, int]]:
        """The page faults waiting: ``(page number, flags)`` each; [] if none."""
        try:
            data = os.read(self.fd, MSG_SIZE * 64)
        except BlockingIOError:
            return []
        out = []
        base = self.base
        for off in range(0, len(data), MSG_SIZE):
            event, flags, address = struct.unpack_from("B7xQQ", data, off)
            if event == EVENT_PAGEFAULT:
                out.append(((address - base) >> 12, flags))
        return out

    def copy(self, page: int, src: int, mode: int, n: int = 1) -> int:
        """Map ``n`` pages from address ``src`` at ``page`` (COPY_WP: write
        protected), waking nobody: the caller ``wake``s the faulting thread
        once its books are done. Returns 0, or -EEXIST if a page was already
        there. Raises OSError."""
        c = self._copy
        struct.pack_into("QQQQq", c, 0, self.base + (page << 12), src, n * PAGE,
                         mode | COPY_DONTWAKE, 0)
        try:
            fcntl.ioctl(self.fd, IOC_COPY, c, True)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.EAGAIN):
                return -e.errno
            raise
        return 0

    def protect(self, page: int, on: bool) -> None:
        """Write-protect ``page`` (``on``), or let writes through again
        (waking nobody: see ``copy``). Raises OSError."""
        mode = WP_ON if on else WP_DONTWAKE
        struct.pack_into("QQQ", self._wp, 0, self.base + (page << 12), PAGE, mode)
        fcntl.ioctl(self.fd, IOC_WRITEPROTECT, self._wp, True)

    def wake(self, page: int) -> None:
        """Wake threads asleep on a fault at ``page``. Raises OSError."""
        struct.pack_into("QQ", self._range, 0, self.base + (page << 12), PAGE)
        fcntl.ioctl(self.fd, IOC_WAKE, self._range, False)
