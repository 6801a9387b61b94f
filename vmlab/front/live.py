"""Watching a Machine while it runs: a sampling thread that prints a
``vmstat 1``-style line every interval, or redraws the frame table and the
counters (rich on a terminal; plain snapshots otherwise)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from vmlab.front.term import fancy
from vmlab.core.views import VMSTAT_HEAD, frame_table, render_frames, vmstat_line

KIND_STYLE = {"free": "dim", "anon": "green", "file": "blue"}


class Watcher:
    """``with Watcher(m, interval, mode):`` where mode is ``vmstat`` or ``live``."""

    def __init__(self, machine, interval: float, mode: str, out=None) -> None:
        self.m, self.interval, self.mode = machine, interval, mode
        self.out = out or sys.stdout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vmlab-watch", daemon=True)

    def __enter__(self) -> "Watcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        if self.mode == "vmstat":
            self._vmstat()
        elif fancy(self.out):
            self._rich_live()
        else:
            self._plain_live()

    def _vmstat(self) -> None:
        print("\n".join(VMSTAT_HEAD), file=self.out, flush=True)
        prev, t0 = self.m.vmstat(), time.monotonic()
        while not self._stop.wait(self.interval):
            cur, t1 = self.m.vmstat(), time.monotonic()
            print(vmstat_line(prev, cur, t1 - t0), file=self.out, flush=True)
            prev, t0 = cur, t1
        cur, t1 = self.m.vmstat(), time.monotonic()     # the last partial interval
        print(vmstat_line(prev, cur, t1 - t0), file=self.out, flush=True)

    def _counters(self) -> str:
        s = self.m.vmstat()
        return (f"pgfault {s['pgfault']}  pgmajfault {s['pgmajfault']}  pswpin {s['pswpin']}  "
                f"pswpout {s['pswpout']}  evictions {s['evictions']}  writebacks {s['writebacks']}  "
                f"free {s['nr_free_frames']}/{s['nr_frames']}  swap {s['swap_used']}/{s['swap_slots']}")

    def _plain_live(self) -> None:
        while not self._stop.wait(self.interval):
            print(f"--- frames at {time.strftime('%H:%M:%S')} ---\n{render_frames(frame_table(self.m.frames))}\n"
                  f"{self._counters()}", file=self.out, flush=True)

    def _rich_live(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.table import Table
        from rich.text import Text

        def render() -> Any:
            grid = Table.grid(padding=(0, 1))
            per_row = 8
            rows = frame_table(self.m.frames)
            for i in range(0, len(rows), per_row):
                cells = []
                for r in rows[i:i + per_row]:
                    style = KIND_STYLE[r["kind"]] + (" bold" if r["accessed"] else "") + \
                        (" reverse" if r["dirty"] else "") + (" underline" if r["users"] > 1 else "")
                    cells.append(Text(f"{r['frame']:>3} {r['owner'] or '.':<8}", style=style))
                grid.add_row(*cells)
            legend = Text("green anon, blue file, dim free; bold = accessed, reverse = dirty, "
                          "underline = shared", style="dim")
            return Group(grid, Text(self._counters()), legend)

        with Live(render(), console=Console(file=self.out), refresh_per_second=10) as live:
            while not self._stop.wait(min(self.interval, 0.1)):
                live.update(render())
            live.update(render())
