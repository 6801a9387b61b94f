"""The lab filesystem: a passthrough of a backing directory that accounts,
logs, delays and (on request) fails every request.

Requests on ``/.vmlab/*`` are the mount's own control files; they are served
from memory and never counted, so reading the counters does not move them.
The daemon never follows a symlink itself (``O_NOFOLLOW``, ``lstat``); links
are followed by the kernel through ``readlink``, which refuses any target
that would leave the backing directory.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import time
from typing import Any, Callable

from vmlab_fs.accounting import Accounting
from vmlab_fs.control import Control, ControlError
from vmlab_fs.libfuse import mfusepy
from vmlab_fs.paths import CTL, has_dotdot, is_ctl, link_leaves

CTL_FILES = {"stats": 0o444, "files": 0o444, "iolog": 0o444, "control": 0o600, "pid": 0o444}
_VFH = 1 << 40      # file handles at and above this are control files, not fds
FUSE_CAP_AUTO_INVAL_DATA = 1 << 12   # fuse_common.h
_VIRTUAL_INO = 1 << 62  # inode numbers of .vmlab and its files, clear of real ones
_ns = time.monotonic_ns


def _dtype_mode(entry: os.DirEntry) -> int:
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFDIR if entry.is_dir(follow_symlinks=False) else stat.S_IFREG


def _deny(err: int = errno.EACCES):
    raise mfusepy.FuseOSError(err)


def _accounted(op: str) -> Callable:
    """Wrap a path operation so it is timed and counted as one request."""
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


class LabFS(mfusepy.Operations):
    use_ns = True

    def __init__(self, backing: str, latency: str = "none",
                 on_ready: Callable[[], None] | None = None) -> None:
        self.root = os.path.realpath(backing)
        self.acct = Accounting()
        self.ctl = Control(latency)
        self.owner = os.getuid()
        self.on_ready = on_ready
        self._vfiles: dict[int, tuple[str, bytearray]] = {}
        self._next_vfh = _VFH
        self._started = time.time_ns()

    # -- mount set-up --------------------------------------------------------

    def init_with_config(self, conn, config) -> None:
        # One kernel page fault = one 4 KiB READ, one dirty page = one WRITE.
        conn.max_readahead = 0
        conn.max_write = 4096
        # libfuse 3 asks for auto_inval_data by default: the kernel then sends a
        # GETATTR before every read after a write, doubling a swap-in's cost.
        # Nothing changes files behind the mount's back except on purpose.
        conn.want &= ~FUSE_CAP_AUTO_INVAL_DATA
        if config is not None:
            config.use_ino = 1
            config.kernel_cache = 0
            config.direct_io = 0    # per file only: a direct_io mount breaks shared mmap
        if self.on_ready:
            self.on_ready()

    # -- paths ---------------------------------------------------------------

    def _full(self, path: str) -> str:
        """The backing path of mount path ``path``; EPERM for the control
        directory, EACCES for a real ``..`` component."""
        if is_ctl(path):
            _deny(errno.EPERM)
        if has_dotdot(path):
            _deny()
        return self.root + path

    # -- metadata ------------------------------------------------------------

    @_accounted("getattr")
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        if is_ctl(path):
            return self._ctl_attr(path)
        if fh is not None and fh.fh < _VFH:
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
            _deny()
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
            _deny()
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
            _deny(errno.EOPNOTSUPP)     # Linux cannot chmod a symlink either
        os.chmod(full, mode)

    @_accounted("chown")
    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._full(path), uid, gid, follow_symlinks=False)

    @_accounted("truncate")
    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        if fh is not None and fh.fh < _VFH:
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
        _deny(errno.ENOSYS)

    # -- directories ---------------------------------------------------------

    @_accounted("opendir")
    def opendir(self, path: str) -> int:
        if path != CTL and not stat.S_ISDIR(os.lstat(self._full(path)).st_mode):
            _deny(errno.ENOTDIR)
        return 0

    @_accounted("readdir")
    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        # Real inode numbers: with use_ino a zero one would hide the entry.
        if path == CTL:
            return [(".", {"st_ino": _VIRTUAL_INO, "st_mode": stat.S_IFDIR}, 0),
                    ("..", {"st_ino": 1, "st_mode": stat.S_IFDIR}, 0)] + [
                (n, {"st_ino": _VIRTUAL_INO + i, "st_mode": stat.S_IFREG}, 0)
                for i, n in enumerate(CTL_FILES, 1)]
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
            out.append((".vmlab", {"st_ino": _VIRTUAL_INO, "st_mode": stat.S_IFDIR}, 0))
        return out

    @_accounted("releasedir")
    def releasedir(self, path: str, fh: int) -> None:
        return None

    # -- files ---------------------------------------------------------------

    @_accounted("open")
    def open(self, path: str, fi) -> None:
        if is_ctl(path):
            return self._ctl_open(path, fi)
        fi.fh = os.open(self._full(path), (fi.flags & ~os.O_DIRECT) | os.O_NOFOLLOW)

    @_accounted("create")
    def create(self, path: str, mode: int, fi) -> None:
        flags = (fi.flags & ~os.O_DIRECT) | os.O_CREAT | os.O_NOFOLLOW
        fi.fh = os.open(self._full(path), flags, mode)

    def read(self, path: str, size: int, offset: int, fi) -> bytes:
        fh = fi.fh
        if fh >= _VFH:
            self.acct.ctl_requests += 1
            return self._ctl_read(fh, size, offset)
        t0 = _ns()
        ctl = self.ctl
        err = (ctl.injected("read", path, offset, not fi.flags & os.O_DIRECT)
               if ctl.injecting else 0)
        try:
            if ctl.delaying:
                self._delay(t0, path, offset, size)
            if err:
                raise mfusepy.FuseOSError(err)
            data = os.pread(fh, size, offset)
        except OSError as e:
            self.acct.record("read", path, offset, size, _ns() - t0, -(e.errno or errno.EIO))
            raise
        self.acct.record("read", path, offset, size, _ns() - t0, len(data))
        return data

    def write(self, path: str, data: bytes, offset: int, fi) -> int:
        fh = fi.fh
        if fh >= _VFH:
            self.acct.ctl_requests += 1
            return self._ctl_write(fh, data)
        t0 = _ns()
        ctl = self.ctl
        err = ctl.injected("write", path) if ctl.injecting else 0
        try:
            if ctl.delaying:
                self._delay(t0, path, offset, len(data))
            if err:
                raise mfusepy.FuseOSError(err)
            n = os.pwrite(fh, data, offset)
        except OSError as e:
            self.acct.record("write", path, offset, len(data), _ns() - t0,
                             -(e.errno or errno.EIO))
            raise
        self.acct.record("write", path, offset, len(data), _ns() - t0, n)
        return n

    @_accounted("fsync")
    def fsync(self, path: str, datasync: int, fi) -> None:
        if fi.fh < _VFH:
            if self.ctl.delaying:
                self._delay(_ns(), path, 0, 0)
            (os.fdatasync if datasync else os.fsync)(fi.fh)

    @_accounted("flush")
    def flush(self, path: str, fi) -> None:
        return None

    def release(self, path: str, fi) -> None:
        fh = fi.fh
        if fh >= _VFH:
            self.acct.ctl_requests += 1
            return self._ctl_release(fh)
        t0 = _ns()
        os.close(fh)
        self.acct.record("release", path, 0, 0, _ns() - t0, 0)

    def _delay(self, t0: int, path: str, offset: int, length: int) -> None:
        """Wait out the latency model (callers check ``ctl.delaying`` first:
        the usual answer, none, costs no call)."""
        _wait_until(t0 + self.ctl.latency.delay_ns(path, offset, length))

    # -- the control directory ----------------------------------------------

    def _ctl_name(self, path: str) -> str:
        name = path[len(CTL) + 1:]
        if path != CTL and name not in CTL_FILES:
            _deny(errno.ENOENT)
        return name

    def _ctl_attr(self, path: str) -> dict[str, Any]:
        name = self._ctl_name(path)
        t = self._started
        ino = _VIRTUAL_INO + (list(CTL_FILES).index(name) + 1 if name else 0)
        attr = {"st_ino": ino, "st_uid": self.owner, "st_gid": os.getgid(), "st_nlink": 1,
                "st_atime": t, "st_mtime": time.time_ns(), "st_ctime": t}
        if not name:
            return {**attr, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        size = len(self.acct.iolog) if name == "iolog" else len(self._render(name))
        return {**attr, "st_mode": stat.S_IFREG | CTL_FILES[name], "st_size": size}

    def _render(self, name: str) -> bytes:
        if name == "stats":
            return self.acct.render_stats().encode()
        if name == "files":
            return self.acct.render_files().encode()
        if name == "control":
            return self.ctl.render().encode()
        if name == "pid":
            return f"{os.getpid()}\n".encode()
        return b""

    def _ctl_open(self, path: str, fi) -> None:
        name = self._ctl_name(path)
        writing = (fi.flags & os.O_ACCMODE) != os.O_RDONLY
        if writing and (name != "control" or mfusepy.fuse_get_context()[0] not in (self.owner, 0)):
            _deny()
        fi.direct_io = 1    # always ask the daemon: the page cache would freeze the figures
        fh = self._next_vfh
        self._next_vfh += 1
        # A snapshot per open keeps one `cat` consistent; iolog stays live for tail -f.
        self._vfiles[fh] = (name, bytearray() if writing or name == "iolog"
                            else bytearray(self._render(name)))
        fi.fh = fh

    def _ctl_read(self, fh: int, size: int, offset: int) -> bytes:
        name, buf = self._vfiles[fh]
        src = self.acct.iolog if name == "iolog" else buf
        return bytes(src[offset:offset + size])

    def _ctl_write(self, fh: int, data: bytes) -> int:
        name, buf = self._vfiles[fh]
        buf += data
        # Complete lines run now, so `echo bad > control` fails at write(2).
        done, _, rest = buf.rpartition(b"\n")
        if done:
            del buf[:len(done) + 1]
            self._run_control(done.decode("utf-8", "replace"))
        return len(data)

    def _ctl_release(self, fh: int) -> None:
        name, buf = self._vfiles.pop(fh)
        if name == "control" and buf.strip():
            try:
                self._run_control(buf.decode("utf-8", "replace"))
            except OSError:
                pass        # release cannot report; last_error in control says it

    def _run_control(self, text: str) -> None:
        try:
            self.ctl.execute(text)
        except ControlError:
            _deny(errno.EINVAL)
        finally:
            if self.ctl.reset_requested:
                self.ctl.reset_requested = False
                self.acct.reset()
