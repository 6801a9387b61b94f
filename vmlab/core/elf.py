"""PT_LOAD segments of a real ELF executable, from its first page only
(like execve, which reads the header and program headers, nothing more)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.elf.elffile import ELFFile

from vmlab.core.errors import MapError

PF_X, PF_W = 1, 2


@dataclass(frozen=True)
class Segment:
    vaddr: int
    memsz: int
    filesz: int
    offset: int
    writable: bool
    executable: bool


def parse_elf(head: bytes, path: str) -> tuple[int, bool, list[Segment]]:
    """(entry, position independent?, PT_LOAD segments) from the file's head."""
    try:
        elf = ELFFile(io.BytesIO(head))
        phoff, num, size = elf["e_phoff"], elf["e_phnum"], elf["e_phentsize"]
        if phoff + num * size > len(head):
            raise MapError(f"{path}: program headers lie past the first page")
        segs = []
        for i in range(num):
            ph = struct_parse(elf.structs.Elf_Phdr, elf.stream, phoff + i * size)
            if ph["p_type"] == "PT_LOAD" and ph["p_memsz"] > 0:
                segs.append(Segment(ph["p_vaddr"], ph["p_memsz"], ph["p_filesz"],
                                    ph["p_offset"], bool(ph["p_flags"] & PF_W),
                                    bool(ph["p_flags"] & PF_X)))
        return elf["e_entry"], elf["e_type"] == "ET_DYN", segs
    except (ELFError, ValueError, KeyError) as e:
        raise MapError(f"{path}: not a loadable ELF executable ({e})") from None
