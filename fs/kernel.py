"""How the lab filesystem and the bench's bare passthrough meet the kernel:
the FUSE settings that make one page fault one request, in one place."""

from __future__ import annotations

from typing import Callable

from vmlab_fs.libfuse import mfusepy

FUSE_CAP_AUTO_INVAL_DATA = 1 << 12   # fuse_common.h
PAGE = 4096


class PagedOperations(mfusepy.Operations):
    """An mfusepy filesystem over ``root`` whose kernel side sends one
    4 KiB READ per page fault and one WRITE per dirty page, and that calls
    ``on_ready`` once the mount is live."""

    use_ns = True

    def __init__(self, root: str, on_ready: Callable[[], None] | None = None) -> None:
        self.root = root
        self.on_ready = on_ready

    def init_with_config(self, conn, config) -> None:
        """Set the kernel up: no read-ahead, one page per write, no GETATTR
        before every read after a write (libfuse 3's auto_inval_data
        doubles a swap-in's cost); inode numbers passed through, no caching."""
        conn.max_readahead = 0
        conn.max_write = PAGE
        conn.want &= ~FUSE_CAP_AUTO_INVAL_DATA
        if config is not None:
            config.use_ino = 1
            config.kernel_cache = 0
            config.direct_io = 0    # per file only: a direct_io mount breaks shared mmap
        if self.on_ready:
            self.on_ready()
