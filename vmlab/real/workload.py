"""The workload's side of a real run: a forked child that maps the region,
hands its userfaultfd to the pager, runs the function and sends back what
it returned or raised.

The pager cannot live in the faulting process (a faulting thread holds the
GIL), so the workload is a process of its own. Messages on the socket: the
hand-over first (``R`` + the region's address, with the uffd attached; or
``E``, setup failed), then one framed pickle: ``("ok", value)``,
``("error", exception or None, text)`` or ``("exit", status)``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import signal
import socket
import struct
import traceback
from typing import Any, Callable, NoReturn

from vmlab.core.errors import WorkloadError
from vmlab.real.uffd import address_of, open_uffd, register

FRAME = struct.Struct("Q")
PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """SIGKILL this process when ``parent`` (the pager's process) dies, even
    by SIGKILL: no one else can serve its memory's faults. Exits at once
    if ``parent`` is gone already."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(70)


def child_main(sock: socket.socket, memfd: int, size: int, cpu: int | None,
               fn: Callable[..., Any], args: tuple, parent: int) -> NoReturn:
    """Run ``fn(mem, *args)`` over the paged region and report, dying with
    ``parent``, the pager's process; never returns."""
    status = 0
    try:
        try:
            die_with(parent)
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            region = mmap.mmap(memfd, size, flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
            os.close(memfd)
            base = address_of(region)
            uffd = open_uffd()
            register(uffd, base, size)
        except BaseException as e:
            socket.send_fds(sock, [b"E" + FRAME.pack(0)], [])
            send(sock, _error(e))
        else:
            socket.send_fds(sock, [b"R" + FRAME.pack(base)], [uffd])
            os.close(uffd)
            send(sock, call(fn, memoryview(region), args))
    except BaseException:
        status = 70
    finally:
        os._exit(status)


def call(fn: Callable[..., Any], mem: memoryview, args: tuple) -> tuple:
    """``fn(mem, *args)`` as an outcome to send: ``("ok", value)``,
    ``("exit", status)`` or ``("error", ...)``."""
    try:
        return ("ok", fn(mem, *args))
    except SystemExit as e:
        return ("exit", e.code)
    except BaseException as e:
        return _error(e)


def value_of(outcome: tuple, pid: int) -> Any:
    """``fn``'s value, or raise what the outcome says: its exception (the
    child's traceback as a note), a WorkloadError for an exit or a death."""
    kind = outcome[0]
    if kind == "ok":
        return outcome[1]
    if kind == "exit":
        raise WorkloadError(f"the workload (pid {pid}) called exit({outcome[1]!r}) before returning")
    if kind == "died":
        raise WorkloadError(f"the workload (pid {pid}) {outcome[1]} before returning")
    e, text = outcome[1], outcome[2]
    if e is None:
        raise WorkloadError(f"the workload raised {text.splitlines()[-1]}")
    e.add_note("in the workload:\n" + text)
    raise e


def _error(e: BaseException) -> tuple:
    """The report of an exception: the exception itself if it pickles."""
    text = "".join(traceback.format_exception(e)).rstrip()
    try:
        pickle.loads(pickle.dumps(e))
        return ("error", e, text)
    except Exception:
        return ("error", None, text)


def send(sock: socket.socket, outcome: tuple) -> None:
    """One framed pickle; a value that does not pickle is reported as an error."""
    try:
        data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        data = pickle.dumps(("error", None, f"the workload's result could not be pickled: "
                                            f"{type(e).__name__}: {e}"))
    sock.sendall(FRAME.pack(len(data)) + data)


def unframe(buf: bytearray) -> tuple | None:
    """The outcome in ``buf`` once it has all arrived, else None."""
    if len(buf) < FRAME.size:
        return None
    (n,) = FRAME.unpack_from(buf)
    if len(buf) < FRAME.size + n:
        return None
    return pickle.loads(bytes(buf[FRAME.size:FRAME.size + n]))
