"""Linux-format views of a process: /proc/PID/maps and smaps. The figures
come from ``memory_maps``; the rendering is plain text."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from vmlab.page import PAGE_SHIFT

if TYPE_CHECKING:
    from vmlab.process import Process

SMAPS_FIELDS = ("Size", "Rss", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                "Private_Dirty", "Swap")


def memory_maps(p: "Process") -> list[dict[str, Any]]:
    """Per mapping: addresses, perms, path and the smaps figures in KiB.

    Sample: ``[{'start': 0x10000000, 'end': 0x10002000, 'perms': 'rw-s',
    'path': '/mnt/lab/data.bin', 'Size': 8, 'Rss': 4, 'Shared_Clean': 0,
    'Shared_Dirty': 0, 'Private_Clean': 0, 'Private_Dirty': 4, 'Swap': 0}, ...]``
    """
    rows = []
    by_start = {}
    for v in sorted(p.vmas, key=lambda v: v.start):
        perms = "r" + ("w" if v.writable else "-") + ("x" if v.executable else "-") + \
                ("s" if v.shared else "p")
        path = f"[{v.kind}]" if v.kind == "stack" else (v.file.path if v.file else "")
        row = {"start": v.start, "end": v.end, "perms": perms, "offset": v.offset,
               "dev": f"{os.major(v.file.dev):02x}:{os.minor(v.file.dev):02x}" if v.file else "00:00",
               "inode": v.file.ino if v.file else 0, "path": path,
               **dict.fromkeys(SMAPS_FIELDS, 0)}
        row["Size"] = (v.end - v.start) >> 10
        rows.append(row)
        by_start[v.start] = row
    for vpn, pte in p.spt.items():
        v = p.find_vma(vpn << PAGE_SHIFT)
        if v is None:
            continue
        row = by_start[v.start]
        if pte.frame is not None:
            f = pte.frame
            row["Rss"] += 4
            share = "Shared" if len(f.rmap) > 1 else "Private"
            row[f"{share}_{'Dirty' if f.is_dirty() else 'Clean'}"] += 4
        elif pte.slot is not None:
            row["Swap"] += 4
    return rows


def _maps_line(r: dict[str, Any]) -> str:
    head = f"{r['start']:08x}-{r['end']:08x} {r['perms']} {r['offset']:08x} {r['dev']} {r['inode']}"
    return f"{head:<73}{r['path']}".rstrip() if r["path"] else head


def render_maps(p: "Process") -> str:
    return "".join(_maps_line(r) + "\n" for r in memory_maps(p))


def render_smaps(p: "Process") -> str:
    out = []
    for r in memory_maps(p):
        out.append(_maps_line(r))
        out += [f"{k + ':':<16}{r[k]:>8} kB" for k in SMAPS_FIELDS]
    return "\n".join(out) + "\n"
