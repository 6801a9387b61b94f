"""The computer: frames, a swap device on the lab mount, processes and the
counters. This is the public entry point.

>>> from vmlab import Machine
>>> with Machine(frames=2, swap_mb=1) as m:
...     p = m.spawn()
...     a = p.mmap(None, 0x10000000, length=4 * 4096)   # four pages, two frames
...     for i in range(4):
...         p.write(a + i * 4096, bytes([i + 1]) * 4096)
...     [p.read(a + i * 4096, 1) for i in range(4)], m.vmstat()["pswpout"] >= 2
([b'\\x01', b'\\x02', b'\\x03', b'\\x04'], True)
"""

from __future__ import annotations

import atexit
import mmap
import sys
from typing import Any

import vmlab_fs
from vmlab.core.errors import PageIOError, VMError, WriteBackError
from vmlab.core.frame import FrameTable
from vmlab.core.lab import Lab, teardown
from vmlab.core.mm import MM
from vmlab.core.page import PAGE
from vmlab.core.policy import Policy
from vmlab.core.registry import make_policy
from vmlab.core.process import Process
from vmlab.core.reclaim import flush_orphans

PHYS_BASE = 0xC0000000
STACK_MAX = 8 << 20


class Machine:
    """Physical memory of ``frames`` pages, ``swap_mb`` MiB of swap on the lab
    mount, a replacement ``policy``, and the processes that share them.

    ``lab=None`` mounts a lab filesystem in a temporary directory (removed on
    close); ``lab="/mnt/lab"`` uses an existing mount (``vmlab mount``).
    The tables the fault path works on are ``mm``'s (``vmlab.core.mm``).
    """

    def __init__(self, frames: int = 16, policy: "str | type[Policy] | Policy" = "clock",
                 swap_mb: float = 4,
                 lab: str | None = None, stack_max: int = STACK_MAX,
                 phys_base: int = PHYS_BASE, seed: int = 0, latency: str = "none",
                 io_timeout: float | None = 10.0) -> None:
        slots = _check_args(frames, stack_max, phys_base, swap_mb, io_timeout)
        self._closed = False
        self._lab: Lab | None = None
        self.mount: vmlab_fs.Mount | None = None       # the embedded mount, if this Machine made it
        self.lab_mount: vmlab_fs.Mount | None = None   # the vmlab mount in use (None: a plain directory)
        self.swap_path = ""
        self._scratch: mmap.mmap | None = None
        table = FrameTable(frames)
        try:
            chosen = make_policy(policy, len(table.frames), seed)
        except BaseException:
            table.close()
            raise
        self.mm = MM(table, chosen, phys_base, stack_max)
        try:
            self._open_lab(lab, latency, io_timeout)
            self.mm.swap = self._lab.new_swap((slots + 1) * PAGE)
            self.swap_path = self._lab.swap_path
            self._scratch = mmap.mmap(-1, PAGE)     # page-aligned, for O_DIRECT
            self.mm.bounce = memoryview(self._scratch)
        except BaseException:
            self._teardown()
            raise
        atexit.register(self._close_at_exit)

    def _open_lab(self, lab: str | None, latency: str, io_timeout: float | None) -> None:
        """Mount an embedded lab (``lab=None``) or take the one given; set
        ``lab``, ``backing``, ``lab_mount`` and the I/O guard."""
        self._lab = where = Lab(lab, latency, io_timeout)
        self.lab, self.mount, self.lab_mount = where.path, where.mount, where.lab_mount
        self.backing = where.backing
        self.mm.io = where.io

    # -- what the machine shows (owned by mm) ------------------------------------

    frames = property(lambda self: self.mm.frames, doc="The frame table.")
    policy = property(lambda self: self.mm.policy, doc="The replacement policy.")
    swap = property(lambda self: self.mm.swap, doc="The swap device on the lab.")
    procs = property(lambda self: self.mm.procs, doc="Live processes by pid.")
    exit_hooks = property(lambda self: self.mm.exit_hooks,
                          doc="Callables that see each process just before it goes.")
    munmap_hooks = property(lambda self: self.mm.munmap_hooks,
                            doc="Callables that see each munmap before it happens.")

    # -- processes ----------------------------------------------------------

    def spawn(self) -> Process:
        """A new process: an empty address space with one stack page, esp = PHYS_BASE."""
        self._check_open()
        p = Process(self.mm, self.mm.new_pid())
        self.mm.add_process(p)
        return p

    # -- figures ------------------------------------------------------------

    def vmstat(self) -> dict[str, int]:
        """Counters with Linux's names and units, plus vmlab's own.

        Sample: ``{'pgfault': 40, 'pgmajfault': 12, 'pswpin': 8, 'pswpout': 10,
        'pgpgin': 48, 'pgpgout': 40, 'zero_faults': 20, ..., 'pgscan': 11,
        'pgsteal': 10, 'nr_free_frames': 0}``
        """
        mm = self.mm
        out = dict(mm.stat)
        out["file_faults"] = out["elf_faults"] + out["mmap_faults"]
        out["pgsteal"] = out["evictions"]          # Linux's name: pages reclaimed
        out["nr_frames"] = len(mm.frames.frames)
        out["nr_free_frames"] = mm.frames.nr_free
        out["swap_slots"] = mm.swap.slots
        out["swap_used"] = mm.swap.used
        out["nr_processes"] = len(mm.procs)
        out["nr_unmapped_dirty"] = len(mm.orphans)
        return out

    def fault_costs(self) -> dict[str, dict[str, int]]:
        """Per fault case: ``{'swap': {'count': 10, 'median_ns': 61000, 'p99_ns': 98000}, ...}``."""
        return self.mm.costs.summary()

    def swaps(self) -> str:
        """``/proc/swaps``."""
        return self.mm.swap.swaps_line(header=True)

    # -- lifetime -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise VMError("this Machine is closed")

    def close(self) -> None:
        """Exit every process (writing back dirty shared pages), remove the
        swap file, and unmount the embedded lab filesystem if there is one.
        Raises WriteBackError for dirty file pages that could not be written."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._close_at_exit)
        errors: list[str] = []
        try:
            for p in list(self.mm.procs.values()):
                try:
                    p.exit(0)
                except (WriteBackError, PageIOError) as e:
                    errors.append(str(e))
            errors += [str(e) for e in flush_orphans(self.mm)]
        finally:
            self._teardown()
        if errors:
            raise WriteBackError("closing the machine, dirty file pages could not be written: "
                                 + "; ".join(errors))

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as e:      # at exit, a line on stderr is all that can be done
            print(f"vmlab: closing the machine at exit: {e}", file=sys.stderr)

    def _teardown(self) -> None:
        """Release everything; each step runs even if one before it failed
        (a dead mount fails every close), and the unmount always comes last."""
        mm = getattr(self, "mm", None)
        steps = []
        if mm is not None:
            steps += [f.close for f in mm.files.values()]
            if mm.bounce is not None:
                steps.append(mm.bounce.release)
            if hasattr(mm.policy, "close"):
                steps.append(mm.policy.close)       # a user's policy's watchdog
            steps.append(mm.frames.close)
        if self._scratch is not None:
            steps.append(self._scratch.close)
        teardown(steps)
        if mm is not None:
            mm.files.clear()
            mm.pagecache.clear()
            mm.slot_users.clear()
        if self._lab is not None:
            self._lab.close()                   # the swap file, the guard, the unmount: last

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Machine frames={len(self.mm.frames.frames)} policy={self.mm.policy.name} "
                f"lab={self.lab} processes={len(self.mm.procs)}>")


def _check_args(frames: Any, stack_max: Any, phys_base: Any, swap_mb: Any,
                io_timeout: Any) -> int:
    """The swap slots ``swap_mb`` holds; ValueError for any argument that
    is not what ``Machine`` takes."""
    _positive_int(frames, "frames")
    _positive_int(stack_max, "stack_max")
    _positive_int(phys_base, "phys_base")
    if phys_base & (PAGE - 1) or phys_base > 1 << 47:
        raise ValueError(f"phys_base must be page-aligned and below 2**47, not {phys_base:#x}")
    if not isinstance(swap_mb, (int, float)) or isinstance(swap_mb, bool) or not 0 < swap_mb <= 1 << 20:
        raise ValueError(f"swap_mb must be a positive number of MiB, not {swap_mb!r}")
    slots = int(swap_mb * (1 << 20)) // PAGE - 1
    if slots < 1:
        raise ValueError(f"swap_mb={swap_mb} is too small for one slot")
    if io_timeout is not None and (not isinstance(io_timeout, (int, float))
                                   or isinstance(io_timeout, bool) or io_timeout <= 0):
        raise ValueError(f"io_timeout must be a positive number of seconds or None, not {io_timeout!r}")
    return slots


def _positive_int(v: Any, name: str) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{name} must be a positive int, not {v!r}")
