"""The classic Pintos VM workloads, on vmlab's public API. Each verifies
its own data; run them with small --frames to watch eviction and swap."""

from __future__ import annotations

import hashlib
import os
import random
from functools import partial

from vmlab import Machine, Process

from .common import PAGE, check, fill, scenario, shuffle

MB = 1 << 20


@scenario("page-linear", frames=16)
def page_linear(m: Machine) -> list[str]:
    """Write 1 MiB in order, read it back, compare checksums."""
    p = m.spawn()
    size = MB
    a = p.mmap(None, 0x10000000, length=size)
    data = random.Random(3).randbytes(size)
    fill(p, a, data)
    check(hashlib.sha256(p.read(a, size)).digest() == hashlib.sha256(data).digest(),
          "read back differs from what was written")
    return [f"{size >> 10} KiB written and read back; sha256 matches"]


@scenario("page-parallel", frames=12)
def page_parallel(m: Machine) -> list[str]:
    """Four processes fill 256 KiB each, interleaved page by page."""
    size = 256 * 1024
    procs = [m.spawn() for _ in range(4)]
    datas = [random.Random(10 + i).randbytes(size) for i in range(4)]
    for p in procs:
        p.mmap(None, 0x10000000, length=size)
    for off in range(0, size, PAGE):
        for p, d in zip(procs, datas):
            p.write(0x10000000 + off, d[off:off + PAGE])
    for off in range(0, size, PAGE):
        for p, d in zip(procs, datas):
            check(p.read(0x10000000 + off, PAGE) == d[off:off + PAGE], f"pid {p.pid} lost a page")
    for p in procs:
        p.exit(0)
    return [f"4 processes x {size >> 10} KiB, interleaved; every page intact"]


def _child_sort(child: Process, where: str, path: str, offset: int, size: int) -> None:
    """A child sorts its chunk with a counting sort (Pintos child-sort):
    in anonymous memory, on its stack, or in place through mmap."""
    if where == "mm":
        a = child.mmap(path, 0x30000000, offset=offset, length=size)
    else:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read(size)
        if where == "stk":
            child.esp -= size
            a = child.esp
        else:
            a = child.mmap(None, 0x30000000, length=size)
        fill(child, a, chunk)
    hist = [0] * 256
    for i in range(0, size, PAGE):
        for b in child.read(a + i, PAGE):
            hist[b] += 1
    pos = 0
    for value, count in enumerate(hist):
        if count:
            child.write(a + pos, bytes([value]) * count)
            pos += count
    if where != "mm":
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(child.read(a, size))
    child.exit(0)


def _merge(m: Machine, where: str, parallel: bool) -> list[str]:
    size, chunks = 128 * 1024, 8
    csize = size // chunks
    data = random.Random(20).randbytes(size)
    path = os.path.join(m.lab, f"merge-{where}-{parallel}.bin")
    with open(path, "wb") as f:
        f.write(data)
    parent = m.spawn()
    kids = [m.spawn() for _ in range(chunks)] if parallel else [None] * chunks
    for i, kid in enumerate(kids):
        _child_sort(kid or m.spawn(), where, path, i * csize, csize)
    buf = parent.mmap(None, 0x10000000, length=size)
    with open(path, "rb") as f:
        fill(parent, buf, f.read())
    # Merge the sorted chunks out of the parent's memory, reading each chunk a
    # page at a time (as a buffered reader would: byte by byte across eight
    # chunks would fault on every byte once frames are fewer than chunks).
    pages = [parent.read(buf + c * csize, PAGE) for c in range(chunks)]
    heads, out = [0] * chunks, bytearray()
    while len(out) < size:
        value, c = min((pages[c][heads[c] % PAGE], c) for c in range(chunks) if heads[c] < csize)
        out.append(value)
        heads[c] += 1
        if heads[c] % PAGE == 0 and heads[c] < csize:
            pages[c] = parent.read(buf + c * csize + heads[c], PAGE)
    check(bytes(out) == bytes(sorted(data)), "the merged result is not sorted data")
    parent.exit(0)
    os.unlink(path)
    return [f"{chunks} children sorted {csize >> 10} KiB chunks ({'at once' if parallel else 'in turn'}, "
            f"{ {'bss': 'in anonymous memory', 'stk': 'on their stacks', 'mm': 'in place via mmap'}[where]}); "
            f"the parent merged {size >> 10} KiB correctly"]


MERGES = {   # name: (where children sort, all at once?, summary)
    "page-merge-seq": ("bss", False, "Children sort chunks one after another; the parent merges."),
    "page-merge-par": ("bss", True, "All children exist at once, each sorting a chunk; the parent merges."),
    "page-merge-stk": ("stk", False, "Children sort their chunks on the stack; the parent merges."),
    "page-merge-mm": ("mm", False, "Children sort their chunks in place through mmap; the parent merges."),
}
for _name, (_where, _parallel, _summary) in MERGES.items():
    scenario(_name, frames=10, summary=_summary)(partial(_merge, where=_where, parallel=_parallel))


@scenario("page-shuffle", frames=8)
def page_shuffle(m: Machine) -> list[str]:
    """Swap random bytes of 128 KiB of anonymous memory, compare with a model."""
    p = m.spawn()
    size = 128 * 1024
    a = p.mmap(None, 0x10000000, length=size)
    model = bytearray(range(256)) * (size // 256)
    fill(p, a, bytes(model))
    shuffle(p, a, model, random.Random(5), 300)
    check(p.read(a, size) == bytes(model), "shuffled memory differs from the model")
    return [f"300 random swaps over {size >> 10} KiB; memory equals the model"]


@scenario("mmap-shuffle", frames=6)
def mmap_shuffle(m: Machine) -> list[str]:
    """Swap random bytes of a 64 KiB shared file mapping; the file must match."""
    size = 64 * 1024
    with open(os.path.join(m.backing, "shuffle.bin"), "wb") as f:
        f.write(bytes(range(256)) * (size // 256))
    p = m.spawn()
    a = p.mmap(os.path.join(m.lab, "shuffle.bin"), 0x10000000)
    model = bytearray(range(256)) * (size // 256)
    shuffle(p, a, model, random.Random(9), 200)
    p.munmap(a)
    with open(os.path.join(m.backing, "shuffle.bin"), "rb") as f:
        check(f.read() == bytes(model), "the file differs from the model after munmap")
    check(m.vmstat()["pswpout"] == 0, "shared file pages went to swap")
    return [f"200 random swaps in a {size >> 10} KiB shared mapping; the file equals the model, "
            f"{m.vmstat()['writebacks']} write-backs, no swap"]


@scenario("thrash", frames=8)
def thrash(m: Machine) -> list[str]:
    """Three processes cycle through 12 pages each: watch pswpout climb as frames shrink."""
    procs = [m.spawn() for _ in range(3)]
    for p in procs:
        p.mmap(None, 0x10000000, length=12 * PAGE)
    for rnd in range(5):
        for i in range(12):
            for p in procs:
                p.write(0x10000000 + i * PAGE, bytes([p.pid, rnd]))
    for p in procs:
        check(all(p.read(0x10000000 + i * PAGE, 2) == bytes([p.pid, 4]) for i in range(12)),
              f"pid {p.pid} lost data")
    s = m.vmstat()
    return [f"3 x 12 pages, 5 rounds on {s['nr_frames']} frames: {s['pgmajfault']} major faults, "
            f"pswpout {s['pswpout']}"]
