"""vmlab: a user-space virtual memory lab whose swap and mapped files live on
a FUSE filesystem it mounts itself, so every major fault is real, visible I/O.

    >>> from vmlab import Machine
    >>> with Machine(frames=4) as m:
    ...     p = m.spawn()
    ...     p.push(b"hi") == p.esp, p.read(p.esp, 2)
    (True, b'hi')
"""

__version__ = "0.2.0"

# The public names, imported on first use (PEP 562): a command that needs no
# Machine (vmlab trace, vmlab --version) never loads the VM or the lab.
_PUBLIC = {
    "Machine": "vmlab.core.machine", "Process": "vmlab.core.process",
    "Policy": "vmlab.core.policy", "RealMachine": "vmlab.real.machine",
    **dict.fromkeys(("BusError", "LabError", "MapError", "OutOfMemory", "PageIOError",
                     "PolicyError", "SegFault", "VMError", "WorkloadError", "WriteBackError"), "vmlab.core.errors"),
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vmlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
