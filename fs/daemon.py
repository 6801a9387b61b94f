"""The lab filesystem daemon: ``python -m fs.daemon BACKING MOUNTPOINT``.

Runs libfuse 3's single-threaded loop in the foreground; ``fs.mounting``
starts it as a child process and detaches it for ``vmlab mount``. When the
mount is live it writes ``ready PID`` to ``--status-fd`` and sends its stderr
to ``--log`` (default: nowhere), so a parent may stop listening.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fs.daemon")
    ap.add_argument("backing")
    ap.add_argument("mountpoint")
    ap.add_argument("--latency", default="none")
    ap.add_argument("--status-fd", type=int, default=-1)
    ap.add_argument("--log", help="where stderr goes once mounted (default: stays)")
    ap.add_argument("--minimal", action="store_true",
                    help="serve the bare passthrough vmlab bench compares against")
    args = ap.parse_args(argv)

    from fs.control import ControlError, parse_latency
    try:
        parse_latency(args.latency)
    except ControlError as e:
        print(f"vmlab: {e}", file=sys.stderr)
        return 2
    from fs.labfs import LabFS
    from fs.libfuse import mfusepy

    mounted = []

    def ready() -> None:
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

    logging.basicConfig(level=logging.WARNING, format="vmlab-fs: %(message)s")
    if args.minimal:
        from fs.minimal import MinimalFS
        ops = MinimalFS(args.backing, on_ready=ready)
    else:
        ops = LabFS(args.backing, args.latency, on_ready=ready)
    fsname = ops.root if "," not in ops.root else "vmlab"
    try:
        mfusepy.FUSE(ops, args.mountpoint, raw_fi=True, foreground=True, nothreads=True,
                     fsname=fsname, subtype="vmlab", default_permissions=True)
    except RuntimeError as e:
        if mounted:     # libfuse reports the signal that ended the loop (Ctrl-C, TERM)
            return 0
        print(f"vmlab: mounting {args.mountpoint} failed ({e})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
