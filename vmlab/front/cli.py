"""The ``vmlab`` command. Each sub-command is one small function; bad
arguments exit 2 with one line on stderr, failures exit 1, never a traceback."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

from vmlab import __version__


class UsageError(Exception):
    """Bad input from the user: exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):           # one line, not usage + line
        raise UsageError(f"{self.prog}: {message}")


def _latency(text: str) -> str:
    from vmlab_fs.control import ControlError, parse_latency
    try:
        parse_latency(text)
    except ControlError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _size(text: str) -> int:
    from vmlab.front.units import parse_size
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


def _int_list(text: str) -> list[int]:
    """Frame counts: ``3,4,8``, ranges ``1-512``, or both (``1-8,16,32``)."""
    counts: set[int] = set()
    for t in (t for t in text.replace(" ", "").split(",") if t):
        lo, _, hi = t.partition("-")
        if not (lo.isdigit() and (hi.isdigit() or not _) and 0 < int(lo) <= int(hi or lo) <= 1 << 20):
            counts.clear()
            break
        counts.update(range(int(lo), int(hi or lo) + 1))
    if not counts or len(counts) > 4096:
        raise argparse.ArgumentTypeError(f"bad frame counts {text!r}: e.g. 3,4,8 or 1-512 "
                                         "(each 1 to 1048576, at most 4096 of them)")
    return sorted(counts)


def _policy_list(text: str) -> list[str]:
    """Built-in names, or FILE.py:Class / module:Class (a Policy of yours)."""
    from vmlab.replay.policies import POLICIES
    parts = [t.strip() for t in text.split(",") if t.strip()]
    parts = [t if ":" in t else t.lower() for t in parts]
    names = list(POLICIES)
    if any(t not in POLICIES for t in parts):      # the built-ins' fast loops need no registry
        from vmlab.core.registry import POLICIES as NAMED
        names += [n for n in NAMED if n not in POLICIES]
    bad = [t for t in parts if ":" not in t and t not in names]
    if not parts or bad:
        raise argparse.ArgumentTypeError(
            f"bad policy {', '.join(bad) or text!r}: choose from {','.join(names)}, "
            "or FILE.py:Class of your own")
    for spec in (t for t in parts if ":" in t):
        _policy_spec(spec)
    return list(dict.fromkeys(parts))


def _policy_spec(text: str) -> str:
    """A Machine policy: a built-in name, FILE.py:Class or module:Class."""
    from vmlab.core.registry import policy_class
    try:
        policy_class(text if ":" in text else text.lower())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text if ":" in text else text.lower()


LATENCY_HELP = "none, ssd, hdd, <N>us or <N>ms (default none)"


def build_parser() -> Parser:
    """The parser: one sub-command each, each defined by its own function below."""
    p = Parser(prog="vmlab", description="A virtual memory lab on a FUSE filesystem "
               "that shows every page-in and write-back as real I/O.")
    p.add_argument("--version", action="version", version=f"vmlab {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    for define in (_demo_args, _mount_args, _umount_args, _stat_args, _mkswap_args,
                   _trace_args, _run_args, _real_args, _bench_args, _policy_args):
        define(sub)
    return p


def _demo_args(sub) -> None:
    d = sub.add_parser("demo", help="run the lab's demonstration on an embedded mount")
    d.add_argument("--latency", type=_latency, default="none", help=LATENCY_HELP)


def _mount_args(sub) -> None:
    m = sub.add_parser("mount", help="mount the lab filesystem at MNT")
    m.add_argument("mountpoint", metavar="MNT")
    m.add_argument("--backing", metavar="DIR",
                   help="directory holding the files (default: a new one under /var/tmp)")
    m.add_argument("--latency", type=_latency, default="none", help=LATENCY_HELP)
    m.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C unmounts")
    m.add_argument("--force", action="store_true",
                   help="mount over a non-empty directory or an existing mount")


def _umount_args(sub) -> None:
    u = sub.add_parser("umount", help="unmount a lab filesystem and stop its daemon")
    u.add_argument("mountpoint", metavar="MNT")


def _stat_args(sub) -> None:
    s = sub.add_parser("stat", help="print a mount's request counters")
    s.add_argument("mountpoint", metavar="MNT")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.add_argument("--interval", type=_seconds, metavar="S",
                   help="print a line of deltas every S seconds, like vmstat")
    s.add_argument("--count", type=_count, metavar="N", help="stop after N lines")


def _mkswap_args(sub) -> None:
    k = sub.add_parser("mkswap", help="create a swap file (Linux SWAPSPACE2 format)")
    k.add_argument("path", metavar="PATH")
    k.add_argument("--size", type=_size, required=True, help="e.g. 64M")
    k.add_argument("--label", default="vmlab")
    k.add_argument("--force", action="store_true", help="overwrite a file that is not swap")


def _trace_args(sub) -> None:
    t = sub.add_parser("trace", help="replay a memory trace under page replacement policies")
    t.add_argument("file", metavar="FILE", help="trace file, or - for standard input")
    t.add_argument("--format", choices=["auto", "refs", "lackey"], default="auto",
                   help="refs: page numbers; lackey: valgrind --tool=lackey --trace-mem=yes")
    t.add_argument("--frames", type=_int_list, required=True, help="e.g. 3,4,8 or 1-512")
    t.add_argument("--curve", action="store_true",
                   help="the miss-ratio curve: a row per frame count (with --plot: miss ratio)")
    t.add_argument("--policy", type=_policy_list, default=_policy_list("fifo,lru,opt,clock,random"),
                   help="any of fifo,lru,opt,clock,random (default: these), second-chance, "
                        "nru, nfu, aging, working-set, wsclock, mru, and FILE.py:Class of your own")
    _tick_tau(t)
    t.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    t.add_argument("--json", action="store_true", help="one JSON object")
    t.add_argument("--plot", metavar="PNG", help="draw faults against frames per policy")
    t.add_argument("--vm", action="store_true", help="also replay through a real Machine")
    t.add_argument("--explain", action="store_true",
                   help="every reference: hit or miss, the victim, memory (short strings)")
    t.add_argument("--lab", metavar="MNT", help="with --vm: an existing vmlab mount")


def _run_args(sub) -> None:
    r = sub.add_parser("run", help="run a lab scenario from demo/ (--list shows them)")
    r.add_argument("scenario", metavar="SCENARIO", nargs="?")
    r.add_argument("--list", action="store_true", help="list the scenarios")
    r.add_argument("--frames", type=_count, help="physical frames (default: the scenario's)")
    r.add_argument("--policy", type=_policy_spec, default="clock",
                   help="clock (default), fifo, lru, random, second-chance, nru, nfu, aging, "
                        "working-set, wsclock, mru, or FILE.py:Class / module:Class")
    _tick_tau(r)
    r.add_argument("--latency", type=_latency, default="none",
                   help="none, ssd, hdd, <N>us or <N>ms (embedded mount only)")
    r.add_argument("--lab", metavar="MNT", help="an existing vmlab mount")
    r.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    w = r.add_mutually_exclusive_group()
    w.add_argument("--vmstat", type=_seconds, nargs="?", const=1.0, metavar="S",
                   help="print a vmstat-style line every S seconds (default 1)")
    w.add_argument("--live", type=_seconds, nargs="?", const=0.5, metavar="S",
                   help="show the frame table and counters, refreshed every S seconds")
    r.add_argument("--maps", type=_count, metavar="PID",
                   help="print /proc/PID/maps before each munmap and as PID exits")
    r.add_argument("--smaps", type=_count, metavar="PID",
                   help="print /proc/PID/smaps before each munmap and as PID exits")
    r.add_argument("--swaps", action="store_true", help="print /proc/swaps as each process exits")
    r.add_argument("--json", action="store_true", help="the result as one JSON object")


def _real_args(sub) -> None:
    r = sub.add_parser("real", help="page a real process's memory through userfaultfd")
    r.add_argument("workload", metavar="WORKLOAD", nargs="?",
                   help="scan, random, hot-cold, sort, matmul, matmul-blocked")
    r.add_argument("--script", metavar="FILE.py", help="run main(mem) from FILE.py instead")
    r.add_argument("--size", type=_size, default=64 << 20, help="the region (default 64M)")
    r.add_argument("--frames", type=_count, default=256, help="page frames (default 256)")
    r.add_argument("--policy", type=_policy_spec, default="clock",
                   help="clock (default), fifo, lru, random, the textbook set, or FILE.py:Class")
    r.add_argument("--latency", type=_latency, default="none", help=LATENCY_HELP)
    r.add_argument("--lab", metavar="MNT", help="an existing vmlab mount")
    r.add_argument("--readahead", type=int, choices=range(6), default=0, metavar="N",
                   help="swap-ins read up to 2**N neighbouring slots (vm.page-cluster; 0-5)")
    r.add_argument("--reclaim-batch", type=_count, metavar="N",
                   help="frames reclaim frees at once when none is free "
                        "(default frames/16, 1 to 32; 1: one out for every one in)")
    r.add_argument("--python-pager", action="store_true",
                   help="serve every fault in Python, not zero fills and swap-ins in the "
                        "compiled fast path (the same counts, slower faults)")
    r.add_argument("--seed", type=int, default=0, help="the workload's seed")
    r.add_argument("--tick", type=_count, metavar="N",
                   help="faults between clock ticks, for nru, nfu, aging, working-set (default 100)")
    r.add_argument("--tau", type=_count, metavar="N",
                   help="the working-set window, for working-set, wsclock (default 500)")
    r.add_argument("--vmstat", type=_seconds, nargs="?", const=1.0, metavar="S",
                   help="print a vmstat-style line every S seconds (default 1)")
    r.add_argument("--against-kernel", action="store_true",
                   help="also run it under the kernel's reclaim (memory cgroup), one table")
    r.add_argument("--timeout", type=_seconds, metavar="S", help="kill the workload after S seconds")
    r.add_argument("--json", action="store_true", help="the result as one JSON object")


def _tick_tau(p) -> None:
    p.add_argument("--tick", type=_count, metavar="N",
                   help="references between clock ticks, for nru, nfu, aging, working-set (default 100)")
    p.add_argument("--tau", type=_count, metavar="N",
                   help="the working-set window in references, for working-set, wsclock (default 500)")


def _policy_args(sub) -> None:
    y = sub.add_parser("policy", help="write a replacement policy to start from")
    y.add_argument("--template", metavar="NAME", type=_identifier, required=True,
                   help="the class name; e.g. vmlab policy --template Mine > mine.py")


def _identifier(text: str) -> str:
    if not text.isidentifier() or not text.isascii():
        raise argparse.ArgumentTypeError(f"bad name {text!r}: a Python class name, e.g. Mine")
    return text


def _bench_args(sub) -> None:
    b = sub.add_parser("bench", help="measure vmlab against the kernel, bare FUSE and plain loops")
    b.add_argument("--json", action="store_true", help="the figures as one JSON object")
    b.add_argument("--quick", action="store_true", help="smaller runs (a few seconds)")


# -- commands ---------------------------------------------------------------

def cmd_demo(args) -> int:
    from vmlab.front.demo import run_demo
    return run_demo(latency=args.latency)


def cmd_mount(args) -> int:
    import vmlab_fs
    from vmlab_fs.mounting import check_mountpoint
    backing = args.backing
    if backing is None:
        os.makedirs("/var/tmp", exist_ok=True)
        import tempfile
        backing = tempfile.mkdtemp(prefix="vmlab-backing-", dir="/var/tmp")
    if args.foreground:
        from vmlab_fs.daemon import main as daemon_main
        mnt, back = check_mountpoint(args.mountpoint, backing, args.force)
        return daemon_main([back, mnt, "--latency", args.latency])
    m = vmlab_fs.start(args.mountpoint, backing, args.latency, detach=True, force=args.force)
    print(f"{m.path}: mounted (backing {m.backing}, latency {args.latency}, daemon pid {m.pid})")
    return 0


def cmd_umount(args) -> int:
    import vmlab_fs
    vmlab_fs.unmount(args.mountpoint)
    print(f"{os.path.realpath(args.mountpoint)}: unmounted")
    return 0


def cmd_stat(args) -> int:
    import dataclasses

    import vmlab_fs
    from vmlab.front.fsview import render_host, render_stat, vmstat_header, vmstat_line
    from vmlab_fs.accounting import host_page_io
    if args.count is not None and args.interval is None:
        raise UsageError("vmlab stat: --count goes with --interval")
    m = vmlab_fs.attach(args.mountpoint)
    if args.interval is None:
        stats, files = m.stats(), m.files()
        host = m.daemon_io() if m.pid else None
        if args.json:
            print(json.dumps({"mountpoint": m.path, "stats": stats, "host": host,
                              "files": {p: dataclasses.asdict(f) for p, f in files.items()}}))
        else:
            print(render_stat(stats, files))
            if host:
                print("\n" + render_host(m.pid, host))
        return 0
    prev, io_prev, t0, n = m.stats(), m.daemon_io(), time.monotonic(), 0
    if not args.json:
        print(vmstat_header(), flush=True)
    while args.count is None or n < args.count:
        time.sleep(args.interval)
        cur, io, t1 = m.stats(), m.daemon_io(), time.monotonic()
        served = (cur["requests"] + cur["ctl_requests"]) - (prev["requests"] + prev["ctl_requests"])
        host = host_page_io(served, io_prev, io)
        if args.json:
            print(json.dumps({"time": time.time(), "stats": cur, "host": io}), flush=True)
        else:
            print(vmstat_line(prev, cur, t1 - t0, host), flush=True)
        prev, io_prev, t0, n = cur, io, t1, n + 1
    return 0


def cmd_mkswap(args) -> int:
    from vmlab_swapdisk import mkswap
    from vmlab.front.units import human_bytes
    h = mkswap(args.path, args.size, args.label, args.force)
    usable = h.slots * 4096
    print(f"Setting up swapspace version 1, size = {human_bytes(usable)} ({usable} bytes)")
    print(f"LABEL={h.label}, UUID={h.uuid}")
    return 0


def cmd_trace(args) -> int:
    from vmlab.front.tracecmd import needs_whole, render_curve, render_results, replay_all, replay_vm
    from vmlab.replay.traces import TraceStream, read_trace
    if args.lab and not args.vm:
        raise UsageError("vmlab trace: --lab goes with --vm")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise UsageError(f"vmlab trace: --plot wants a .png file name, not {args.plot!r}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("vmlab trace: --plot needs matplotlib: pip install 'vmlab[plot]' "
                         "(scripts/setup.sh installs it)")
    whole = args.explain or args.vm or needs_whole(args.policy, args.frames)
    trace = read_trace(args.file, args.format) if whole else TraceStream(args.file, args.format)
    if args.explain:
        return _explain(trace, args)
    data = replay_all(trace, args.policy, args.frames, args.seed, tick=args.tick, tau=args.tau)
    if args.curve:
        data["curve"] = True
    if args.vm:
        specs = [spec for spec in args.policy for _ in args.frames]     # the results' order
        for r, spec in zip(data["results"], specs):
            if spec == "opt":
                r["vm"] = None          # a real VM cannot know the future
                continue
            r["vm"] = replay_vm(trace, spec, r["frames"], args.lab, args.seed)
            r["vm"]["agrees"] = r["vm"]["faults"] == r["faults"]
    name = "stdin" if args.file == "-" else os.path.basename(args.file)
    if args.plot:
        from vmlab.front.plot import plot_faults
        plot_faults(data, args.plot, name)
    if args.json:
        for r in data["results"]:
            r.pop("seconds", None)
        print(json.dumps(data))
    else:
        (render_curve if args.curve else render_results)(data, name)
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def _explain(trace, args) -> int:
    from vmlab.front.explain import LIMIT, explain
    if args.vm or args.json or args.plot:
        raise UsageError("vmlab trace: --explain goes alone (not with --vm, --json or --plot)")
    if len(trace) > LIMIT:
        raise UsageError(f"vmlab trace: --explain is for short strings (at most {LIMIT} "
                         f"references); this trace has {len(trace)}")
    refs, writes = trace.pages.tolist(), trace.writes.tobytes()
    for i, (spec, n) in enumerate((s, n) for s in args.policy for n in args.frames):
        print(("\n" if i else "") + "\n".join(
            explain(refs, writes, spec, n, args.seed, tick=args.tick, tau=args.tau)))
    return 0


def cmd_run(args) -> int:
    from vmlab.front.runner import list_scenarios, run_scenario
    from vmlab_scenarios import REGISTRY
    if args.list:
        list_scenarios()
        return 0
    if args.scenario is None:
        raise UsageError("vmlab run: name a scenario (vmlab run --list shows them)")
    if args.scenario not in REGISTRY:
        raise UsageError(f"vmlab run: no scenario {args.scenario!r} (vmlab run --list shows them)")
    if args.lab and args.latency != "none":
        raise UsageError("vmlab run: --latency applies to the embedded mount; "
                         "on --lab, write 'latency ...' to MNT/.vmlab/control")
    watch = ("vmstat", args.vmstat) if args.vmstat else ("live", args.live) if args.live else None
    show = {"maps": args.maps, "smaps": args.smaps, "swaps": args.swaps}
    return run_scenario(args.scenario, args.frames, args.policy, args.latency, args.lab,
                        args.seed, watch, show, args.json, tick=args.tick, tau=args.tau)


def cmd_real(args) -> int:
    from vmlab.front.realcmd import load_workload, run_real
    if (args.workload is None) == (args.script is None):
        raise UsageError("vmlab real: name a WORKLOAD (scan, random, hot-cold, sort, matmul, "
                         "matmul-blocked) or give --script FILE.py, not both")
    if not 4096 <= args.size <= 64 << 30:
        raise UsageError(f"vmlab real: --size {args.size} is out of range: one page (4096) to 64G")
    if args.reclaim_batch is not None and args.reclaim_batch > args.frames:
        raise UsageError(f"vmlab real: --reclaim-batch {args.reclaim_batch} is more than the "
                         f"{args.frames} frames; give 1 to {args.frames}")
    if args.lab and args.latency != "none":
        raise UsageError("vmlab real: --latency applies to the embedded mount; "
                         "on --lab, write 'latency ...' to MNT/.vmlab/control")
    try:
        workload, label = load_workload(args.workload, args.script)
    except ValueError as e:
        raise UsageError(f"vmlab real: {e}") from None
    return run_real(workload, label, args.size, args.frames, args.policy, args.latency, args.lab,
                    args.seed, args.readahead, args.vmstat, args.json, args.against_kernel,
                    args.timeout, tick=args.tick, tau=args.tau, reclaim_batch=args.reclaim_batch,
                    fastpath=False if args.python_pager else None)


def cmd_bench(args) -> int:
    import contextlib
    from vmlab.front.bench import render, run_all
    from vmlab.front.term import fancy
    status = contextlib.nullcontext()
    show = lambda name: None
    if fancy() and not args.json:
        from rich.console import Console
        status = Console().status("measuring...")
        show = lambda name: status.update(f"measuring {name.replace('_', ' ')}...")
    elif not args.json:
        show = lambda name: print(f"measuring {name.replace('_', ' ')}...", file=sys.stderr, flush=True)
    with status:
        result = run_all(args.quick, show)
    if args.json:
        print(json.dumps(result))
    else:
        render(result)
    return 0


def cmd_policy(args) -> int:
    from vmlab.front.template import template
    print(template(args.template), end="")
    return 0


COMMANDS = {"policy": cmd_policy, "demo": cmd_demo, "run": cmd_run, "real": cmd_real, "bench": cmd_bench, "mount": cmd_mount, "umount": cmd_umount,
            "stat": cmd_stat, "mkswap": cmd_mkswap, "trace": cmd_trace}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.cmd](args)
    except UsageError as e:
        print(f"vmlab: error: {str(e).removeprefix('vmlab').lstrip(' :')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:          # every failure is one line, not a traceback
        return _fail(e)


def _fail(e: Exception) -> int:
    import errno
    import vmlab_fs
    from vmlab_swapdisk import SwapError
    from vmlab.core.errors import PolicyError, VMError
    if isinstance(e, PolicyError):
        msg, code = str(e), 2              # the user's policy misbehaved
    elif isinstance(e, VMError):
        msg, code = str(e), 1              # the run failed: it says how
    elif isinstance(e, (vmlab_fs.MountError, ValueError, SwapError)):
        msg, code = str(e), 2 if isinstance(e, (vmlab_fs.BadMountpoint, ValueError)) else 1
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
