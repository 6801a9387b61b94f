"""The ``/.vmlab`` pseudo-filesystem of a mount: its files are rendered
from the mount's figures, served from memory, and never counted among the
requests they report (``ctl_requests`` counts them apart)."""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Any

from vmlab_fs.accounting import Accounting
from vmlab_fs.control import Control, ControlError
from vmlab_fs.libfuse import mfusepy
from vmlab_fs.paths import CTL

FILES = {"stats": 0o444, "files": 0o444, "iolog": 0o444, "control": 0o600, "pid": 0o444}
VIRTUAL_INO = 1 << 62       # inode numbers of .vmlab and its files, clear of real ones
FIRST_FH = 1 << 40          # file handles at and above this are control files, not fds


def deny(err: int = errno.EACCES):
    raise mfusepy.FuseOSError(err)


class ControlFiles:
    """``stats``, ``files``, ``iolog``, ``control`` (owner-only, writable)
    and ``pid`` under ``/.vmlab``; each open takes a snapshot, so one ``cat``
    is consistent, except ``iolog``, which stays live for ``tail -f``."""

    def __init__(self, acct: Accounting, ctl: Control, owner: int) -> None:
        self.acct, self.ctl, self.owner = acct, ctl, owner
        self._open: dict[int, tuple[str, bytearray]] = {}
        self._next_fh = FIRST_FH
        self._started = time.time_ns()

    def _name(self, path: str) -> str:
        """The file's name ('' for the directory); ENOENT for any other."""
        name = path[len(CTL) + 1:]
        if path != CTL and name not in FILES:
            deny(errno.ENOENT)
        return name

    def getattr(self, path: str) -> dict[str, Any]:
        name = self._name(path)
        t = self._started
        ino = VIRTUAL_INO + (list(FILES).index(name) + 1 if name else 0)
        attr = {"st_ino": ino, "st_uid": self.owner, "st_gid": os.getgid(), "st_nlink": 1,
                "st_atime": t, "st_mtime": time.time_ns(), "st_ctime": t}
        if not name:
            return {**attr, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        size = len(self.acct.iolog) if name == "iolog" else len(self.render(name))
        return {**attr, "st_mode": stat.S_IFREG | FILES[name], "st_size": size}

    def readdir(self) -> list[tuple[str, dict[str, int], int]]:
        return [(".", {"st_ino": VIRTUAL_INO, "st_mode": stat.S_IFDIR}, 0),
                ("..", {"st_ino": 1, "st_mode": stat.S_IFDIR}, 0)] + [
            (n, {"st_ino": VIRTUAL_INO + i, "st_mode": stat.S_IFREG}, 0)
            for i, n in enumerate(FILES, 1)]

    def render(self, name: str) -> bytes:
        if name == "stats":
            return self.acct.render_stats().encode()
        if name == "files":
            return self.acct.render_files().encode()
        if name == "control":
            return self.ctl.render().encode()
        if name == "pid":
            return f"{os.getpid()}\n".encode()
        return b""

    def open(self, path: str, fi, uid: int) -> None:
        """Open for ``uid``; writing is for the owner (or root), and ``control`` only."""
        name = self._name(path)
        writing = (fi.flags & os.O_ACCMODE) != os.O_RDONLY
        if writing and (name != "control" or uid not in (self.owner, 0)):
            deny()
        fi.direct_io = 1    # always ask the daemon: the page cache would freeze the figures
        fh = self._next_fh
        self._next_fh += 1
        self._open[fh] = (name, bytearray() if writing or name == "iolog"
                          else bytearray(self.render(name)))
        fi.fh = fh

    def read(self, fh: int, size: int, offset: int) -> bytes:
        name, buf = self._open[fh]
        src = self.acct.iolog if name == "iolog" else buf
        return bytes(src[offset:offset + size])

    def write(self, fh: int, data: bytes) -> int:
        """Complete lines run now, so ``echo bad > control`` fails at write(2)."""
        name, buf = self._open[fh]
        buf += data
        done, _, rest = buf.rpartition(b"\n")
        if done:
            del buf[:len(done) + 1]
            self._run(done.decode("utf-8", "replace"))
        return len(data)

    def release(self, fh: int) -> None:
        name, buf = self._open.pop(fh)
        if name == "control" and buf.strip():
            try:
                self._run(buf.decode("utf-8", "replace"))
            except OSError:
                pass        # release cannot report; last_error in control says it

    def _run(self, text: str) -> None:
        try:
            self.ctl.execute(text)
        except ControlError:
            deny(errno.EINVAL)
        finally:
            if self.ctl.reset_requested:
                self.ctl.reset_requested = False
                self.acct.reset()
