"""vmlab's lab filesystem: a FUSE passthrough that counts, logs, delays and
fails every request, so each page-in and write-back is visible on the host.

    >>> import vmlab_fs
    >>> with vmlab_fs.mount() as m:
    ...     print(m.path, m.stats()["reads"])       # doctest: +ELLIPSIS
    /tmp/vmlab-mnt-... 0
"""

from vmlab_fs.accounting import FileCounts
from vmlab_fs.mounting import (FSTYPE, BadMountpoint, Mount, MountError, abort, attach, connection,
                         daemon_pid, mount,
                         mounted_fstype, start, unmount)

__all__ = ["FSTYPE", "BadMountpoint", "FileCounts", "Mount", "MountError", "abort", "attach",
           "connection", "daemon_pid", "mount",
           "mounted_fstype", "start", "unmount"]
