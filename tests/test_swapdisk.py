"""The swap device: header, bitmap, full device, checksums, one request per slot."""

from __future__ import annotations

import mmap
import os
import random
import shutil
import subprocess

import pytest

from vmlab_swapdisk import (PAGE, BadSwapHeader, SlotBitmap, SwapChecksumError, SwapDisk, SwapError,
                      SwapFull, SwapHeader, mkswap)


def test_header_round_trip_and_linux_layout():
    h = SwapHeader.for_size(64 << 20, label="lab")
    page = h.pack()
    assert len(page) == PAGE and page[-10:] == b"SWAPSPACE2"
    assert int.from_bytes(page[1024:1028], "little") == 1                 # version
    assert int.from_bytes(page[1028:1032], "little") == (64 << 20) // PAGE - 1
    assert SwapHeader.unpack(page) == h


@pytest.mark.parametrize("size", [0, PAGE, PAGE + 1, 3 * PAGE - 7])
def test_header_rejects_sizes_that_are_not_whole_pages(size):
    with pytest.raises(ValueError):
        SwapHeader.for_size(size)


def test_bad_headers_are_refused(tmp_path):
    p = tmp_path / "notswap"
    p.write_bytes(b"\0" * 8 * PAGE)
    with pytest.raises(BadSwapHeader):
        SwapDisk(str(p))
    mkswap(str(p), 8 * PAGE, force=True)
    with open(p, "r+b") as f:
        f.truncate(4 * PAGE)                 # shorter than its header says
    with pytest.raises(BadSwapHeader):
        SwapDisk(str(p))


def test_bitmap_first_fit_full_and_reuse():
    b = SlotBitmap(21, reserved=1)
    got = [b.alloc() for _ in range(20)]
    assert got == list(range(1, 21)) and b.used == 20
    assert b.alloc() is None
    for s in (7, 3, 15):
        b.free(s)
    assert sorted(b.alloc() for _ in range(3)) == [3, 7, 15]
    with pytest.raises(ValueError):
        b.free(0)                            # reserved: the header
    b.free(9)
    with pytest.raises(ValueError):
        b.free(9)                            # double free


def test_bitmap_against_a_set(tmp_path):
    rng = random.Random(4)
    b, used = SlotBitmap(300, reserved=1), set()
    for _ in range(3000):
        if used and rng.random() < 0.45:
            s = rng.choice(sorted(used))
            b.free(s)
            used.remove(s)
        else:
            s = b.alloc()
            if len(used) == 299:
                assert s is None
                continue
            assert s not in used and 1 <= s < 300
            used.add(s)
        assert b.used == len(used)


def test_full_device_raises_swapfull(tmp_path):
    with SwapDisk.create(str(tmp_path / "s"), 4 * PAGE) as d:
        assert [d.alloc() for _ in range(3)] == [1, 2, 3]
        with pytest.raises(SwapFull, match="full"):
            d.alloc()
        d.free(2)
        assert d.alloc() == 2


def test_slot_io_through_the_mount_is_one_request_each(lab):
    path = os.path.join(lab.path, "swap.img")
    frames = mmap.mmap(-1, 8 * PAGE)
    view = memoryview(frames)
    rng = random.Random(1)
    with SwapDisk.create(path, 64 * PAGE) as d:
        assert d.direct
        base = lab.files()["/swap.img"]
        contents = {}
        for i in range(8):
            data = rng.randbytes(PAGE)
            view[i * PAGE:(i + 1) * PAGE] = data
            s = d.alloc()
            d.write(s, view[i * PAGE:(i + 1) * PAGE])
            contents[s] = data
        unaligned = bytearray(rng.randbytes(PAGE))   # a bounce buffer is used
        s = d.alloc()
        d.write(s, unaligned)
        contents[s] = bytes(unaligned)
        for j, (s, data) in enumerate(sorted(contents.items(), reverse=True)):
            if j < 8:
                d.read(s, view[j * PAGE:(j + 1) * PAGE])
                assert bytes(view[j * PAGE:(j + 1) * PAGE]) == data
            else:
                out = bytearray(PAGE)
                d.read(s, out)
                assert out == data
        f = lab.files()["/swap.img"]
        assert (f.reads - base.reads, f.writes - base.writes) == (9, 9) == (d.reads, d.writes)
        assert (f.read_bytes - base.read_bytes) == 9 * PAGE
        assert d.used == 9
        assert d.swaps_line().split()[1:] == ["file", "252", "36", "-2"]
    del view
    frames.close()


def test_corrupted_slot_is_caught_by_its_checksum(lab):
    path = os.path.join(lab.path, "swap.img")
    with SwapDisk.create(path, 16 * PAGE) as d:
        s = d.alloc()
        d.write(s, b"\x5a" * PAGE)
        with open(os.path.join(lab.backing, "swap.img"), "r+b") as raw:   # behind vmlab's back
            raw.seek(s * PAGE + 100)
            raw.write(b"\x5b")
        buf = bytearray(PAGE)
        with pytest.raises(SwapChecksumError):
            d.read(s, buf)
        with pytest.raises(SwapError):
            d.read(d.alloc(), buf)          # never written: no data to give


def test_slot_read_error_reaches_the_caller(lab):
    with SwapDisk.create(os.path.join(lab.path, "swap.img"), 16 * PAGE) as d:
        s = d.alloc()
        d.write(s, b"a" * PAGE)
        lab.control("fail read /swap.img EIO 1")
        with pytest.raises(OSError):
            d.read(s, bytearray(PAGE))
        out = bytearray(PAGE)
        d.read(s, out)
        assert out == b"a" * PAGE


def test_blkid_and_file_recognise_the_swap_file(lab):
    mkswap(os.path.join(lab.path, "swap.img"), 256 * PAGE, label="labswap")
    real = os.path.join(lab.backing, "swap.img")
    out = subprocess.run(["blkid", "-o", "export", real], capture_output=True, text=True).stdout
    assert "TYPE=swap" in out and "LABEL=labswap" in out
    if shutil.which("file"):
        assert "Linux swap file" in subprocess.run(["file", real], capture_output=True, text=True).stdout


def test_mkswap_never_overwrites_a_file_that_is_not_swap(fs):     # pyfakefs
    fs.create_file("/data/precious", contents="keep me")
    with pytest.raises(FileExistsError):
        mkswap("/data/precious", 16 * PAGE)
    assert open("/data/precious").read() == "keep me"
    mkswap("/data/swap", 16 * PAGE)
    mkswap("/data/swap", 32 * PAGE)          # an existing swap file may be re-made
    assert os.path.getsize("/data/swap") == 32 * PAGE
    mkswap("/data/precious", 16 * PAGE, force=True)
    with open("/data/precious", "rb") as f:
        assert SwapHeader.unpack(f.read(PAGE)).slots == 15
