"""The lab filesystem daemon: ``python -m vmlab_fs.daemon BACKING MOUNTPOINT``.

Runs libfuse 3's single-threaded loop in the foreground; ``vmlab_fs.mounting``
starts it as a child process and detaches it for ``vmlab mount``. When the
mount is live it writes ``ready PID`` to ``--status-fd`` and sends its stderr
to ``--log`` (default: nowhere), so a parent may stop listening.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from typing import Callable


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m vmlab_fs.daemon")
    ap.add_argument("backing")
    ap.add_argument("mountpoint")
    ap.add_argument("--latency", default="none")
    ap.add_argument("--status-fd", type=int, default=-1)
    ap.add_argument("--log", help="where stderr goes once mounted (default: stays)")
    ap.add_argument("--minimal", action="store_true",
                    help="serve the bare passthrough vmlab bench compares against")
    return ap.parse_args(argv)


class _SetupStderr:
    """Until the mount is live, libfuse's own messages (the real cause of a
    failure) are caught, to be passed on in one line; then stderr is back."""

    def __init__(self) -> None:
        self.caught = tempfile.TemporaryFile()
        self.saved = os.dup(2)
        os.dup2(self.caught.fileno(), 2)

    def restore(self) -> None:
        if self.saved >= 0:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self.saved = -1

    def said(self) -> list[str]:
        self.restore()
        self.caught.seek(0)
        return self.caught.read().decode(errors="replace").splitlines()


def _ready(args: argparse.Namespace, stderr: _SetupStderr, mounted: list) -> Callable[[], None]:
    """What to do once the mount is live: say so (status fd, or a line),
    then send stderr to ``--log``."""
    def ready() -> None:
        stderr.restore()
        mounted.append(True)
        if args.status_fd >= 0:
            os.write(args.status_fd, f"ready {os.getpid()}\n".encode())
            os.close(args.status_fd)
        else:
            print(f"vmlab: {args.mountpoint} mounted (daemon pid {os.getpid()}); "
                  "Ctrl-C unmounts", file=sys.stderr)
        if args.log:
            log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log, 2)
            os.close(log)
    return ready


def main(argv: list[str] | None = None) -> int:
    """Serve the mount until it is unmounted; 0 then, 1 if it never came
    up (with libfuse's reason), 2 for bad arguments."""
    args = _parse(argv)
    from vmlab_fs.control import ControlError, parse_latency
    try:
        parse_latency(args.latency)
    except ControlError as e:
        print(f"vmlab: {e}", file=sys.stderr)
        return 2
    from vmlab_fs.labfs import LabFS
    from vmlab_fs.libfuse import mfusepy
    from vmlab_fs.minimal import MinimalFS

    mounted: list = []
    stderr = _SetupStderr()
    ready = _ready(args, stderr, mounted)
    logging.basicConfig(level=logging.WARNING, format="vmlab-fs: %(message)s")
    ops = (MinimalFS(args.backing, on_ready=ready) if args.minimal
           else LabFS(args.backing, args.latency, on_ready=ready))
    fsname = ops.root if "," not in ops.root else "vmlab"
    try:
        mfusepy.FUSE(ops, args.mountpoint, raw_fi=True, foreground=True, nothreads=True,
                     fsname=fsname, subtype="vmlab", default_permissions=True)
    except RuntimeError as e:
        if mounted:     # libfuse reports the signal that ended the loop (Ctrl-C, TERM)
            return 0
        print(f"vmlab: {mount_failure(args.mountpoint, stderr.said(), e)}", file=sys.stderr)
        return 1
    return 0


# What libfuse says when a mount fails, and what to do about it.
_HINTS = (
    ("/dev/fuse: Permission denied", "/dev/fuse is closed to this user: run as root, or open it "
     "to users (ls -l /dev/fuse; chmod 0666 /dev/fuse)"),
    ("Operation not permitted", "mounting needs CAP_SYS_ADMIN: run as root; in a container, "
     "add --cap-add SYS_ADMIN --device /dev/fuse"),
    ("device not found", "load the fuse module (modprobe fuse); in a container, pass "
     "--device /dev/fuse"),
    ("/dev/fuse: No such file", "load the fuse module (modprobe fuse); in a container, pass "
     "--device /dev/fuse"),
    ("Invalid argument", "/dev/fuse is not the FUSE device here (ls -l /dev/fuse: "
     "character device 10, 229)"),
)


def mount_failure(mountpoint: str, said: list[str], error: Exception) -> str:
    """One line: libfuse's own last word on why the mount failed, then what
    to do about it.

    >>> mount_failure("/m", ["fuse: failed to open /dev/fuse: Permission denied"], RuntimeError(4))
    'mounting /m failed: fuse: failed to open /dev/fuse: Permission denied; /dev/fuse is closed to this user: run as root, or open it to users (ls -l /dev/fuse; chmod 0666 /dev/fuse)'
    """
    lines = [l.strip() for l in said if l.strip()]
    cause = lines[-1] if lines else f"libfuse error {error}"
    hint = next((h for key, h in _HINTS if key in cause), "")
    return f"mounting {mountpoint} failed: {cause}" + (f"; {hint}" if hint else "")


if __name__ == "__main__":
    sys.exit(main())
