"""The swap device: a file of page-sized slots behind a slot bitmap.

Every slot read and write is exactly one 4096-byte ``pread``/``pwrite`` on a
descriptor opened with ``O_DIRECT`` (where the filesystem allows it), so on
the lab mount each one is exactly one FUSE request, never absorbed or merged
by the page cache. Each written slot keeps a CRC-32 in memory that is checked
on every read: a torn or corrupted slot is an error, never wrong data. Like
Linux swap, contents do not outlive the process that wrote them.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import stat
import zlib
from array import array

from vmlab_swapdisk.bitmap import SlotBitmap
from vmlab_swapdisk.header import PAGE, BadSwapHeader, SwapHeader


class SwapError(Exception):
    """Base of the swap device's errors."""


class SwapFull(SwapError):
    """No free slot left."""


class SwapChecksumError(SwapError):
    """A slot read back is not what was written to it."""


def mkswap(path: str, size: int, label: str = "vmlab", force: bool = False) -> SwapHeader:
    """Create (or re-initialise) a swap file of ``size`` bytes.

    Refuses anything that is not a regular file (ValueError), and an
    existing non-empty file that is not already a swap file unless
    ``force`` is given (FileExistsError): vmlab never destroys data silently.
    """
    header = SwapHeader.for_size(size, label)
    # O_NONBLOCK: a FIFO opens at once (and is then refused) instead of
    # waiting forever for a reader.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "r+b", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file: a swap file must be one")
        if not force and st.st_size:
            try:
                SwapHeader.unpack(f.read(PAGE))
            except BadSwapHeader:
                raise FileExistsError(errno.EEXIST, "exists and is not a swap file "
                                      "(use --force to overwrite)", path) from None
        f.truncate(0)
        f.seek(0)
        if f.write(header.pack()) != PAGE:
            raise OSError(errno.EIO, "short write of the swap header", path)
        f.truncate(size)                # sparse: slots cost nothing until written
    return header


def _address(buf) -> int | None:
    """Address of a writable buffer, or None if it has none we can take."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(buf))
    except (TypeError, ValueError):
        return None


class SwapDisk:
    """An open swap file.

    >>> import mmap, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = SwapDisk.create(tmp.name + "/swap.img", 4 << 20)
    >>> frame = mmap.mmap(-1, PAGE)
    >>> s = d.alloc(); d.write(s, b"x" * PAGE); d.read(s, frame)
    >>> s, frame[:3], d.reads, d.writes, d.swaps_line().split()[1:]
    (1, b'xxx', 1, 1, ['file', '4092', '4', '-2'])
    >>> d.close(); tmp.cleanup()
    """

    def __init__(self, path: str, direct: bool = True, header: SwapHeader | None = None) -> None:
        """Open a swap file. ``header``: the one ``mkswap`` just wrote, so it
        need not be read back (keeping the device's reads = its page-ins)."""
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | (os.O_DIRECT if direct else 0))
            self.direct = direct
        except OSError as e:
            if e.errno != errno.EINVAL or not direct:
                raise
            self.fd = os.open(path, os.O_RDWR)      # tmpfs and friends: no O_DIRECT
            self.direct = False
        try:
            self._bounce = mmap.mmap(-1, PAGE)          # page-aligned, for O_DIRECT
            if header is None:
                os.preadv(self.fd, [self._bounce], 0)
                header = SwapHeader.unpack(bytes(self._bounce))
            self.header = header
            if os.fstat(self.fd).st_size < (self.header.last_page + 1) * PAGE:
                raise BadSwapHeader("swap file is shorter than its header says")
        except BaseException:
            os.close(self.fd)
            raise
        self.bitmap = SlotBitmap(self.header.last_page + 1, reserved=1)
        self._crc = array("I", bytes(4 * (self.header.last_page + 1)))
        self._written = bytearray(self.header.last_page + 1)
        self.reads = 0
        self.writes = 0

    @classmethod
    def create(cls, path: str, size: int, direct: bool = True) -> "SwapDisk":
        return cls(path, direct, mkswap(path, size, force=True))

    # -- slots -----------------------------------------------------------

    @property
    def slots(self) -> int:
        return self.header.slots

    @property
    def used(self) -> int:
        return self.bitmap.used

    def alloc(self) -> int:
        slot = self.bitmap.alloc()
        if slot is None:
            raise SwapFull(f"swap device {self.path} is full ({self.slots} slots)")
        return slot

    def free(self, slot: int) -> None:
        self.bitmap.free(slot)
        self._written[slot] = 0

    def lend(self, slot: int) -> int:
        """Free a slot just read back, so another page may take it, and
        return its checksum for ``take_back``."""
        crc = self._crc[slot]
        self.free(slot)
        return crc

    def take_back(self, slot: int, crc: int) -> None:
        """Re-allocate a lent slot that no write succeeded on, as holding
        what it held. Should a failed write have torn it, the checksum
        makes the next read fail (SwapChecksumError), never return wrong data."""
        self.bitmap.take(slot)
        self._crc[slot] = crc
        self._written[slot] = 1

    def _check(self, slot: int) -> None:
        if not (1 <= slot <= self.header.last_page) or not self.bitmap.is_used(slot):
            raise SwapError(f"slot {slot} is not allocated")

    def write(self, slot: int, page, aligned: bool = False) -> None:
        """Write one page from ``page`` (any 4096-byte buffer) to ``slot``."""
        self._check(slot)
        view = memoryview(page)
        if view.nbytes != PAGE:
            raise ValueError(f"a swap slot holds {PAGE} bytes, not {view.nbytes}")
        src = view
        if self.direct and not aligned and (_address(view) or 1) % PAGE:
            self._bounce[:] = view
            src = self._bounce
        n = os.pwritev(self.fd, [src], slot * PAGE)
        if n != PAGE:
            raise OSError(errno.EIO, f"short write to swap slot {slot} ({n} bytes)")
        self.writes += 1
        self._crc[slot] = zlib.crc32(view)
        self._written[slot] = 1

    def read(self, slot: int, page, aligned: bool = False) -> None:
        """Read ``slot`` into ``page`` (a writable 4096-byte buffer);
        ``aligned``: the caller knows it is page-aligned (no need to look).
        The pager's hot path: the checks cost what they must and no more."""
        written = self._written
        if not (0 < slot < len(written) and written[slot]):
            self._check(slot)
            raise SwapError(f"slot {slot} was never written")
        view = page if type(page) is memoryview else memoryview(page)
        if view.nbytes != PAGE or view.readonly:
            raise ValueError(f"need a writable {PAGE}-byte buffer")
        aligned = aligned or not self.direct or (_address(view) or 1) % PAGE == 0
        dst = view if aligned else self._bounce
        n = os.preadv(self.fd, (dst,), slot * PAGE)
        self.reads += 1
        if n != PAGE or zlib.crc32(dst) != self._crc[slot]:
            self.reject(slot, n)
        if not aligned:
            view[:] = dst

    def reject(self, slot: int, n: int) -> None:
        """Raise what a read of ``slot`` that returned ``n`` bytes is:
        short (OSError EIO), else corrupt (SwapChecksumError)."""
        if n != PAGE:
            raise OSError(errno.EIO, f"short read from swap slot {slot} ({n} bytes)")
        raise SwapChecksumError(f"swap slot {slot} of {self.path} failed its checksum")

    def count_reads(self, n: int) -> None:
        """Count ``n`` slot reads made on ``fd`` by a reader of its own
        (``books``), as ``read`` counts its own."""
        self.reads += n

    def books(self) -> tuple[int, int, int]:
        """For a compiled reader of this device's fd: the addresses of the
        written marks (a byte a slot) and of the CRC-32s (a uint32 a slot),
        and how many slots they cover. Valid while the device is open."""
        marks = ctypes.addressof((ctypes.c_char * len(self._written)).from_buffer(self._written))
        return marks, self._crc.buffer_info()[0], len(self._written)

    def read_run(self, first: int, pages: list) -> None:
        """Read the consecutive slots ``first``, ``first + 1``, ... into
        ``pages`` (page-aligned writable 4096-byte buffers) in one system
        call: swap readahead. Each slot's checksum is checked."""
        for i in range(len(pages)):
            self._check(first + i)
            if not self._written[first + i]:
                raise SwapError(f"slot {first + i} was never written")
        n = os.preadv(self.fd, pages, first * PAGE)
        self.reads += len(pages)
        if n != PAGE * len(pages):
            raise OSError(errno.EIO, f"short read from swap slots {first}.. ({n} bytes)")
        for i, page in enumerate(pages):
            if zlib.crc32(page) != self._crc[first + i]:
                raise SwapChecksumError(f"swap slot {first + i} of {self.path} failed its checksum")

    # -- reporting -------------------------------------------------------

    def swaps_line(self, header: bool = False) -> str:
        """This device as a line of /proc/swaps (sizes in KiB)."""
        line = f"{self.path:<40}\tfile\t\t{self.slots * 4}\t\t{self.used * 4}\t\t-2"
        if header:
            return "Filename\t\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n" + line
        return line

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
            self._bounce.close()

    def __enter__(self) -> "SwapDisk":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
