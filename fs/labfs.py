"""The lab filesystem: a passthrough of a backing directory that accounts,
logs, delays and (on request) fails every request.

Requests on ``/.vmlab/*`` go to the mount's own control files (``ctlfs``),
served from memory and never counted among the figures they report. The
daemon never follows a symlink itself (``O_NOFOLLOW``, ``lstat``); links are
followed by the kernel through ``readlink``, which refuses any target whose
walk would leave the backing directory (``paths.link_leaves``).
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import time
from typing import Any, Callable

from vmlab_fs.accounting import Accounting
from vmlab_fs.control import Control
from vmlab_fs.ctlfs import FIRST_FH, VIRTUAL_INO, ControlFiles, deny
from vmlab_fs.kernel import PagedOperations
from vmlab_fs.libfuse import mfusepy
from vmlab_fs.paths import CTL, has_dotdot, is_ctl, link_leaves

_ns = time.monotonic_ns


def _dtype_mode(entry: os.DirEntry) -> int:
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFDIR if entry.is_dir(follow_symlinks=False) else stat.S_IFREG


def _accounted(op: str) -> Callable:
    """Wrap a path operation so it is timed and counted as one request
    (on ``/.vmlab/*``: counted apart, in ``ctl_requests``)."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(self: "LabFS", path: str, *args: Any) -> Any:
            if path is not None and is_ctl(path):
                self.acct.ctl_requests += 1
                return fn(self, path, *args)
            t0 = _ns()
            try:
                out = fn(self, path, *args)
            except OSError as e:
                self.acct.record(op, path, 0, 0, _ns() - t0, -(e.errno or errno.EIO))
                raise
            self.acct.record(op, path, 0, 0, _ns() - t0, 0)
            return out
        return inner
    return wrap


def _wait_until(deadline_ns: int) -> None:
    """Sleep to just short of the deadline, then spin: time.sleep alone
    overshoots by ~60 us, too much for a 100 us SSD model."""
    left = deadline_ns - _ns()
    if left > 300_000:
        time.sleep((left - 200_000) / 1e9)
    while _ns() < deadline_ns:
        pass


class LabFS(PagedOperations):
    """The passthrough: every request on a backing file is accounted,
    delayed by the latency model and failed when a rule says so."""

    def __init__(self, backing: str, latency: str = "none",
                 on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(os.path.realpath(backing), on_ready)
        self.acct = Accounting()
        self.ctl = Control(latency)
        self.ctlfs = ControlFiles(self.acct, self.ctl, os.getuid())

    # -- paths ---------------------------------------------------------------

    def _full(self, path: str) -> str:
        """The backing path of mount path ``path``; EPERM for the control
        directory, EACCES for a real ``..`` component."""
        if is_ctl(path):
            deny(errno.EPERM)
        if has_dotdot(path):
            deny()
        return self.root + path

    # -- metadata ------------------------------------------------------------

    @_accounted("getattr")
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        if is_ctl(path):
            return self.ctlfs.getattr(path)
        if fh is not None and fh.fh < FIRST_FH:
            st = os.fstat(fh.fh)
        else:
            st = os.lstat(self._full(path))
        return {"st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink,
                "st_uid": st.st_uid, "st_gid": st.st_gid, "st_size": st.st_size,
                "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns,
                "st_ctime": st.st_ctime_ns, "st_blocks": st.st_blocks,
                "st_blksize": st.st_blksize, "st_rdev": st.st_rdev}

    @_accounted("readlink")
    def readlink(self, path: str) -> str:
        # Checked on every read of the link, not only when it was made: a link
        # made later (or straight in the backing directory) can change where
        # this one leads.
        target = os.readlink(self._full(path))
        here = os.path.dirname(path)
        if link_leaves(self.root, here, target):
            deny()
        if target.startswith("/"):      # into the backing directory: kept in the mount
            return os.path.relpath(target[len(self.root):] or "/", here)
        return target

    @_accounted("mkdir")
    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._full(path), mode)

    @_accounted("rmdir")
    def rmdir(self, path: str) -> None:
        os.rmdir(self._full(path))

    @_accounted("unlink")
    def unlink(self, path: str) -> None:
        os.unlink(self._full(path))
        self.acct.forget(path)

    @_accounted("symlink")
    def symlink(self, path: str, target: str) -> None:
        full = self._full(path)
        if link_leaves(self.root, os.path.dirname(path), target):
            deny()
        os.symlink(target, full)

    @_accounted("link")
    def link(self, path: str, existing: str) -> None:
        os.link(self._full(existing), self._full(path), follow_symlinks=False)

    @_accounted("rename")
    def rename(self, old: str, new: str) -> None:
        os.rename(self._full(old), self._full(new))
        self.acct.rename(old, new)

    @_accounted("chmod")
    def chmod(self, path: str, mode: int) -> None:
        full = self._full(path)
        if stat.S_ISLNK(os.lstat(full).st_mode):
            deny(errno.EOPNOTSUPP)     # Linux cannot chmod a symlink either
        os.chmod(full, mode)

    @_accounted("chown")
    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._full(path), uid, gid, follow_symlinks=False)

    @_accounted("truncate")
    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        if fh is not None and fh.fh < FIRST_FH:
            os.ftruncate(fh.fh, length)
        elif is_ctl(path):
            return              # `echo cmd > control` truncates first: harmless
        else:
            os.truncate(self._full(path), length)

    @_accounted("utimens")
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if is_ctl(path):
            return
        os.utime(self._full(path), ns=times, follow_symlinks=False)

    @_accounted("statfs")
    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.root)
        return {k: getattr(sv, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree",
                                             "f_bavail", "f_files", "f_ffree",
                                             "f_favail", "f_namemax")}

    @_accounted("getxattr")
    def getxattr(self, path: str, name: str, *args: Any) -> bytes:
        # ENOSYS once and the kernel stops asking; otherwise it asks for
        # security.capability before every write, doubling its cost.
        deny(errno.ENOSYS)

    # -- directories ---------------------------------------------------------

    @_accounted("opendir")
    def opendir(self, path: str) -> int:
        if path != CTL and not stat.S_ISDIR(os.lstat(self._full(path)).st_mode):
            deny(errno.ENOTDIR)
        return 0

    @_accounted("readdir")
    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        # Real inode numbers: with use_ino a zero one would hide the entry.
        if path == CTL:
            return self.ctlfs.readdir()
        full = self._full(path)
        here = os.lstat(full)
        out = [(".", {"st_ino": here.st_ino, "st_mode": stat.S_IFDIR}, 0),
               ("..", {"st_ino": 1, "st_mode": stat.S_IFDIR}, 0)]
        with os.scandir(full) as it:
            for e in it:
                if not (path == "/" and e.name == ".vmlab"):
                    out.append((e.name, {"st_ino": e.inode(),
                                         "st_mode": _dtype_mode(e)}, 0))
        if path == "/":
            out.append((".vmlab", {"st_ino": VIRTUAL_INO, "st_mode": stat.S_IFDIR}, 0))
        return out

    @_accounted("releasedir")
    def releasedir(self, path: str, fh: int) -> None:
        return None

    # -- files ---------------------------------------------------------------

    @_accounted("open")
    def open(self, path: str, fi) -> None:
        if is_ctl(path):
            return self.ctlfs.open(path, fi, mfusepy.fuse_get_context()[0])
        fi.fh = os.open(self._full(path), (fi.flags & ~os.O_DIRECT) | os.O_NOFOLLOW)

    @_accounted("create")
    def create(self, path: str, mode: int, fi) -> None:
        flags = (fi.flags & ~os.O_DIRECT) | os.O_CREAT | os.O_NOFOLLOW
        fi.fh = os.open(self._full(path), flags, mode)

    def read(self, path: str, size: int, offset: int, fi) -> bytes:
        if fi.fh >= FIRST_FH:
            self.acct.ctl_requests += 1
            return self.ctlfs.read(fi.fh, size, offset)
        return self._page_io("read", path, offset, size, fi, os.pread, size)

    def write(self, path: str, data: bytes, offset: int, fi) -> int:
        if fi.fh >= FIRST_FH:
            self.acct.ctl_requests += 1
            return self.ctlfs.write(fi.fh, data)
        return self._page_io("write", path, offset, len(data), fi, os.pwrite, data)

    def _page_io(self, op: str, path: str, offset: int, length: int, fi,
                 call: Callable, arg: Any) -> Any:
        """One READ or WRITE on a backing file: the injected failure, if a
        rule says so, then the latency model, the call, and one record."""
        t0 = _ns()
        ctl = self.ctl
        err = ctl.injected(op, path, offset, not fi.flags & os.O_DIRECT) if ctl.injecting else 0
        try:
            if ctl.delaying:
                self._delay(t0, path, offset, length)
            if err:
                raise mfusepy.FuseOSError(err)
            out = call(fi.fh, arg, offset)
        except OSError as e:
            self.acct.record(op, path, offset, length, _ns() - t0, -(e.errno or errno.EIO))
            raise
        self.acct.record(op, path, offset, length, _ns() - t0,
                         len(out) if op == "read" else out)
        return out

    @_accounted("fsync")
    def fsync(self, path: str, datasync: int, fi) -> None:
        if fi.fh < FIRST_FH:
            if self.ctl.delaying:
                self._delay(_ns(), path, 0, 0)
            (os.fdatasync if datasync else os.fsync)(fi.fh)

    @_accounted("flush")
    def flush(self, path: str, fi) -> None:
        return None

    def release(self, path: str, fi) -> None:
        fh = fi.fh
        if fh >= FIRST_FH:
            self.acct.ctl_requests += 1
            return self.ctlfs.release(fh)
        t0 = _ns()
        os.close(fh)
        self.acct.record("release", path, 0, 0, _ns() - t0, 0)

    def _delay(self, t0: int, path: str, offset: int, length: int) -> None:
        """Wait out the latency model (callers check ``ctl.delaying`` first:
        the usual answer, none, costs no call)."""
        _wait_until(t0 + self.ctl.latency.delay_ns(path, offset, length))
