"""Plain-text views of the lab filesystem's figures (``vmlab stat``)."""

from __future__ import annotations

from vmlab_fs.accounting import FileCounts

VMSTAT_COLUMNS = ("reads", "writes", "rKiB", "wKiB", "errors", "busy%", "h_reads", "h_writes")


def render_stat(stats: dict[str, int], files: dict[str, FileCounts]) -> str:
    """Counters, then one row per file, like ``/proc/vmstat`` then ``iotop``.

    >>> print(render_stat({"reads": 2, "writes": 0}, {"/swap.img": FileCounts(2, 0, 8192, 0)}))
    reads   2
    writes  0
    <BLANKLINE>
    path       reads  writes  read_bytes  write_bytes
    /swap.img      2       0        8192            0
    """
    width = max(map(len, stats), default=0)
    out = [f"{k:<{width}}  {v}" for k, v in stats.items()]
    if files:
        rows = [("path", "reads", "writes", "read_bytes", "write_bytes")]
        rows += [(p, str(f.reads), str(f.writes), str(f.read_bytes), str(f.write_bytes))
                 for p, f in files.items()]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        out.append("")
        for r in rows:
            out.append("  ".join([r[0].ljust(widths[0])] +
                                 [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip())
    return "\n".join(out)


def vmstat_header() -> str:
    return " ".join(f"{c:>8}" for c in VMSTAT_COLUMNS)


def render_host(pid: int, io: dict[str, int]) -> str:
    """The daemon's own I/O, as the host kernel counts it.

    >>> print(render_host(7, {"syscr": 9, "syscw": 8, "rchar": 90, "wchar": 80}))
    daemon pid 7, as the host kernel counts it (/proc/7/io): syscr 9  syscw 8  rchar 90  wchar 80
    """
    return (f"daemon pid {pid}, as the host kernel counts it (/proc/{pid}/io): "
            + "  ".join(f"{k} {v}" for k, v in io.items()))


def vmstat_line(prev: dict[str, int], cur: dict[str, int], seconds: float,
                host: dict[str, int] | None = None) -> str:
    """One ``vmstat 1``-style line of per-interval deltas (KiB as vmstat
    uses); ``host``: the pages the daemon moved in the interval, from the
    host kernel's count of its system calls (``h_reads``, ``h_writes``).

    >>> vmstat_line({"reads": 1, "read_bytes": 0}, {"reads": 3, "read_bytes": 8192}, 1.0,
    ...             {"reads": 2, "writes": 0})
    '       2        0        8        0        0        0        2        0'
    """
    d = {k: cur.get(k, 0) - prev.get(k, 0) for k in
         ("reads", "writes", "read_bytes", "write_bytes", "errors", "busy_us")}
    busy = 100 * d["busy_us"] / (seconds * 1e6) if seconds > 0 else 0
    host = host or {"reads": "-", "writes": "-"}
    vals = (d["reads"], d["writes"], d["read_bytes"] // 1024, d["write_bytes"] // 1024,
            d["errors"], round(min(busy, 100)), host["reads"], host["writes"])
    return " ".join(f"{v:>8}" for v in vals)
