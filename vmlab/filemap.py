"""Files the VM maps: one ``O_DIRECT`` descriptor per file, shared by all
mappings of it, so each page-in and write-back is exactly one request."""

from __future__ import annotations

import errno
import os

from vmlab.errors import MapError


class MappedFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd, self.direct, self.writable = _open(path)
        st = os.fstat(self.fd)
        self.dev, self.ino = st.st_dev, st.st_ino
        self.key = (st.st_dev, st.st_ino)
        self.size = st.st_size
        self.users = 0              # mappings (and loaders) holding it open

    def read_page(self, offset: int, nbytes: int, dst: memoryview) -> None:
        """Read ``nbytes`` at ``offset`` into the start of ``dst``; zero the rest."""
        n = os.preadv(self.fd, [dst[:nbytes]], offset)
        dst[n:] = bytes(len(dst) - n)

    def write_page(self, offset: int, src: memoryview) -> None:
        n = os.pwritev(self.fd, [src], offset)
        if n != len(src):
            raise OSError(errno.EIO, f"short write-back to {self.path} ({n} of {len(src)} bytes)")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open(path: str) -> tuple[int, bool, bool]:
    """O_DIRECT where the filesystem allows it (not tmpfs); read-only if
    that is all we may do."""
    last: OSError | None = None
    for flags in (os.O_RDWR, os.O_RDONLY):
        for direct in (os.O_DIRECT, 0):
            try:
                fd = os.open(path, flags | direct | os.O_CLOEXEC)
                return fd, bool(direct), flags == os.O_RDWR
            except OSError as e:
                last = e
                if e.errno not in (errno.EINVAL, errno.EACCES, errno.EROFS, errno.EPERM):
                    raise MapError(f"cannot map {path}: {e.strerror}") from None
    raise MapError(f"cannot map {path}: {last.strerror if last else 'unknown error'}")
