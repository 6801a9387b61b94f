"""The pager's fast path from Python: the compiled loop of ``_fastpath.c``
serves the faults that need no decision (a zero fill, a swap-in of one
page) and logs them; the pager does their books from the log.

The library is built with the package (a C compiler is needed at install
time); where it is missing, ``why_not()`` says so and the pager serves
every fault itself, in Python, with the same results.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from array import array
from typing import Any

from vmlab.core.errors import VMError
from vmlab.real.uffd import address_of

TIMEOUT, EVENT, HANDOFF, FULL, ERROR = 0, 1, 2, 3, -1
OPS = {1: "read(userfaultfd)", 2: "poll", 3: "pread(swap)", 4: "UFFDIO_COPY", 5: "UFFDIO_WAKE"}
OP_PREAD = 3
CASE_SWAP = 1
LOG = 256                   # faults served between two rounds of books at most
RESERVE = 32                # frames handed over at a time


class Rec(ctypes.Structure):
    """One fault the fast path served (``struct fp_rec``)."""
    _fields_ = [("page", ctypes.c_int64), ("frame", ctypes.c_int32), ("kind", ctypes.c_int32),
                ("ns", ctypes.c_int64)]


class State(ctypes.Structure):
    """``struct fp_state``: the tables it shares, the frames, the log, what came out."""
    _fields_ = [("uffd", ctypes.c_int32), ("swapfd", ctypes.c_int32),
                ("ctl0", ctypes.c_int32), ("ctl1", ctypes.c_int32),
                ("base", ctypes.c_int64), ("npages", ctypes.c_int64),
                ("frame_of", ctypes.c_void_p), ("slot_of", ctypes.c_void_p),
                ("written", ctypes.c_void_p), ("crc", ctypes.c_void_p),
                ("nslots", ctypes.c_int64), ("crc32", ctypes.c_void_p),
                ("frames_base", ctypes.c_int64), ("zero_page", ctypes.c_int64),
                ("swap_in", ctypes.c_int32), ("pending", ctypes.c_int32),
                ("deadline", ctypes.c_int64), ("inflight", ctypes.c_void_p),
                ("free", ctypes.c_void_p), ("nfree", ctypes.c_int32), ("used", ctypes.c_int32),
                ("log", ctypes.POINTER(Rec)), ("cap", ctypes.c_int32), ("n", ctypes.c_int32),
                ("page", ctypes.c_int64), ("flags", ctypes.c_int64),
                ("slot", ctypes.c_int64), ("got", ctypes.c_int64),
                ("err", ctypes.c_int32), ("op", ctypes.c_int32)]


def _load() -> tuple[Any, str | None]:
    """The library's entry point and zlib's crc32, or None and why not."""
    spec = importlib.util.find_spec("vmlab.real._fastpath")
    if spec is None or not spec.origin:
        return None, ("vmlab's compiled fault path was not built (it needs a C compiler "
                      "when vmlab is installed: apt-get install gcc, then reinstall vmlab)")
    try:
        lib = ctypes.CDLL(spec.origin)
        zlib = ctypes.CDLL("libz.so.1")
    except OSError as e:
        return None, f"vmlab's compiled fault path cannot be loaded: {e}"
    serve = lib.vmlab_fastpath_serve
    serve.argtypes, serve.restype = (ctypes.POINTER(State),), ctypes.c_int
    crc = lib.vmlab_fastpath_crc32_page
    crc.argtypes, crc.restype = (ctypes.POINTER(State), ctypes.c_char_p), ctypes.c_uint32
    return (serve, ctypes.cast(zlib.crc32, ctypes.c_void_p).value, crc), None


_LIB, _WHY = _load()


def why_not() -> str | None:
    """None if the fast path can be used here, else one line saying why not."""
    return _WHY


def crc32_page(page: bytes) -> int:
    """The fast path's CRC-32 of one 4096-byte page (zlib's, computed its
    own way where the CPU allows): what it checks each slot read against.
    Raises ValueError for another length, VMError where it was not built."""
    if len(page) != 4096:
        raise ValueError(f"a page is 4096 bytes, not {len(page)}")
    if _WHY:
        raise VMError(_WHY)
    _, crc32, crc = _LIB
    st = State()
    st.crc32 = crc32
    return crc(st, page)


class FastPath:
    """The compiled loop for one pager's region. It shares the pager's
    ``frame_of`` and ``slot_of`` and the swap disk's checksums; it holds
    frames the pager handed it (the next ones the frame table would give)
    and a log of the faults it served."""

    def __init__(self, pager: Any, ctl: tuple[int, int]) -> None:
        """Raises VMError where the library was not built or cannot load."""
        if _WHY:
            raise VMError(_WHY)
        serve, crc32, _ = _LIB
        self._serve = serve
        swap = pager.swap
        self.free = array("i", bytes(4 * RESERVE))
        self.inflight = pager.io.inflight
        self.log = (Rec * LOG)()
        self.st = st = State()
        st.uffd, st.swapfd, (st.ctl0, st.ctl1) = pager.uffd.fd, swap.fd, ctl
        st.base, st.npages = pager.uffd.base, pager.npages
        st.frame_of, st.slot_of = address_of(pager.frame_of), address_of(pager.slot_of)
        st.written, st.crc, st.nslots = swap.books()
        st.crc32 = crc32
        st.frames_base, st.zero_page = pager.frames[0].addr, pager.zero_addr
        st.swap_in = pager.cluster == 1
        st.inflight = address_of(self.inflight)
        st.free = address_of(self.free)
        st.log = self.log

    def serve(self, deadline_ns: int, cap: int) -> int:
        """Serve faults until one of TIMEOUT (``deadline_ns`` passed, 0:
        none; or a signal came, for Python's handler to run), EVENT
        (another descriptor is ready), HANDOFF (``fault()`` is for the
        pager), FULL (``cap`` faults logged) or ERROR."""
        st = self.st
        st.deadline, st.cap, st.n = deadline_ns, cap, 0
        return self._serve(st)

    def fault(self) -> tuple[int, int]:
        """The fault handed back: ``(page, flags)``."""
        return self.st.page, self.st.flags

    def retry(self) -> None:
        """Serve the fault handed back first, next time."""
        self.st.pending = 1

    def served(self) -> list[Rec]:
        """The faults served in the last call, in order."""
        return self.log[:self.st.n]

    # -- the frames it holds --------------------------------------------------------

    def exhausted(self) -> bool:
        """Has it used every frame handed over?"""
        return self.st.used >= self.st.nfree

    def refill(self, table: Any) -> None:
        """Once it has used them all, hand it the next frames ``table``
        would give (lowest index first), as many as there are, up to RESERVE."""
        st = self.st
        if st.used < st.nfree:
            return
        n = 0
        while n < RESERVE and (f := table.alloc()) is not None:
            self.free[n] = f.index
            n += 1
        st.nfree, st.used = n, 0

    def take(self) -> int | None:
        """The next frame handed over and not used (the pager needs one), or None."""
        st = self.st
        if st.used >= st.nfree:
            return None
        st.used += 1
        return self.free[st.used - 1]

    def held(self) -> int:
        """Frames handed over and not used yet (free frames, out of the table)."""
        return self.st.nfree - self.st.used

    def failed_read(self) -> tuple[int, int, int] | None:
        """After ERROR, if a swap read failed: ``(slot, bytes read or -1,
        errno)``; errno 0 with a whole page read: its checksum did not match."""
        st = self.st
        return (st.slot, st.got, st.err) if st.op == OP_PREAD else None

    def failure(self) -> OSError:
        """What failed, as an OSError with the kernel's errno (ERROR)."""
        st = self.st
        return OSError(st.err, f"{OPS.get(st.op, '?')}: {os.strerror(st.err)}")
