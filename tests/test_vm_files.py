"""Files the VM maps, on any filesystem and in any shape: a file's partial
last page on a plain disk directory, truncated ELF files and segment
offsets that point nowhere."""

from __future__ import annotations

import mmap
import os
import random
import shutil
import struct

import pytest

from vmlab import BusError, Machine, MapError
from vmlab.core.elf import parse_elf

PAGE = 4096
A = 0x10000000
PIE_BASE = 0x08000000


def _refuses_unaligned_direct_io(d: str) -> bool:
    path = os.path.join(d, ".odirect-probe")
    buf = mmap.mmap(-1, PAGE)
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    except OSError:
        return False                # no O_DIRECT at all (tmpfs)
    try:
        os.pwritev(fd, [memoryview(buf)[:300]], 0)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
        os.unlink(path)
        buf.close()


@pytest.fixture
def disk_dir(tmp_path):
    """A plain directory on a disk filesystem, where O_DIRECT wants whole
    sectors (the case that broke); the test's own tmp_path if it is one."""
    for d in (str(tmp_path), os.path.dirname(os.path.abspath(__file__))):
        if _refuses_unaligned_direct_io(d):
            made = d if d == str(tmp_path) else os.path.join(d, f".vmlab-test-{os.getpid()}")
            os.makedirs(made, exist_ok=True)
            yield made
            if made != str(tmp_path):
                shutil.rmtree(made)
            return
    pytest.fail("no disk filesystem with sector-aligned O_DIRECT found for this test")


def test_partial_last_pages_on_a_plain_directory_lab(disk_dir):
    data = random.Random(1).randbytes(2 * PAGE + 300)
    path = os.path.join(disk_dir, "tail.bin")
    with open(path, "wb") as f:
        f.write(data)
    with Machine(frames=2, lab=disk_dir) as m:
        p = m.spawn()
        a = p.mmap(path, A)
        assert p.read(a, len(data)) == data                 # the 300-byte tail page
        p.write(a + 2 * PAGE + 10, b"XYZ")
        for i in range(3):                                   # evict the tail: written back
            p.write(a + i * PAGE, bytes([i]))
        assert p.read(a + 2 * PAGE, 300)[10:13] == b"XYZ"   # and read again
        p.munmap(a)
    want = bytearray(data)
    want[2 * PAGE + 10:2 * PAGE + 13] = b"XYZ"
    for i in range(3):
        want[i * PAGE] = i
    assert open(path, "rb").read() == want                   # size unchanged, nothing lost


def test_an_elf_with_a_partial_page_runs_from_a_plain_directory(disk_dir):
    exe = os.path.join(disk_dir, "true")
    shutil.copyfile("/bin/true", exe)
    assert os.path.getsize(exe) % 512                        # its last page is partial
    segs = parse_elf(open(exe, "rb").read(PAGE), exe)[2]
    last = max(segs, key=lambda s: s.offset + s.filesz)
    with Machine(frames=4, lab=disk_dir) as m:
        p = m.spawn()
        p.load_elf(exe)
        addr = PIE_BASE + last.vaddr + last.filesz - 1        # the segment's last file byte
        assert p.read(addr, 1) == open(exe, "rb").read()[last.offset + last.filesz - 1:][:1]


def _exe(machine, name: str, head_patch=None, size: int | None = None) -> str:
    data = bytearray(open("/bin/true", "rb").read())
    if head_patch:
        head_patch(data)
    path = os.path.join(machine.lab, name)
    with open(path, "wb") as f:
        f.write(data[:size])
    return path


def test_a_truncated_elf_is_refused(machine):
    m = machine(frames=4)
    p = m.spawn()
    with pytest.raises(MapError, match="truncated"):
        p.load_elf(_exe(m, "cut", size=8192))
    assert p.alive and len(p.vmas) == 1                       # only the stack


@pytest.mark.parametrize("offset", [2**63, 2**60], ids=["2^63", "2^60"])
def test_segment_offsets_past_the_file_are_refused(machine, offset):
    def patch(data):
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phsize, phnum = struct.unpack_from("<HH", data, 0x36)
        for i in range(phnum):
            at = phoff + i * phsize
            ptype, = struct.unpack_from("<I", data, at)
            filesz, = struct.unpack_from("<Q", data, at + 32)
            if ptype == 1 and filesz:                        # PT_LOAD
                old, = struct.unpack_from("<Q", data, at + 8)
                struct.pack_into("<Q", data, at + 8, old + offset)   # same page offset
                return
    m = machine(frames=4)
    p = m.spawn()
    with pytest.raises(MapError, match="truncated"):
        p.load_elf(_exe(m, f"far-{offset}", patch))
    assert p.alive


def test_a_file_cut_short_after_loading_is_a_bus_error(machine):
    m = machine(frames=4)
    exe = _exe(m, "shrinks")
    segs = parse_elf(open(exe, "rb").read(PAGE), exe)[2]
    far = next(s for s in segs if s.offset >= 2 * PAGE)
    p = m.spawn()
    p.load_elf(exe)
    os.truncate(exe, PAGE)                                   # as mmap: touching past EOF
    with pytest.raises(BusError, match="past the end"):
        p.read(PIE_BASE + far.vaddr, 1)
    assert not p.alive
