"""The lab a machine keeps its swap on: finding the vmlab mount at a path,
the guard every page-in and write-out passes, and the swap file there,
from its making to its removal. Shared by ``Machine`` and the real machine
(``vmlab.real``)."""

from __future__ import annotations

import contextlib
import os

import vmlab_fs
from vmlab.core.errors import LabError, VMError
from vmlab.core.labio import LabIO
from vmlab_swapdisk import SwapDisk, SwapHeader, mkswap


class Lab:
    """Where a machine keeps its swap: an embedded mount in a temporary
    directory (``lab=None``) or a directory given (a vmlab mount, or a plain
    directory), the guard its I/O passes, and its swap file (``new_swap``);
    ``close`` removes what it made. Raises ValueError (not a directory),
    vmlab_fs.MountError."""

    def __init__(self, lab: str | None, latency: str, io_timeout: float | None) -> None:
        self._cm = None
        self.mount: vmlab_fs.Mount | None = None       # the embedded mount, if made here
        if lab is None:
            self._cm = vmlab_fs.mount(latency=latency)
            self.mount = self._cm.__enter__()
            lab = self.mount.path
        elif not os.path.isdir(lab):
            raise ValueError(f"lab {lab!r} is not a directory (mount one with 'vmlab mount')")
        self.path = lab
        self.lab_mount = self.mount or attach(lab)     # the vmlab mount in use, if any
        self.backing = self.lab_mount.backing if self.lab_mount else lab
        self.io = io_guard(lab, self.lab_mount, self.mount is not None, io_timeout)
        self.swap: SwapDisk | None = None
        self.swap_path = ""

    def new_swap(self, size: int) -> SwapDisk:
        """A new swap file of ``size`` bytes here, open; ``close`` removes it.
        Raises LabError (it cannot be made), OSError (it cannot be opened)."""
        self.swap_path, header = new_swap_file(self.path, size)
        self.swap = SwapDisk(self.swap_path, header=header)
        return self.swap

    def close(self) -> None:
        """Stop the I/O guard, close and remove the swap file, then unmount the
        embedded mount; each step runs even if one before it failed, once."""
        steps = [self.io.close]
        if self.swap is not None:
            steps.append(self.swap.close)
        if self.swap_path:
            steps.append(lambda path=self.swap_path: os.unlink(path))
        teardown(steps)
        self.swap, self.swap_path = None, ""
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)


def teardown(steps: list) -> None:
    """Call every step of a teardown, each even if one before it failed
    (a dead mount fails every close, a traceback may hold a view)."""
    for step in steps:
        try:
            step()
        except (OSError, BufferError):
            pass


def attach(lab: str) -> vmlab_fs.Mount | None:
    """The vmlab mount at ``lab``, or None if it is a plain directory."""
    try:
        return vmlab_fs.attach(lab)
    except vmlab_fs.MountError:
        return None


def io_guard(lab: str, mount: vmlab_fs.Mount | None, ours: bool, timeout: float | None) -> LabIO:
    """The I/O guard: on a vmlab mount, a watchdog that aborts requests
    stuck longer than ``timeout`` (killing the daemon only as a last resort,
    and only if ``ours``: a mount this Machine started); on a plain
    directory, no watchdog."""
    if mount is None:
        return LabIO(lab, None, lambda: None)
    conn, pid = vmlab_fs.connection(lab), mount.pid if ours else None
    return LabIO(lab, timeout, lambda: vmlab_fs.abort(conn, pid))


def new_swap_file(lab: str, size: int) -> tuple[str, SwapHeader]:
    """``swap.img`` on the mount, or ``swap-N.img`` if another Machine has it."""
    for n in range(1, 10_000):
        path = os.path.join(lab, "swap.img" if n == 1 else f"swap-{n}.img")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        except OSError as e:
            raise LabError(f"cannot create a swap file in {lab}: {e.strerror}") from None
        try:
            return path, mkswap(path, size, force=True)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(path)         # nothing left behind
            raise LabError(f"cannot create a swap file in {lab}: {e.strerror}") from None
    raise VMError(f"no free swap file name in {lab}")
