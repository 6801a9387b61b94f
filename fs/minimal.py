"""A minimal passthrough on the same binding and kernel settings as the lab
filesystem, without its accounting, request log or control files: the
baseline ``vmlab bench`` measures the lab filesystem against."""

from __future__ import annotations

import errno
import os
from typing import Any, Callable

from vmlab_fs.kernel import PagedOperations
from vmlab_fs.libfuse import mfusepy


class MinimalFS(PagedOperations):
    """Passthrough only, on the same kernel settings as LabFS."""

    def __init__(self, backing: str, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(os.path.realpath(backing), on_ready)

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        st = os.lstat(self.root + path)
        return {k: getattr(st, k) for k in ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid",
                                            "st_size", "st_blocks")} | {
            "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

    def getxattr(self, path: str, name: str, *args: Any) -> bytes:
        raise mfusepy.FuseOSError(errno.ENOSYS)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self.root + path)]

    def open(self, path: str, fi) -> None:
        fi.fh = os.open(self.root + path, fi.flags & ~os.O_DIRECT)

    def create(self, path: str, mode: int, fi) -> None:
        fi.fh = os.open(self.root + path, (fi.flags & ~os.O_DIRECT) | os.O_CREAT, mode)

    def read(self, path: str, size: int, offset: int, fi) -> bytes:
        return os.pread(fi.fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fi) -> int:
        return os.pwrite(fi.fh, data, offset)

    def truncate(self, path: str, length: int, fh: Any = None) -> None:
        os.truncate(self.root + path, length)

    def release(self, path: str, fi) -> None:
        os.close(fi.fh)
