"""Linux-format views: /proc/PID/maps and smaps of a process, a ``vmstat 1``
line and the frame table of a machine. Figures are collected first, then
rendered as plain text (``vmlab.front.live`` draws them with rich on a terminal)."""

from __future__ import annotations

import os
from typing import Any

from vmlab.core.frame import FrameTable
from vmlab.core.page import PAGE_KIB, PAGE_SHIFT, AddressSpace

SMAPS_FIELDS = ("Size", "Rss", "Shared_Clean", "Shared_Dirty", "Private_Clean",
                "Private_Dirty", "Swap")


def memory_maps(p: AddressSpace) -> list[dict[str, Any]]:
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
            row["Rss"] += PAGE_KIB
            share = "Shared" if len(f.rmap) > 1 else "Private"
            row[f"{share}_{'Dirty' if f.dirty else 'Clean'}"] += PAGE_KIB
        elif pte.slot is not None:
            row["Swap"] += PAGE_KIB
    return rows


def _maps_line(r: dict[str, Any]) -> str:
    head = f"{r['start']:08x}-{r['end']:08x} {r['perms']} {r['offset']:08x} {r['dev']} {r['inode']}"
    return f"{head:<73}{r['path']}".rstrip() if r["path"] else head


def render_maps(p: AddressSpace) -> str:
    return "".join(_maps_line(r) + "\n" for r in memory_maps(p))


def render_smaps(p: AddressSpace) -> str:
    out = []
    for r in memory_maps(p):
        out.append(_maps_line(r))
        out += [f"{k + ':':<16}{r[k]:>8} kB" for k in SMAPS_FIELDS]
    return "\n".join(out) + "\n"


# -- vmstat 1 ------------------------------------------------------------------

VMSTAT_HEAD = ("procs --memory (KiB)--- --swap (KiB/s)--- ---io (KiB/s)---- ---faults/s----",
               "    r     swpd     free       si       so       bi       bo      flt   majflt")


def vmstat_line(prev: dict[str, int], cur: dict[str, int], seconds: float) -> str:
    """One line like ``vmstat 1``: live processes, swap used and free memory
    in KiB, then per-second rates over the interval.

    >>> a = {"nr_processes": 1, "swap_used": 0, "nr_free_frames": 4, "pswpin": 0, "pswpout": 0,
    ...      "pgpgin": 0, "pgpgout": 0, "pgfault": 0, "pgmajfault": 0}
    >>> b = dict(a, swap_used=2, nr_free_frames=0, pswpout=2, pgpgout=8, pgfault=6, pgmajfault=0)
    >>> vmstat_line(a, b, 1.0)
    '    1        8        0        0        8        0        8        6        0'
    """
    rate = lambda k, unit=1: round((cur[k] - prev[k]) * unit / seconds) if seconds > 0 else 0
    vals = (cur["nr_processes"], cur["swap_used"] * 4, cur["nr_free_frames"] * 4,
            rate("pswpin", 4), rate("pswpout", 4), rate("pgpgin"), rate("pgpgout"),
            rate("pgfault"), rate("pgmajfault"))
    return " ".join(f"{v:>{8 if i else 5}}" for i, v in enumerate(vals))


# -- the frame table -------------------------------------------------------------

def frame_table(table: FrameTable) -> list[dict[str, Any]]:
    """One dict per frame: who maps it and its state. Safe to call from a
    sampling thread (it copies each reverse map before reading it).

    Sample: ``[{'frame': 0, 'owner': '1:10003', 'users': 1, 'kind': 'anon',
    'accessed': True, 'dirty': True}, {'frame': 1, 'owner': '', 'kind': 'free', ...}]``
    """
    rows = []
    for f in list(table.frames):
        users = list(f.rmap)
        if not users:
            rows.append({"frame": f.index, "owner": "", "users": 0, "kind": "free",
                         "accessed": False, "dirty": False})
            continue
        first = users[0]
        rows.append({"frame": f.index, "owner": f"{first.proc.pid}:{first.vpn:x}",
                     "users": len(users), "kind": "file" if f.file is not None else "anon",
                     "accessed": any(p.accessed for p in users),
                     "dirty": f.page_dirty or any(p.dirty for p in users)})
    return rows


def render_frames(rows: list[dict[str, Any]], per_line: int = 8) -> str:
    """Plain text: ``frame pid:vpn flags``, flags A(ccessed) D(irty) F(ile) S(hared).

    >>> print(render_frames([{"frame": 0, "owner": "1:10003", "users": 2, "kind": "anon",
    ...                       "accessed": True, "dirty": False}]))
      0 1:10003  A--S
    """
    cells = []
    for r in rows:
        flags = ("A" if r["accessed"] else "-") + ("D" if r["dirty"] else "-") + \
                ("F" if r["kind"] == "file" else "-") + ("S" if r["users"] > 1 else "-")
        cells.append(f"{r['frame']:>3} {r['owner'] or '.':<8} {flags if r['users'] else '    '}")
    return "\n".join("  ".join(cells[i:i + per_line]).rstrip() for i in range(0, len(cells), per_line))
