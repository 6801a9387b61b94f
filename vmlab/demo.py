"""``vmlab demo``: what the lab filesystem sees of page-ins and write-backs.

Until the VM core lands this shows the layer everything rests on: a swap
device and a kernel mmap on a fresh embedded mount, each page one request.
"""

from __future__ import annotations

import mmap
import os
import statistics

import fs
from swapdisk import PAGE, SwapDisk
from vmlab.fsview import render_stat

SWAP_PAGES = 16
MAPPED_PAGES = 32


def _durations_us(lines: list[str], op: str, path: str) -> list[int]:
    out = []
    for line in lines:
        f = line.split()
        if len(f) == 7 and f[1] == op and f[2] == path:
            out.append(int(f[5].removesuffix("us")))
    return out


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(latency: str = "none") -> int:
    with fs.mount(latency=latency) as m:
        _say(f"lab filesystem mounted at {m.path} (type {fs.FSTYPE}, latency {latency}, "
             f"daemon pid {m.pid})")
        swap_demo(m)
        mmap_demo(m)
        _say("\nwhat the filesystem counted (.vmlab/stats and .vmlab/files):")
        stats = {k: v for k, v in m.stats().items() if not k.startswith("op_")}
        _say(render_stat(stats, m.files()))
        log = m.iolog()
        _say("\nrequest cost as the daemon measured it (median / max, from .vmlab/iolog):")
        for op, path in (("read", "/swap.img"), ("write", "/swap.img"), ("read", "/data.bin"),
                         ("write", "/data.bin")):
            d = _durations_us(log, op, path)
            if d:
                _say(f"  {op:<5} {path:<10} {len(d):>3} requests  "
                     f"{statistics.median(d):>7.0f} us / {max(d):>6} us")
        _say("\nlast lines of .vmlab/iolog:")
        for line in log[-4:]:
            _say("  " + line)
    _say(f"\nunmounted {m.path}; nothing is left mounted.")
    return 0


def swap_demo(m: fs.Mount) -> None:
    path = os.path.join(m.path, "swap.img")
    with SwapDisk.create(path, (SWAP_PAGES + 1) * PAGE) as disk:
        frames = mmap.mmap(-1, SWAP_PAGES * PAGE)     # page-aligned, like RAM
        view = memoryview(frames)
        for i in range(SWAP_PAGES):
            view[i * PAGE:(i + 1) * PAGE] = bytes([i]) * PAGE
        before = m.files()["/swap.img"]
        slots = []
        for i in range(SWAP_PAGES):
            slot = disk.alloc()
            disk.write(slot, view[i * PAGE:(i + 1) * PAGE])
            slots.append(slot)
        frames.write(bytes(len(frames)))               # forget RAM
        for i, slot in enumerate(slots):
            disk.read(slot, view[i * PAGE:(i + 1) * PAGE])
            disk.free(slot)
        ok = all(view[i * PAGE] == i for i in range(SWAP_PAGES))
        after = m.files()["/swap.img"]
        del view
        frames.close()
        _say(f"\nswap: {SWAP_PAGES} pages out and back in through {path}")
        _say(f"  swap device: writes {disk.writes}, reads {disk.reads}; "
             f"filesystem saw writes {after.writes - before.writes}, "
             f"reads {after.reads - before.reads}; data {'intact' if ok else 'CORRUPT'}")
        _say("  " + disk.swaps_line(header=True).replace("\n", "\n  "))
    if not ok:
        raise RuntimeError("swap round trip returned wrong data")


def mmap_demo(m: fs.Mount) -> None:
    with open(os.path.join(m.backing, "data.bin"), "wb") as f:
        f.write(b"".join(bytes([i]) * PAGE for i in range(MAPPED_PAGES)))
    fd = os.open(os.path.join(m.path, "data.bin"), os.O_RDWR)
    try:
        with mmap.mmap(fd, MAPPED_PAGES * PAGE, mmap.MAP_SHARED) as mm:
            before = m.files().get("/data.bin", fs.FileCounts())
            touched = range(0, MAPPED_PAGES, 2)
            ok = all(mm[i * PAGE] == i for i in touched)
            dirty = range(0, MAPPED_PAGES, 8)
            for i in dirty:
                mm[i * PAGE] = 255
            mm.flush()
            after = m.files()["/data.bin"]
    finally:
        os.close(fd)
    _say(f"\nkernel mmap(MAP_SHARED) of {MAPPED_PAGES} pages through the mount: "
         f"touched {len(touched)}, dirtied {len(dirty)}, msync")
    _say(f"  filesystem saw reads {after.reads - before.reads} "
         f"(one per page fault), writes {after.writes - before.writes} (one per dirty page); "
         f"data {'intact' if ok else 'CORRUPT'}")
    if not ok:
        raise RuntimeError("mmap through the mount returned wrong data")
