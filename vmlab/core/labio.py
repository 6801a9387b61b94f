"""Guarding the Machine's I/O on the lab mount.

``with m.io:`` wraps every page-in and write-out. A dead daemon turns into a
``LabError`` at once; a request that takes longer than ``io_timeout`` is
ended by a watchdog thread, which aborts the FUSE connection (or kills the
daemon), so the program gets a clear error instead of hanging forever.
Compiled code that does I/O on the mount without the GIL (the real
machine's fast path) puts its request's start in ``inflight[0]``
(CLOCK_MONOTONIC nanoseconds; 0 when none is in flight), watched the same way.
"""

from __future__ import annotations

import threading
import time
from array import array

from vmlab.core.errors import LAB_GONE, LabError, PageIOError
from vmlab_swapdisk import SwapError


class LabIO:
    def __init__(self, lab: str, timeout: float | None, abort) -> None:
        self.lab, self.timeout, self._abort = lab, timeout, abort
        self.since = 0.0            # when the request in flight started; 0 if none
        self.inflight = array("q", [0])     # the same, in ns, for compiled code
        self.aborted = False
        self._stop = threading.Event()
        self._thread = None
        if timeout is not None:
            self._thread = threading.Thread(target=self._watch, name="vmlab-io-watchdog", daemon=True)
            self._thread.start()

    def __enter__(self) -> None:
        self.since = time.monotonic()

    def __exit__(self, kind, e, tb) -> None:
        """Every I/O failure leaves as a VMError: LabError if the lab is gone
        or hung, else PageIOError with the errno (a swap slot's checksum too)."""
        self.since = 0.0
        if not isinstance(e, (OSError, SwapError)):
            return
        if self.aborted:
            raise LabError(f"the lab filesystem at {self.lab} did not answer within "
                           f"{self.timeout:g} s; the request was aborted", e.errno) from None
        errno = getattr(e, "errno", None)
        if errno in LAB_GONE:
            raise LabError(f"the lab filesystem at {self.lab} is gone ({e.strerror}): "
                           f"its daemon died or was unmounted", errno) from None
        raise PageIOError(getattr(e, "strerror", None) or str(e), errno) from None

    def _watch(self) -> None:
        tick = min(0.25, self.timeout / 4)
        while not self._stop.wait(tick):
            since = self.since or self.inflight[0] / 1e9
            if since and not self.aborted and time.monotonic() - since > self.timeout:
                self.aborted = True
                self._abort()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
