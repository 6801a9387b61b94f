"""The kernel as the pager, for comparison: the same workload natively over
a file on the lab mount mapped shared, in a memory cgroup (v2 or v1) limited
to the same frames plus the interpreter's measured baseline. The kernel's
own reclaim then pages it through the same FUSE mount.
"""

from __future__ import annotations

import itertools
import mmap
import os
import resource
import select
import signal
import socket
import time
from typing import Any, Callable

import psutil

from vmlab.core.errors import VMError, WorkloadError
from vmlab.real.cpu import pinned
from vmlab.real.workload import call, send, unframe, value_of

PAGE = 4096
_names = itertools.count(1)


class CgroupError(VMError):
    """No memory cgroup could be made here; the message says why."""


class MemoryCgroup:
    """A memory cgroup of this process's own, under the one it is in
    (cgroup v2 if it has the memory controller, else v1); removed on close.
    Used as ``with MemoryCgroup() as cg: cg.add(pid); cg.limit(cg.usage() + n)``."""

    def __init__(self) -> None:
        self.version, parent = _where()
        self.path = os.path.join(parent, f"vmlab-{os.getpid()}-{next(_names)}")
        try:
            os.mkdir(self.path)
        except OSError as e:
            raise CgroupError(f"cannot make a memory cgroup in {parent}: {e.strerror} "
                              "(run as root, or delegate the memory controller to this user)") from None

    def _file(self, v2: str, v1: str) -> str:
        """The control file named ``v2`` in cgroup v2, ``v1`` in v1."""
        return os.path.join(self.path, v2 if self.version == 2 else v1)

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def usage(self) -> int:
        """Bytes charged to it now."""
        with open(self._file("memory.current", "memory.usage_in_bytes")) as f:
            return int(f.read())

    def limit(self, nbytes: int) -> None:
        """Reclaim above ``nbytes`` (swap off for it, where the knob exists)."""
        with open(self._file("memory.max", "memory.limit_in_bytes"), "w") as f:
            f.write(str(nbytes))
        swap = self._file("memory.swap.max", "memory.swappiness")
        if os.path.exists(swap):
            with open(swap, "w") as f:
                f.write("0")

    def close(self) -> None:
        """Remove it (its processes are gone); retried briefly while the kernel lets go."""
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)

    def __enter__(self) -> "MemoryCgroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where() -> tuple[int, str]:
    """(version, directory) of this process's memory cgroup. Raises CgroupError."""
    mine = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            mine[controllers] = path
    mounts = psutil.disk_partitions(all=True)
    for m in mounts:
        if m.fstype == "cgroup2" and "" in mine:
            here = os.path.join(m.mountpoint, mine[""].lstrip("/"))
            try:
                with open(os.path.join(here, "cgroup.controllers")) as f:
                    has_memory = "memory" in f.read().split()
            except OSError:
                continue
            if has_memory:
                return 2, here
    for m in mounts:
        if m.fstype == "cgroup" and "memory" in m.opts.split(","):
            path = next((p for c, p in mine.items() if "memory" in c.split(",")), "/")
            return 1, os.path.join(m.mountpoint, path.lstrip("/"))
    raise CgroupError("no memory cgroup controller is mounted here (cgroup v2 with memory, "
                      "or v1's memory hierarchy): --against-kernel needs one")


def run_under_kernel(fn: Callable[..., Any], size: int, frames: int, lab: Any, args: tuple,
                     timeout: float | None = None, daemon: int | None = None) -> dict:
    """Run ``fn(mem, *args)`` in a child over ``lab``'s file mapped shared, in a
    cgroup of ``frames`` pages above the child's baseline. Returns the
    result, seconds, the child's minor and major faults, and the FUSE reads
    and writes of the file (dirty pages left at the end flushed and counted).
    ``daemon``: the mount's daemon, if it is the caller's own: it and the
    child share one CPU, as the real machine's pager and workload do."""
    name = f"kernel-region-{os.getpid()}-{next(_names)}.bin"
    path = os.path.join(lab.path, name)
    with open(path, "wb") as f:
        f.truncate(-(-size // PAGE) * PAGE)
    try:
        with MemoryCgroup() as cg:
            files0 = lab.files().get("/" + name)
            outcome, baseline, pid = _limited_run(cg, path, fn, args, frames, timeout, daemon)
            fd = os.open(path, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            files1 = lab.files()["/" + name]
    finally:
        os.unlink(path)
    value, seconds, minflt, majflt = value_of(outcome, pid)
    r0 = files0.reads if files0 else 0
    w0 = files0.writes if files0 else 0
    return {"result": value, "seconds": seconds, "minor": minflt, "major": majflt,
            "reads": files1.reads - r0, "writes": files1.writes - w0, "baseline": baseline}


def _limited_run(cg: MemoryCgroup, path: str, fn: Callable[..., Any], args: tuple, frames: int,
                 timeout: float | None, daemon: int | None) -> tuple[tuple, int, int]:
    """Fork the child into ``cg``, limit it once it says ready, let it run;
    returns its outcome, the baseline measured and its pid. The child (and the
    daemon, if given) on one CPU; the child reaped, the daemon put back."""
    mine, theirs = socket.socketpair()
    cpu = min(os.sched_getaffinity(0))
    pid = os.fork()
    if pid == 0:
        mine.close()
        os.sched_setaffinity(0, {cpu})
        _child(theirs, path, cg, fn, args)
    theirs.close()
    try:
        with pinned({daemon: cpu} if daemon else {}):
            _expect(mine, pid, b"R", 30)
            baseline = cg.usage()
            cg.limit(baseline + frames * PAGE)
            mine.sendall(b"G")
            return _outcome(mine, pid, timeout), baseline, pid
    finally:
        _reap(pid)
        mine.close()


def _child(sock: socket.socket, path: str, cg: MemoryCgroup, fn: Callable[..., Any],
           args: tuple) -> None:
    """Join the cgroup, map the file, say ready, wait for go, run, report."""
    status = 0
    try:
        cg.add(os.getpid())
        import numpy.random     # the workloads' own imports, in the baseline
        numpy.random.default_rng(0).random(16)
        fd = os.open(path, os.O_RDWR)
        region = mmap.mmap(fd, os.fstat(fd).st_size, flags=mmap.MAP_SHARED)
        os.close(fd)
        sock.sendall(b"R")
        if sock.recv(1) != b"G":
            os._exit(0)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        out = call(fn, memoryview(region), args)
        if out[0] == "ok":
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            out = ("ok", (out[1], time.perf_counter() - t0, r1.ru_minflt - r0.ru_minflt,
                          r1.ru_majflt - r0.ru_majflt))
        send(sock, out)
    except BaseException:
        status = 70
    finally:
        os._exit(status)


def _expect(sock: socket.socket, pid: int, what: bytes, seconds: float) -> None:
    """Wait for the child's one-byte ``what``. Raises WorkloadError."""
    ready, _, _ = select.select([sock], [], [], seconds)
    if not ready or sock.recv(1) != what:
        raise WorkloadError(f"the kernel-paged workload (pid {pid}) did not start")


def _outcome(sock: socket.socket, pid: int, timeout: float | None) -> tuple:
    """The child's framed outcome. Raises WorkloadError if it dies or outruns ``timeout``."""
    buf = bytearray()
    deadline = time.monotonic() + timeout if timeout else None
    while (outcome := unframe(buf)) is None:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([sock], [], [], wait)
        if not ready:
            raise WorkloadError(f"the kernel-paged workload (pid {pid}) ran past its timeout")
        data = sock.recv(1 << 20)
        if not data:
            raise WorkloadError(f"the kernel-paged workload (pid {pid}) died before returning "
                                "(the cgroup's OOM killer, if its limit was too tight)")
        buf += data
    return outcome


def _reap(pid: int) -> None:
    """End the child if it still runs, and reap it."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass
