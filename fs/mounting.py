"""Mount and unmount the lab filesystem; find out what is mounted where.

``mount()`` is the context manager the tests and the VM core use: it starts
the daemon, waits until the mount is live and always unmounts on the way out.
``start()``/``unmount()`` are the pieces behind ``vmlab mount``/``umount``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterator

import psutil

from vmlab_fs.accounting import FileCounts, parse_files, parse_stats
from vmlab_fs.control import parse_latency

FSTYPE = "fuse.vmlab"
READY_TIMEOUT = 15.0
DAEMON_MODULE = "vmlab_fs.daemon"

# Mounts this process started and has not unmounted (mount point -> daemon
# pid), detached ones excepted: what a caller may clean up as its own.
_started: dict[str, int] = {}


def started_here() -> dict[str, int]:
    """The live mounts this process started (not detached), by mount point."""
    return {mnt: pid for mnt, pid in _started.items() if mounted_fstype(mnt) == FSTYPE}


class MountError(RuntimeError):
    """A mount or unmount that cannot be done; the message is one line."""


class BadMountpoint(MountError):
    """The mount point or backing directory given cannot be used as asked."""


def _mountinfo() -> Iterator[tuple[str, str, str]]:
    """(mount point, fs type, source) for each mount this process sees, in
    mount order, paths decoded as the kernel escapes them (psutil)."""
    for part in psutil.disk_partitions(all=True):
        yield part.mountpoint, part.fstype, part.device


def _find(path: str) -> tuple[str, str] | None:
    """(fs type, source) of what is mounted exactly at ``path``; the last wins."""
    want = os.path.realpath(path)
    found = None
    for mnt, fstype, source in _mountinfo():
        if mnt == want:
            found = fstype, source
    return found


def mounted_fstype(path: str) -> str | None:
    """The filesystem type mounted exactly at ``path``, or None.

    >>> mounted_fstype("/proc")
    'proc'
    """
    found = _find(path)
    return found[0] if found else None


@dataclass
class Mount:
    """A live lab mount: its paths and the daemon's figures. It is path-like
    (``os.fspath``, ``mount / "file"``), as pytest's ``tmp_path``.

    >>> with mount() as m:
    ...     m.stats()["reads"], m.files(), m.pid > 0, (m / "f").parent == pathlib.Path(m)
    (0, {}, True, True)
    """

    path: str
    backing: str
    pid: int
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def __fspath__(self) -> str:
        return self.path

    def __truediv__(self, name: str | os.PathLike) -> pathlib.Path:
        return pathlib.Path(self.path) / name

    def __str__(self) -> str:
        return self.path

    def _ctl(self, name: str) -> str:
        with open(os.path.join(self.path, ".vmlab", name)) as f:
            return f.read()

    def stats(self) -> dict[str, int]:
        return parse_stats(self._ctl("stats"))

    def files(self) -> dict[str, FileCounts]:
        return parse_files(self._ctl("files"))

    def daemon_io(self, settle: float = 0.0) -> dict[str, int]:
        """The daemon's I/O as the host kernel counts it (``/proc/PID/io``):
        read and write system calls, and the bytes they moved. ``settle``:
        first wait (up to a second) until the figures stay put that long, so
        a request the kernel sends on its own time (the RELEASE that follows
        a close) is not in flight.

        Sample: ``{'syscr': 5210, 'syscw': 3974, 'rchar': 3141016, 'wchar': 1622187}``
        """
        proc = psutil.Process(self.pid)
        io = proc.io_counters()
        deadline = time.monotonic() + 1.0
        while settle and time.monotonic() < deadline:
            time.sleep(settle)
            again = proc.io_counters()
            if again == io:
                break
            io = again
        return {"syscr": io.read_count, "syscw": io.write_count,
                "rchar": io.read_chars, "wchar": io.write_chars}

    def latency(self) -> str:
        """The latency model in force now (what ``.vmlab/control`` says)."""
        return self._ctl("control").split("\n", 1)[0].removeprefix("latency ")

    def iolog(self) -> list[str]:
        return self._ctl("iolog").splitlines()

    def control(self, *commands: str) -> None:
        """Send commands; a rejected one raises MountError with the reason."""
        path = os.path.join(self.path, ".vmlab", "control")
        try:
            with open(path, "w") as f:
                f.write("".join(c + "\n" for c in commands))
        except OSError:
            reason = [l for l in self._ctl("control").splitlines() if "last error" in l]
            raise MountError(reason[-1].split(": ", 1)[1] if reason else "control rejected") from None

    def unmount(self) -> None:
        unmount(self.path, self.pid)
        if self._proc is not None:
            self._proc.wait()


def attach(mountpoint: str) -> Mount:
    """The Mount for an existing vmlab mount (made by ``vmlab mount``)."""
    mnt = os.path.realpath(mountpoint)
    found = _find(mnt)
    if found is None or found[0] != FSTYPE:
        raise BadMountpoint(f"{mountpoint} is not a vmlab mount")
    return Mount(mnt, found[1], daemon_pid(mnt) or 0)


def check_mountpoint(mountpoint: str, backing: str, force: bool = False) -> tuple[str, str]:
    mnt, back = os.path.realpath(mountpoint), os.path.realpath(backing)
    if not os.path.isdir(mnt):
        raise BadMountpoint(f"mount point {mountpoint} is not a directory")
    if not os.path.isdir(back):
        raise BadMountpoint(f"backing directory {backing} is not a directory")
    fstype = mounted_fstype(mnt)
    if fstype is not None and not force:
        raise BadMountpoint(f"{mountpoint} is already a mount point ({fstype}; "
                            "use --force to mount over it)")
    # The daemon serves one request at a time: if the backing directory were
    # reachable through the mount, a request would wait on itself forever.
    if _within(back, mnt) or _within(mnt, back):
        raise BadMountpoint("the backing directory and the mount point must not contain each other")
    if os.listdir(mnt) and not force:
        raise BadMountpoint(f"mount point {mountpoint} is not empty (use --force to mount over it)")
    return mnt, back


def _within(path: str, top: str) -> bool:
    """Is real path ``path`` at or below real path ``top``? (``/`` holds all.)

    >>> _within("/tmp/a", "/"), _within("/tmp/ab", "/tmp/a"), _within("/tmp/a/b", "/tmp/a")
    (True, False, True)
    """
    return path == top or path.startswith(top.rstrip("/") + "/")


def start(mountpoint: str, backing: str, latency: str = "none", *, detach: bool = False,
          force: bool = False, log: str = os.devnull, minimal: bool = False) -> Mount:
    """Start a daemon and return once the mount is live."""
    parse_latency(latency)              # a bad model is refused before anything starts
    mnt, back = check_mountpoint(mountpoint, backing, force)
    rfd, wfd = os.pipe()
    err = tempfile.TemporaryFile()
    cmd = [sys.executable, "-m", DAEMON_MODULE, back, mnt, "--latency", latency,
           "--status-fd", str(wfd), "--log", log] + (["--minimal"] if minimal else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                            pass_fds=[wfd], start_new_session=detach)
    os.close(wfd)
    try:
        line = _read_status(rfd)
    finally:
        os.close(rfd)
    if not line.startswith("ready"):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if mounted_fstype(mnt) == FSTYPE:
            _fusermount("-uz", mnt)
        err.seek(0)
        lines = [l for l in err.read().decode(errors="replace").splitlines() if l.strip()]
        raise MountError(lines[-1].removeprefix("vmlab: ") if lines else
                         f"the filesystem daemon did not come up within {READY_TIMEOUT:.0f} s")
    err.close()
    if not detach:
        _started[mnt] = proc.pid
    return Mount(mnt, back, proc.pid, None if detach else proc)


def _read_status(rfd: int) -> str:
    """The daemon's first status line (``ready PID``), or what came before
    READY_TIMEOUT or its exit: the pipe then closes."""
    deadline = time.monotonic() + READY_TIMEOUT
    data = b""
    while b"\n" not in data and time.monotonic() < deadline:
        r, _, _ = select.select([rfd], [], [], 0.1)
        if r:
            chunk = os.read(rfd, 100)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def _fusermount(flag: str, mnt: str) -> tuple[bool, str]:
    tool = shutil.which("fusermount3")
    if tool is None:
        raise MountError("fusermount3 not found: install it with 'apt-get install fuse3'")
    r = subprocess.run([tool, flag, mnt], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def daemon_pid(mountpoint: str) -> int | None:
    """The PID of the daemon serving ``mountpoint``, found without touching
    the mount (it may be dead or hung). Mounts stacked with --force each have
    a daemon: the newest one serves the mount on top."""
    mnt = os.path.realpath(mountpoint)
    best: tuple[float, int] | None = None
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        argv = proc.info["cmdline"] or []
        if DAEMON_MODULE in argv and mnt in argv:
            if best is None or proc.info["create_time"] > best[0]:
                best = (proc.info["create_time"], proc.pid)
    return best[1] if best else None


def unmount(mountpoint: str, pid: int | None = None, timeout: float = 5.0) -> None:
    """Unmount cleanly and wait for the daemon; lazily if it stays busy."""
    mnt = os.path.realpath(mountpoint)
    if mounted_fstype(mnt) != FSTYPE:
        raise BadMountpoint(f"{mountpoint} is not a vmlab mount")
    pid = pid or daemon_pid(mnt)
    deadline = time.monotonic() + timeout
    ok, why = _fusermount("-u", mnt)
    while not ok and "busy" in why and time.monotonic() < deadline:
        time.sleep(0.1)
        ok, why = _fusermount("-u", mnt)
    if not ok:
        ok, why = _fusermount("-uz", mnt)   # last resort: detach, let users drain
        if not ok:
            raise MountError(f"cannot unmount {mountpoint}: {why}")
    _started.pop(mnt, None)
    if pid:
        _wait_gone(pid, deadline)


def _wait_gone(pid: int, deadline: float) -> None:
    """Wait until daemon ``pid`` has exited (a zombie has: it is reaped if
    it is ours); past the deadline, kill it (the mount is gone already)."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.005)
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()         # the same process (psutil checks its start time), not a reused PID


def connection(mountpoint: str) -> int:
    """The FUSE connection number of a mount (its device minor), as named
    under /sys/fs/fuse/connections."""
    return os.minor(os.stat(mountpoint).st_dev)


FUSECTL = "/sys/fs/fuse/connections"


def abort(conn: int, pid: int | None = None) -> str:
    """End a hung mount's pending requests by aborting its FUSE connection,
    so every request in flight fails at once (ECONNABORTED); returns
    ``aborted``. fusectl is used where it is mounted, or else mounted for
    the moment on a private directory with mount(2), which (unlike mount(8))
    does not read the mount table and so does not hang on the hung mount.
    Only if that fails, and ``pid`` is given (a daemon the caller started
    itself), is the daemon killed: ``killed``; else ``stuck``."""
    for top in (FUSECTL, None):
        try:
            if top is None:
                with _private_fusectl() as top:
                    _write_abort(top, conn)
            else:
                _write_abort(top, conn)
            return "aborted"
        except OSError:
            continue
    if pid:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
        return "killed"
    return "stuck"


def _write_abort(top: str, conn: int) -> None:
    with open(f"{top}/{conn}/abort", "w") as f:
        f.write("1")


@contextlib.contextmanager
def _private_fusectl() -> Iterator[str]:
    """fusectl mounted on a new private directory for the ``with`` block."""
    libc = ctypes.CDLL(None, use_errno=True)
    where = tempfile.mkdtemp(prefix="vmlab-fusectl-")
    try:
        if libc.mount(b"fusectl", where.encode(), b"fusectl", 0, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        try:
            yield where
        finally:
            libc.umount2(where.encode(), 2)         # MNT_DETACH
    finally:
        _rmdir(where)


@contextlib.contextmanager
def mount(backing: str | None = None, mountpoint: str | None = None,
          latency: str = "none", force: bool = False, minimal: bool = False) -> Iterator[Mount]:
    """Mount the lab filesystem for the duration of a ``with`` block.

    Temporary directories are made (and removed) for whichever of
    ``backing`` and ``mountpoint`` is not given. Always unmounts.

    >>> with mount() as m:
    ...     with open(m.path + "/f", "wb") as f:
    ...         f.write(b"x" * 4096)
    ...     m.files()["/f"].writes
    4096
    1
    """
    made: list[str] = []
    if backing is None:
        backing = tempfile.mkdtemp(prefix="vmlab-backing-")
        made.append(backing)
    if mountpoint is None:
        mountpoint = tempfile.mkdtemp(prefix="vmlab-mnt-")
        made.append(mountpoint)
    m = None
    try:
        m = start(mountpoint, backing, latency, force=force, minimal=minimal)
        yield m
    finally:
        if m is not None and mounted_fstype(m.path) == FSTYPE:
            m.unmount()
        for d in reversed(made):
            shutil.rmtree(d, ignore_errors=True) if d == backing else _rmdir(d)


def _rmdir(d: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(d)
