"""A process: an address space (VMAs and PTEs), an MMU-style way in
(``read``/``write`` set the accessed and dirty bits and fault on anything
not present or not writable), a stack pointer, fork, mmap and exit."""

from __future__ import annotations

import os
from typing import Any

from vmlab.core import fault
from vmlab.core.elf import parse_elf
from vmlab.core.errors import (BusError, MapError, OutOfMemory, PageIOError, SegFault, VMError,
                               WriteBackError)
from vmlab.core.filemap import MappedFile
from vmlab.core.mm import MM
from vmlab.core.page import PAGE, PAGE_MASK, PAGE_SHIFT, Pte, Vma, page_round_up
from vmlab.core.reclaim import release_pte

PIE_BASE = 0x08000000       # where position-independent executables are loaded


def _check_int(v: Any, what: str) -> int:
    """``v`` if it is an int (not a bool); TypeError naming ``what`` otherwise."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{what} must be an int, not {type(v).__name__} {v!r:.40}")
    return v


def _check_addr(addr: Any, what: str = "address") -> int:
    """``addr`` if it is a non-negative int; TypeError or ValueError otherwise."""
    if _check_int(addr, what) < 0:
        raise ValueError(f"{what} must be a non-negative int, not {addr!r}")
    return addr


def _read_head(mm: MM, f: MappedFile) -> bytes:
    """The first page of a file, in one read (an executable's headers).
    Raises MapError if it cannot be read."""
    n = min(PAGE, f.size)
    try:
        with mm.io:
            f.read_page(0, n, mm.bounce)
    except PageIOError as e:
        raise MapError(f"cannot read {f.path}: {e}") from None
    mm.stat["elf_header_reads"] += 1
    return bytes(mm.bounce[:n])


def _report(failed: list[tuple[Vma, Exception]]) -> None:
    if failed:
        vma, e = failed[0]
        why = str(e)
        raise WriteBackError(f"{len(failed)} dirty page(s) of {vma.file.path} could not be written "
                             f"({why}); they stay in memory and are retried on eviction and at close")


class Process:
    """
    >>> from vmlab import Machine
    >>> with Machine(frames=4) as m:
    ...     p = m.spawn()
    ...     p.write(p.esp - 4096, b"hello"); p.read(p.esp - 4096, 5)
    ...     print(p.maps(), end="")
    b'hello'
    bffff000-c0000000 rw-p 00000000 00:00 0                                  [stack]
    """

    def __init__(self, mm: MM, pid: int) -> None:
        self.mm = mm
        self.pid = pid
        self.spt: dict[int, Pte] = {}
        top = mm.phys_base
        self.stack = Vma(top - PAGE, top, "stack", writable=True)
        self.vmas: list[Vma] = [self.stack]
        self._esp = top
        self.minflt = 0
        self.majflt = 0
        self.exit_status: int | None = None

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited {self.exit_status}"
        return f"<Process pid={self.pid} {state} rss={self.rss_pages} minflt={self.minflt} majflt={self.majflt}>"

    @property
    def esp(self) -> int:
        """The stack pointer (stack growth is judged against it)."""
        return self._esp

    @esp.setter
    def esp(self, value: int) -> None:
        _check_addr(value, "esp")
        if value > self.mm.phys_base:
            raise ValueError(f"esp {value:#x} is above PHYS_BASE ({self.mm.phys_base:#x})")
        self._esp = value

    @property
    def alive(self) -> bool:
        return self.exit_status is None

    @property
    def rss_pages(self) -> int:
        return sum(1 for pte in self.spt.values() if pte.frame is not None)

    def find_vma(self, addr: int) -> Vma | None:
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
        return None

    # -- memory access: the MMU ---------------------------------------------

    def _translate(self, addr: int, write: bool) -> memoryview:
        """The MMU: the frame holding ``addr``, faulted in (or made writable)
        first if need be, with the accessed (and dirty) bits set."""
        pte = self.spt.get(addr >> PAGE_SHIFT)
        if pte is None or pte.frame is None or (write and not pte.writable):
            pte = self._fault(addr, write)
        pte.accessed = True
        if write:
            pte.dirty = True
        if self.mm.touch:
            self.mm.touch(pte.frame)
        return pte.frame.view

    def read(self, addr: int, n: int) -> bytes:
        """Read ``n`` bytes at ``addr`` (any length, across pages)."""
        self._check_alive()
        _check_addr(addr)
        _check_addr(n, "length")
        if addr + n > self.mm.phys_base:
            self._fault(max(addr, self.mm.phys_base), False)    # a segfault, as the MMU would
        off = addr & PAGE_MASK
        if off + n <= PAGE:                 # within one page: the common case, no buffer
            return bytes(self._translate(addr, False)[off:off + n])
        out = bytearray(n)
        pos = 0
        while pos < n:
            a = addr + pos
            off = a & PAGE_MASK
            chunk = min(n - pos, PAGE - off)
            out[pos:pos + chunk] = self._translate(a, False)[off:off + chunk]
            pos += chunk
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` at ``addr`` (any length, across pages)."""
        self._check_alive()
        _check_addr(addr)
        try:
            src = memoryview(data).cast("B")
        except TypeError:
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None
        if addr + len(src) > self.mm.phys_base:
            self._fault(max(addr, self.mm.phys_base), True)
        n, pos = len(src), 0
        while pos < n:
            a = addr + pos
            off = a & PAGE_MASK
            chunk = min(n - pos, PAGE - off)
            self._translate(a, True)[off:off + chunk] = src[pos:pos + chunk]
            pos += chunk

    def push(self, data: bytes) -> int:
        """Move esp down by ``len(data)`` and write it there; returns the new esp."""
        self._check_alive()
        try:
            n = memoryview(data).nbytes
        except TypeError:
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None
        self.esp = max(self._esp - n, 0)
        self.write(self._esp, data)
        return self._esp

    def _fault(self, addr: int, write: bool) -> Pte:
        try:
            return fault.handle_fault(self.mm, self, addr, write)
        except (SegFault, BusError, OutOfMemory) as e:
            kind = {SegFault: "segfaults", BusError: "bus_errors", OutOfMemory: "oom_kills"}
            self.mm.stat[kind[type(e)]] += 1
            self._kill()
            raise

    # -- building the address space -----------------------------------------

    def _check_free(self, start: int, end: int) -> None:
        if start == 0 or start & PAGE_MASK:
            raise MapError(f"address {start:#x} is zero or not page-aligned")
        if end > self.mm.phys_base:
            raise MapError(f"range {start:#x}-{end:#x} reaches PHYS_BASE "
                           f"({self.mm.phys_base:#x})")
        for v in self.vmas:
            if v.start < end and start < v.end:
                name = v.file.path if v.file else f"[{v.kind}]"
                raise MapError(f"range {start:#x}-{end:#x} overlaps {v.start:#x}-{v.end:#x} {name}")

    def _add_vma(self, vma: Vma) -> None:
        self.vmas.append(vma)
        self.vmas.sort(key=lambda v: v.start)

    def load_elf(self, path: str) -> int:
        """Map a real ELF executable lazily; returns its entry point.

        Reads the first page (the ELF and program headers) and creates one
        mapping per PT_LOAD segment; no segment page is read until it faults.
        """
        self._check_alive()
        mm = self.mm
        f = mm.open_file(path)
        try:
            head = _read_head(mm, f)
            entry, pie, segs = parse_elf(head, path)
            base = PIE_BASE if pie else 0
            if not segs:
                raise MapError(f"{path}: no loadable segments")
            new = []
            for s in segs:
                vaddr = base + s.vaddr
                start = vaddr & ~PAGE_MASK
                if (s.offset - s.vaddr) & PAGE_MASK:
                    raise MapError(f"{path}: segment at {vaddr:#x} is not page-aligned in the file")
                if s.offset + s.filesz > f.size:
                    raise MapError(f"{path}: segment at {vaddr:#x} needs file bytes up to "
                                   f"{s.offset + s.filesz}, but the file has {f.size} "
                                   "(truncated?)")
                lead = vaddr - start
                vma = Vma(start, page_round_up(vaddr + s.memsz), "elf", s.writable,
                          s.executable, False, f, s.offset - lead, lead + s.filesz)
                self._check_free(vma.start, vma.end)
                for other in new:
                    if other.start < vma.end and vma.start < other.end:
                        raise MapError(f"{path}: segments share the page at {vma.start:#x}")
                new.append(vma)
        except BaseException:
            mm.put_file(f)
            raise
        for vma in new:
            mm.hold_file(f)
            self._add_vma(vma)
        mm.put_file(f)              # drop open_file's own reference
        return base + entry

    def mmap(self, path: str | None, addr: int, length: int | None = None, *,
             private: bool = False, writable: bool = True, offset: int = 0) -> int:
        """Map ``path`` (or anonymous zero-fill memory if None) at ``addr``.

        File mappings are shared unless ``private`` (then copy-on-write);
        ``length`` defaults to the file's size. Returns ``addr``.
        Raises MapError, leaving the address space unchanged.
        """
        self._check_alive()
        _check_addr(addr)
        _check_addr(offset, "offset")
        if offset & PAGE_MASK:
            raise MapError(f"file offset {offset} is not page-aligned")
        if length is not None and _check_int(length, "length") <= 0:
            raise MapError(f"length must be a positive int, not {length!r}")
        mm = self.mm
        if path is None:
            if length is None:
                raise MapError("an anonymous mapping needs a length")
            end = addr + page_round_up(length)
            self._check_free(addr, end)
            self._add_vma(Vma(addr, end, "anon", writable))
            return addr
        f = mm.open_file(os.fspath(path))
        try:
            if f.size == 0:
                raise MapError(f"cannot map {path}: the file is empty")
            if offset >= f.size:
                raise MapError(f"offset {offset} is past the end of {path}")
            if not private and writable and not f.writable:
                raise MapError(f"cannot map {path} shared and writable: it is read-only")
            end = addr + page_round_up(length if length is not None else f.size - offset)
            self._check_free(addr, end)
        except BaseException:
            mm.put_file(f)
            raise
        mm.hold_file(f)
        self._add_vma(Vma(addr, end, "mmap", writable, False, not private, f, offset,
                          f.size - offset))
        mm.put_file(f)
        return addr

    def munmap(self, addr: int) -> None:
        """Unmap the mapping that starts at ``addr``, writing back its dirty
        shared pages (never clean ones)."""
        self._check_alive()
        _check_addr(addr)
        vma = next((v for v in self.vmas if v.start == addr and v is not self.stack), None)
        if vma is None:
            raise MapError(f"no mapping starts at {addr:#x}")
        for hook in self.mm.munmap_hooks:
            hook(self, addr)
        _report(self._unmap(vma))

    def _unmap(self, vma: Vma) -> list[tuple[Vma, Exception]]:
        """Release every page of ``vma``; returns the write-backs that failed
        (their pages stay in memory, dirty, and are retried)."""
        mm = self.mm
        spt = self.spt
        vpns = ([v for v in spt if vma.start >> PAGE_SHIFT <= v < vma.end >> PAGE_SHIFT]
                if len(spt) < len(vma.pages) else [v for v in vma.pages if v in spt])
        failed = []
        for vpn in vpns:
            error = release_pte(mm, spt.pop(vpn))
            if error is not None:
                failed.append((vma, error))
        self.vmas.remove(vma)
        if vma.file is not None:
            mm.put_file(vma.file)
        return failed

    # -- fork and exit ------------------------------------------------------

    def fork(self) -> "Process":
        """A copy-on-write child: both share every frame read-only until one writes."""
        self._check_alive()
        mm = self.mm
        child = Process(mm, mm.new_pid())
        mm.add_process(child)
        child._esp = self._esp
        child.vmas = []
        for v in self.vmas:
            c = Vma(v.start, v.end, v.kind, v.writable, v.executable, v.shared, v.file,
                    v.offset, v.file_bytes)
            if v.file is not None:
                mm.hold_file(v.file)
            child.vmas.append(c)
            if v is self.stack:
                child.stack = c
        for vpn, pte in self.spt.items():
            mm.share_page(pte, child.spt.setdefault(vpn, Pte(child, vpn)))
        return child

    def exit(self, status: int = 0) -> None:
        """End the process: dirty shared pages are written back, its frames,
        swap slots and mappings released. A failed write-back is reported
        (WriteBackError) after the process is gone; its pages stay in memory.
        ``status`` is an exit status, 0 to 255 (TypeError, ValueError otherwise)."""
        self._check_alive()
        if not 0 <= _check_int(status, "exit status") <= 255:
            raise ValueError(f"exit status must be 0 to 255, not {status}")
        try:
            failed = self._release()
        finally:
            self.exit_status = status
        _report(failed)

    def _kill(self) -> None:
        """Killed by a fault: released like exit; write-back failures are
        counted (``writeback_errors``) and their pages kept, not raised."""
        if self.alive:
            try:
                self._release()
            finally:
                self.exit_status = -1

    def _release(self) -> list[tuple[Vma, Exception]]:
        for hook in self.mm.exit_hooks:
            hook(self)
        failed = []
        try:
            for vma in list(self.vmas):
                failed += self._unmap(vma)
        finally:
            self.mm.remove_process(self)
        return failed

    def _check_alive(self) -> None:
        if not self.alive:
            raise VMError(f"process {self.pid} has exited (status {self.exit_status})")

    # -- views --------------------------------------------------------------

    def memory_maps(self) -> list[dict[str, Any]]:
        """One dict per mapping, like psutil's ``memory_maps(grouped=False)``
        with smaps fields (KiB)."""
        from vmlab.core.views import memory_maps
        return memory_maps(self)

    def maps(self) -> str:
        """``/proc/PID/maps``."""
        from vmlab.core.views import render_maps
        return render_maps(self)

    def smaps(self) -> str:
        """``/proc/PID/smaps`` (the fields vmlab knows)."""
        from vmlab.core.views import render_smaps
        return render_smaps(self)
