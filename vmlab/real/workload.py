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

import mmap
import os
import pickle
import socket
import struct
import traceback
from typing import Any, Callable, NoReturn

from vmlab.real.pager import address_of
from vmlab.real.uffd import open_uffd, register

FRAME = struct.Struct("Q")


def child_main(sock: socket.socket, memfd: int, size: int, cpu: int | None,
               fn: Callable[..., Any], args: tuple) -> NoReturn:
    """Run ``fn(mem, *args)`` over the paged region and report; never returns."""
    status = 0
    try:
        try:
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
            _send(sock, _error(e))
        else:
            socket.send_fds(sock, [b"R" + FRAME.pack(base)], [uffd])
            os.close(uffd)
            try:
                outcome = ("ok", fn(memoryview(region), *args))
            except SystemExit as e:
                outcome = ("exit", e.code)
            except BaseException as e:
                outcome = _error(e)
            _send(sock, outcome)
    except BaseException:
        status = 70
    finally:
        os._exit(status)


def _error(e: BaseException) -> tuple:
    """The report of an exception: the exception itself if it pickles."""
    text = "".join(traceback.format_exception(e)).rstrip()
    try:
        pickle.loads(pickle.dumps(e))
        return ("error", e, text)
    except Exception:
        return ("error", None, text)


def _send(sock: socket.socket, outcome: tuple) -> None:
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
