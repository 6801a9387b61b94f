"""The ``vmlab`` command. Each sub-command is one small function; bad
arguments exit 2 with one line on stderr, failures exit 1, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict

from vmlab import __version__


class UsageError(Exception):
    """Bad input from the user: exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):           # one line, not usage + line
        raise UsageError(f"{self.prog}: {message}")


def _latency(text: str) -> str:
    from fs.control import ControlError, parse_latency
    try:
        parse_latency(text)
    except ControlError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _size(text: str) -> int:
    from vmlab.units import parse_size
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not 0 < v <= 86400:
        raise argparse.ArgumentTypeError(f"bad interval {text!r}: seconds, above 0")
    return v


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"bad count {text!r}: a whole number above 0")
    return int(text)


def build_parser() -> Parser:
    p = Parser(prog="vmlab", description="A virtual memory lab on a FUSE filesystem "
               "that shows every page-in and write-back as real I/O.")
    p.add_argument("--version", action="version", version=f"vmlab {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="run the lab's demonstration on an embedded mount")
    d.add_argument("--latency", type=_latency, default="none",
                   help="none, ssd, hdd, <N>us or <N>ms (default none)")

    m = sub.add_parser("mount", help="mount the lab filesystem at MNT")
    m.add_argument("mountpoint", metavar="MNT")
    m.add_argument("--backing", metavar="DIR",
                   help="directory holding the files (default: a new one under /var/tmp)")
    m.add_argument("--latency", type=_latency, default="none",
                   help="none, ssd, hdd, <N>us or <N>ms (default none)")
    m.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C unmounts")
    m.add_argument("--force", action="store_true", help="mount over a non-empty directory")

    u = sub.add_parser("umount", help="unmount a lab filesystem and stop its daemon")
    u.add_argument("mountpoint", metavar="MNT")

    s = sub.add_parser("stat", help="print a mount's request counters")
    s.add_argument("mountpoint", metavar="MNT")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.add_argument("--interval", type=_seconds, metavar="S",
                   help="print a line of deltas every S seconds, like vmstat")
    s.add_argument("--count", type=_count, metavar="N", help="stop after N lines")

    k = sub.add_parser("mkswap", help="create a swap file (Linux SWAPSPACE2 format)")
    k.add_argument("path", metavar="PATH")
    k.add_argument("--size", type=_size, required=True, help="e.g. 64M")
    k.add_argument("--label", default="vmlab")
    k.add_argument("--force", action="store_true", help="overwrite a file that is not swap")
    return p


# -- commands ---------------------------------------------------------------

def cmd_demo(args) -> int:
    from vmlab.demo import run_demo
    return run_demo(latency=args.latency)


def cmd_mount(args) -> int:
    import fs
    from fs.mounting import check_mountpoint
    backing = args.backing
    if backing is None:
        os.makedirs("/var/tmp", exist_ok=True)
        backing = tempfile.mkdtemp(prefix="vmlab-backing-", dir="/var/tmp")
    if args.foreground:
        from fs.daemon import main as daemon_main
        mnt, back = check_mountpoint(args.mountpoint, backing, args.force)
        return daemon_main([back, mnt, "--latency", args.latency])
    m = fs.start(args.mountpoint, backing, args.latency, detach=True, force=args.force)
    print(f"{m.path}: mounted (backing {m.backing}, latency {args.latency}, daemon pid {m.pid})")
    return 0


def cmd_umount(args) -> int:
    import fs
    fs.unmount(args.mountpoint)
    return 0


def cmd_stat(args) -> int:
    import fs
    from vmlab.fsview import render_stat, vmstat_header, vmstat_line
    m = fs.attach(args.mountpoint)
    if args.interval is None:
        stats, files = m.stats(), m.files()
        if args.json:
            print(json.dumps({"mountpoint": m.path, "stats": stats,
                              "files": {p: asdict(f) for p, f in files.items()}}))
        else:
            print(render_stat(stats, files))
        return 0
    prev, t0, n = m.stats(), time.monotonic(), 0
    if not args.json:
        print(vmstat_header(), flush=True)
    while args.count is None or n < args.count:
        time.sleep(args.interval)
        cur, t1 = m.stats(), time.monotonic()
        if args.json:
            print(json.dumps({"time": time.time(), "stats": cur}), flush=True)
        else:
            print(vmstat_line(prev, cur, t1 - t0), flush=True)
        prev, t0, n = cur, t1, n + 1
    return 0


def cmd_mkswap(args) -> int:
    from swapdisk import mkswap
    from vmlab.units import human_bytes
    h = mkswap(args.path, args.size, args.label, args.force)
    usable = h.slots * 4096
    print(f"Setting up swapspace version 1, size = {human_bytes(usable)} ({usable} bytes)")
    print(f"LABEL={h.label}, UUID={h.uuid}")
    return 0


COMMANDS = {"demo": cmd_demo, "mount": cmd_mount, "umount": cmd_umount,
            "stat": cmd_stat, "mkswap": cmd_mkswap}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.cmd](args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:          # every failure is one line, not a traceback
        return _fail(e)


def _fail(e: Exception) -> int:
    import errno
    import fs
    from swapdisk import SwapError
    if isinstance(e, (fs.MountError, ValueError, SwapError)):
        msg, code = str(e), 2 if isinstance(e, (fs.BadMountpoint, ValueError)) else 1
    elif isinstance(e, OSError) and e.errno == errno.ENOTCONN:
        msg, code = ("the filesystem daemon is gone (Transport endpoint is not connected); "
                     "clean up with 'vmlab umount MNT'"), 1
    elif isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        msg, code = f"{where}{e.strerror or e}", 1
    else:
        msg, code = f"internal error: {type(e).__name__}: {e}", 1
    print(f"vmlab: error: {msg}", file=sys.stderr)
    return code
