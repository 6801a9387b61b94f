"""vmlab: a user-space virtual memory lab whose swap and mapped files live on
a FUSE filesystem it mounts itself, so every major fault is real, visible I/O.

    >>> from vmlab import Machine
    >>> with Machine(frames=4) as m:
    ...     p = m.spawn()
    ...     p.push(b"hi") == p.esp, p.read(p.esp, 2)
    (True, b'hi')
"""

__version__ = "0.2.0"

from vmlab.core.errors import (BusError, LabError, MapError, OutOfMemory, PageIOError,  # noqa: E402
                               SegFault, VMError, WriteBackError)
from vmlab.core.machine import Machine  # noqa: E402
from vmlab.core.process import Process  # noqa: E402

__all__ = ["BusError", "LabError", "Machine", "MapError", "OutOfMemory", "PageIOError", "Process",
           "SegFault", "VMError", "WriteBackError"]
