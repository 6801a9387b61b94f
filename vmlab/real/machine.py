"""The real machine: a real process's memory paged by vmlab through
userfaultfd, with the simulated machine's frame table, policies and swap
device on the lab mount.

>>> from vmlab import RealMachine
>>> def fill(mem):
...     for i in range(0, len(mem), 4096):
...         mem[i] = i // 4096 % 251
...     return sum(mem[i] for i in range(0, len(mem), 4096))
>>> with RealMachine(frames=8) as rm:
...     total = rm.run(fill, 32 * 4096)
...     v = rm.vmstat()
>>> total == sum(i % 251 for i in range(32)), v["zero_faults"], v["pswpout"] >= 24
(True, 32, True)
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import select
import signal
import socket
import time
from typing import Any, Callable, Iterator

import vmlab_fs
from vmlab.core.errors import (BusError, LabError, OutOfMemory, PageIOError, VMError,
                               WorkloadError)
from vmlab.core.frame import FrameTable
from vmlab.core.lab import Lab, teardown
from vmlab.core.page import PAGE
from vmlab.core.policy import Policy
from vmlab.core.registry import make_policy
from vmlab.core.stats import FaultCosts, new_counters
from vmlab.real import uffd as uffd_api
from vmlab.real.cpu import current_cpu, pinned
from vmlab.real.fastpath import why_not as fast_why_not
from vmlab.real.pager import REAL_COUNTERS, Pager, RealFrame
from vmlab.real.workload import FRAME, child_main, unframe, value_of
from vmlab_swapdisk import SwapDisk

HANDOVER_TIMEOUT = 30.0         # seconds the workload may take to map its region


class RealMachine:
    """``frames`` page frames for a real process's memory, a replacement
    ``policy`` (a name, ``FILE.py:Class``, a Policy class or instance),
    ``swap_mb`` MiB of swap on the lab mount (``lab=None``: an embedded
    mount, removed on close), ``readahead`` N: swap-ins read up to 2**N
    neighbouring slots (Linux's vm.page-cluster); ``tick``/``tau`` for the
    policies that take them, counted in faults (the touches the pager
    sees); ``scan_every``: faults between the reference scans of a policy
    that wants touches (default ``frames``); ``pin``: pager, workload and
    our own mount's daemon on one CPU for a run; ``reclaim_batch``: the
    frames reclaim frees at once when none is free (default 1 in 16, at
    most 32; 1: one page out for every page in); ``fastpath``: serve zero
    fills and swap-ins in vmlab's compiled loop (None: where it was built;
    False: every fault in Python, the same results, slower). Raises
    Unavailable (a VMError) where userfaultfd cannot be had, with what to do."""

    def __init__(self, frames: int = 64, policy: "str | type[Policy] | Policy" = "clock",
                 swap_mb: float = 1024, lab: str | None = None, latency: str = "none",
                 seed: int = 0, readahead: int = 0, tick: int | None = None,
                 tau: int | None = None,
                 scan_every: int | None = None, pin: bool = True,
                 io_timeout: float | None = 10.0, reclaim_batch: int | None = None,
                 fastpath: bool | None = None) -> None:
        _check(frames, swap_mb, readahead, scan_every, reclaim_batch)
        why = fast_why_not()
        if fastpath and why:
            raise VMError(why)
        self.fastpath = why is None if fastpath is None else bool(fastpath)
        os.close(uffd_api.open_uffd())          # fail here, with what to do, not in the child
        self._closed = False
        self._run: _Run | None = None
        self._lab: Lab | None = None
        self.mount: vmlab_fs.Mount | None = None        # the embedded mount, if made here
        self.lab_mount: vmlab_fs.Mount | None = None    # the vmlab mount in use (None: a plain directory)
        self.swap: SwapDisk | None = None
        self.swap_path = ""
        self.io = None
        self.table = FrameTable(frames, RealFrame)
        try:
            self.policy = make_policy(policy, frames, seed, tick=tick, tau=tau)
            self.readahead, self.pin = readahead, pin
            self.scan_every = scan_every if scan_every is not None else frames
            self.reclaim_batch = reclaim_batch or default_batch(frames)
            self.stat = new_counters() | dict.fromkeys(REAL_COUNTERS, 0)
            self.costs = FaultCosts()
            self._lab = where = Lab(lab, latency, io_timeout)
            self.lab, self.mount, self.lab_mount, self.io = where.path, where.mount, where.lab_mount, where.io
            self.swap = where.new_swap(int(swap_mb * (1 << 20)) // PAGE * PAGE)
            self.swap_path = where.swap_path
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    # -- running a workload -------------------------------------------------------

    def run(self, fn: Callable[..., Any], size: int, *args: Any, timeout: float | None = None,
            every: float | None = None, report: Callable[[dict], None] | None = None) -> Any:
        """Run ``fn(mem, *args)`` in a child process, ``mem`` a writable
        memoryview of a ``size``-byte region this machine pages; returns
        what ``fn`` returned. ``fn`` raising is raised here; the child dying
        or running past ``timeout`` seconds is a WorkloadError; a page that
        cannot be read back kills it (BusError), as does running out of
        memory (OutOfMemory). ``report(vmstat)`` every ``every`` seconds."""
        if self._closed:
            raise VMError("this RealMachine is closed")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"size must be a positive number of bytes, not {size!r}")
        npages = -(-size // PAGE)
        memfd = os.memfd_create("vmlab-region", os.MFD_CLOEXEC)
        os.ftruncate(memfd, npages * PAGE)
        mine, theirs = socket.socketpair()
        cpu = current_cpu() if self.pin else None
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:                                    # the workload
            mine.close()
            child_main(theirs, memfd, npages * PAGE, cpu, fn, args, parent)
        theirs.close()
        run = _Run(self, pid, mine, memfd, npages)
        # The pager and our own mount's daemon (never another's) join the
        # workload's CPU: a wake-up across CPUs costs more than a fault.
        together = {} if cpu is None else {0: cpu} | ({self.mount.pid: cpu} if self.mount else {})
        self._run = run
        try:
            with pinned(together):
                return run.serve(timeout, every, report)
        finally:
            self._run = None
            run.close()

    # -- figures --------------------------------------------------------------------

    def vmstat(self) -> dict[str, int]:
        """The counters, with the simulated machine's names where they mean
        the same thing, plus the real machine's own cases.

        Sample: ``{'pgfault': 9216, 'pgmajfault': 3072, 'pswpin': 3072,
        'pswpout': 3328, ..., 'ref_faults': 512, 'wp_faults': 2048,
        'ref_arms': 700, 'swap_ra': 0, 'pgsteal': 4352, 'nr_frames': 64}``
        """
        out = dict(self.stat)
        out["pgsteal"] = out["evictions"]
        out["swap_ra_hit"] = out["swapcache_faults"]    # Linux's name: readahead pages used
        out["nr_frames"] = len(self.table.frames)
        pager = self._run and self._run.pager
        held = pager.fast.held() if pager and pager.fast else 0     # free, handed to it
        out["nr_free_frames"] = self.table.nr_free + held
        out["swap_slots"] = self.swap.slots
        out["swap_used"] = self.swap.used
        out["nr_processes"] = int(self._run is not None)
        return out

    def fault_costs(self) -> dict[str, dict[str, int]]:
        """Per case, the pager's service time: ``{'zero': {'count': 64,
        'median_ns': 7100, 'p99_ns': 21000}, 'swap': ..., 'reclaim': ...}``."""
        return self.costs.summary()

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Remove the swap file, unmount the embedded lab (each step runs even
        if one before it failed)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        steps = [self.table.close]
        policy = getattr(self, "policy", None)
        if hasattr(policy, "close"):
            steps.append(policy.close)          # a user's policy's watchdog
        teardown(steps)
        if self._lab is not None:
            self._lab.close()                   # the swap file, the guard, the unmount: last

    def __enter__(self) -> "RealMachine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RealMachine frames={len(self.table.frames)} policy={self.policy.name} lab={self.lab}>"


class _Run:
    """One workload being served: its process, its socket, its region and
    the pager; ``serve`` until it returns, ``close`` always."""

    def __init__(self, rm: RealMachine, pid: int, sock: socket.socket, memfd: int,
                 npages: int) -> None:
        self.rm, self.pid, self.sock, self.memfd, self.npages = rm, pid, sock, memfd, npages
        self.pidfd = os.pidfd_open(pid)
        self.pager: Pager | None = None
        self.reaped = False

    def serve(self, timeout: float | None, every: float | None,
              report: Callable[[dict], None] | None) -> Any:
        """The pager's loop: faults, the outcome, the child's end."""
        deadline = time.monotonic() + timeout if timeout else None
        u = self._handover()
        rm = self.rm
        self.pager = pager = Pager(u, self.memfd, self.npages, rm.table, rm.policy, rm.swap,
                                   rm.io, rm.stat, rm.costs, rm.readahead, rm.scan_every, rm.reclaim_batch)
        ctl = (self.sock.fileno(), self.pidfd)
        if rm.fastpath:
            pager.use_fast_path(ctl)
        poll = select.poll()
        for fd in (u.fd, *ctl) if pager.fast is None else ctl:
            poll.register(fd, select.POLLIN)
        buf, outcome, exited = bytearray(), None, False
        self.next_report = time.monotonic() + every if every and report else None
        timed, ufd = deadline is not None or self.next_report is not None, u.fd
        while outcome is None and not exited:
            for fd, _ in self._wait(poll, deadline if timed else None):
                if fd == ufd:
                    with self._serving():
                        for page, flags in u.read():
                            pager.fault(page, flags)
                elif fd == self.pidfd:
                    exited = True
                else:
                    data = self.sock.recv(1 << 20)
                    if data:
                        buf += data
                        outcome = unframe(buf)
                    else:
                        exited = True
            if timed and outcome is None:
                self._on_time(deadline, timeout, every, report)
        if outcome is None:
            outcome = self._drain(buf)
        return value_of(outcome, self.pid)

    def _on_time(self, deadline: float | None, timeout: float | None, every: float | None,
                 report: Callable[[dict], None] | None) -> None:
        """Report the counters when an interval is up; kill a workload past
        its deadline (WorkloadError)."""
        now = time.monotonic()
        if self.next_report is not None and now >= self.next_report:
            report(self.rm.vmstat())
            self.next_report = now + every
        if deadline is not None and now >= deadline:
            self._kill()
            raise WorkloadError(f"the workload (pid {self.pid}) ran past its timeout "
                                f"of {timeout:g} s and was killed")

    def _handover(self) -> uffd_api.Uffd:
        """The region's address and userfaultfd from the child."""
        ready, _, _ = select.select([self.sock, self.pidfd], [], [], HANDOVER_TIMEOUT)
        if self.sock not in ready:
            self._kill()
            raise WorkloadError(f"the workload (pid {self.pid}) did not set up its region "
                                f"within {HANDOVER_TIMEOUT:g} s" if not ready else
                                f"the workload (pid {self.pid}) died setting up its region "
                                f"({self._status()})")
        msg, fds, _, _ = socket.recv_fds(self.sock, 1 + FRAME.size, 1)
        if msg[:1] != b"R" or not fds:
            for fd in fds:
                os.close(fd)
            outcome = self._drain(bytearray())
            if outcome[0] == "error" and isinstance(outcome[1], uffd_api.Unavailable):
                raise outcome[1]
            return value_of(outcome, self.pid)            # raises
        (base,) = FRAME.unpack(msg[1:])
        return uffd_api.Uffd(fds[0], base)

    def _wait(self, poll: select.poll, deadline: float | None) -> list[tuple[int, int]]:
        """The descriptors ready by the earlier of ``deadline`` and the next
        report (None: wait for ever). With the fast path, its loop waits
        and serves the faults meanwhile; the region's descriptor is then
        never among those returned."""
        if self.pager.fast is None:
            return poll.poll(_wait_ms(deadline, self.next_report))
        soon = _earliest(deadline, self.next_report)
        with self._serving():
            if not self.pager.serve(0 if soon is None else int(soon * 1e9)):
                return []
        return poll.poll(0)

    @contextlib.contextmanager
    def _serving(self) -> Iterator[None]:
        """Serving faults: a page that cannot be served kills the workload."""
        try:
            yield
        except (OutOfMemory, LabError) as e:
            self._kill()
            raise type(e)(f"the workload (pid {self.pid}) was killed: {e}") from None
        except PageIOError as e:
            self._kill()
            raise BusError(f"the workload (pid {self.pid}) was killed: a page of its region "
                           f"could not be read back from swap ({e})") from None
        except VMError:
            self._kill()
            raise
        except OSError as e:
            if e.errno == errno.ESRCH:  # the workload is gone; its end tells why
                return
            self._kill()
            raise VMError(f"the pager failed serving the workload (pid {self.pid}): "
                          f"{e.strerror or e}") from e

    def _drain(self, buf: bytearray) -> tuple:
        """What the child sent before it ended, or how it ended."""
        while (outcome := unframe(buf)) is None:
            ready, _, _ = select.select([self.sock, self.pidfd], [], [])
            data = self.sock.recv(1 << 20) if self.sock in ready else b""
            if not data:
                return ("died", self._status())
            buf += data
        return outcome

    def _status(self) -> str:
        """How the child ended, in words (it is reaped here)."""
        if self.reaped:
            return "ended"
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return f"was killed by {signal.Signals(sig).name}"
        return f"exited with status {os.waitstatus_to_exitcode(status)}"

    def _kill(self) -> None:
        """SIGKILL the child, by its pidfd (never a recycled pid)."""
        if not self.reaped:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def close(self) -> None:
        """End and reap the child if it still runs, give back every frame and
        slot the run held, close the descriptors."""
        if not self.reaped:
            self._kill()
            self._status()
        pager = self.pager
        if pager is not None:
            for slot in pager.slot_of:
                if slot:
                    self.rm.swap.free(slot)
            for f in self.rm.table.frames:
                if f.page is not None:
                    with contextlib.suppress(VMError):     # a policy's error is told already
                        self.rm.policy.released(f)
            self.rm.table.free_all()            # a frame being filled when it failed, too
            pager.close()
            os.close(pager.uffd.fd)
        os.close(self.pidfd)
        os.close(self.memfd)
        self.sock.close()


def _earliest(*moments: float | None) -> float | None:
    """The earliest of ``moments`` (monotonic seconds; None: none), or None."""
    return min((m for m in moments if m is not None), default=None)


def _wait_ms(*moments: float | None) -> int:
    """Milliseconds until the earliest of ``moments`` (None: none), -1 for ever."""
    soon = _earliest(*moments)
    return -1 if soon is None else max(0, int((soon - time.monotonic()) * 1000) + 1)


def default_batch(frames: int) -> int:
    """How many frames reclaim frees at once by default: 1 in 16 of them,
    at most Linux's SWAP_CLUSTER_MAX (32), at least 1."""
    return max(1, min(32, frames // 16))


def _check(frames: Any, swap_mb: Any, readahead: Any, scan_every: Any, reclaim_batch: Any) -> None:
    """ValueError for an argument RealMachine does not take."""
    if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0:
        raise ValueError(f"frames must be a positive int, not {frames!r}")
    if not isinstance(swap_mb, (int, float)) or isinstance(swap_mb, bool) or not 0 < swap_mb <= 1 << 20:
        raise ValueError(f"swap_mb must be a positive number of MiB, not {swap_mb!r}")
    if int(swap_mb * (1 << 20)) // PAGE < 2:
        raise ValueError(f"swap_mb={swap_mb} is too small for one slot")
    if not isinstance(readahead, int) or isinstance(readahead, bool) or not 0 <= readahead <= 5:
        raise ValueError(f"readahead must be 0-5 (up to 2**5 pages a read), not {readahead!r}")
    if scan_every is not None and (not isinstance(scan_every, int) or scan_every <= 0):
        raise ValueError(f"scan_every must be a positive int, not {scan_every!r}")
    if reclaim_batch is not None and (not isinstance(reclaim_batch, int) or isinstance(reclaim_batch, bool)
                                      or not 1 <= reclaim_batch <= frames):
        raise ValueError(f"reclaim_batch must be 1 to frames ({frames}), not {reclaim_batch!r}")
