"""Load mfusepy bound to libfuse 3, never silently to libfuse 2.

mfusepy picks ``libfuse.so`` (version 2) first when both are installed. The
kernel settings the lab depends on (``max_readahead``, ``max_write`` and the
``fuse_config`` passed to ``init``) are libfuse 3's, so the library is named
explicitly before mfusepy is imported, and the import fails loudly otherwise.
"""

from __future__ import annotations

import ctypes.util
import os


class LibfuseMissing(RuntimeError):
    """libfuse 3 is not installed (Debian: ``apt-get install fuse3``)."""


def _load():
    path = os.environ.get("VMLAB_LIBFUSE") or ctypes.util.find_library("fuse3")
    if not path:
        raise LibfuseMissing("libfuse3 not found: install it with 'apt-get install fuse3'")
    os.environ["FUSE_LIBRARY_PATH"] = path
    import mfusepy

    if mfusepy.fuse_version_major != 3:
        raise LibfuseMissing(
            f"{path} is libfuse {mfusepy.fuse_version_major}, vmlab needs libfuse 3"
        )
    return mfusepy


mfusepy = _load()
