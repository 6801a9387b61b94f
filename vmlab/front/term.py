"""Rendering for people and for pipes. Every view is built as rows of text
first; ``rich`` draws them on a terminal, plain columns do everywhere else
(CI, pipes, ``NO_COLOR``)."""

from __future__ import annotations

import os
import sys
from typing import Sequence, TextIO


def fancy(stream: TextIO | None = None) -> bool:
    """Use rich: a terminal, and neither NO_COLOR nor TERM=dumb."""
    stream = stream or sys.stdout
    return (stream.isatty() and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb")


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                right: Sequence[bool] | None = None) -> str:
    """
    >>> print(plain_table(["a", "bb"], [["x", "1"], ["yy", "22"]], right=[False, True]))
    a   bb
    x    1
    yy  22
    """
    right = right or [False] * len(headers)
    all_rows = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    return "\n".join("  ".join(c.rjust(w) if rj else c.ljust(w)
                               for c, w, rj in zip(r, widths, right)).rstrip()
                     for r in all_rows)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "",
                right: Sequence[bool] | None = None) -> None:
    if not fancy():
        if title:
            print(title)
        print(plain_table(headers, rows, right))
        return
    from rich.console import Console
    from rich.table import Table
    t = Table(title=title or None, title_justify="left")
    right = right or [False] * len(headers)
    for h, rj in zip(headers, right):
        t.add_column(h, justify="right" if rj else "left")
    for r in rows:
        t.add_row(*r)
    Console().print(t)
