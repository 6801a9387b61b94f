"""Files the VM maps: one ``O_DIRECT`` descriptor per file, shared by all
mappings of it, so each page-in and write-back is exactly one request."""

from __future__ import annotations

import errno
import os

from vmlab.core.errors import MapError


class MappedFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd, self.direct, self.writable = _open(path)
        self._plain = -1            # the same file without O_DIRECT, opened on first need
        st = os.fstat(self.fd)
        self.dev, self.ino = st.st_dev, st.st_ino
        self.key = (st.st_dev, st.st_ino)
        self.size = st.st_size
        self.users = 0              # mappings (and loaders) holding it open

    def read_page(self, offset: int, nbytes: int, dst: memoryview) -> None:
        """Read ``nbytes`` at ``offset`` into the start of ``dst``; zero the rest.
        A page wholly past the end of the file is an OSError (SIGBUS in Linux)."""
        n = self._io(os.preadv, dst[:nbytes], offset)
        if n == 0 and nbytes:
            raise OSError(errno.EIO, "the page lies past the end of the file (truncated?)")
        dst[n:] = bytes(len(dst) - n)

    def write_page(self, offset: int, src: memoryview) -> None:
        n = self._io(os.pwritev, src, offset)
        if n != len(src):
            raise OSError(errno.EIO, f"short write-back to {self.path} ({n} of {len(src)} bytes)")

    def _io(self, call, buf: memoryview, offset: int) -> int:
        """One ``preadv``/``pwritev``. A file's last page is not a whole
        number of sectors, which O_DIRECT on a disk filesystem refuses
        (EINVAL): that one goes through the page cache instead. (On the lab
        mount O_DIRECT takes any length, so each page stays one request.)"""
        try:
            return call(self.fd, [buf], offset)
        except OSError as e:
            if e.errno != errno.EINVAL or not self.direct:
                raise
        if self._plain < 0:
            flags = os.O_RDWR if self.writable else os.O_RDONLY
            self._plain = os.open(f"/proc/self/fd/{self.fd}", flags | os.O_CLOEXEC)
        return call(self._plain, [buf], offset)

    def close(self) -> None:
        for fd in (self.fd, self._plain):
            if fd >= 0:
                os.close(fd)
        self.fd = self._plain = -1


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
