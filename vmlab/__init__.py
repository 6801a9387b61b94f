"""vmlab: a user-space virtual memory lab whose swap and mapped files live on
a FUSE filesystem it mounts itself, so every major fault is real, visible I/O."""

__version__ = "0.1.0"
