"""Sizes as people type them (``64M``), and as people read them (``64.0 MiB``)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(i?b)?", re.I)
_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}


def parse_size(text: str) -> int:
    """``64M``, ``4096``, ``1GiB`` to bytes (binary multiples).

    >>> parse_size("64M"), parse_size("4k"), parse_size("1GiB")
    (67108864, 4096, 1073741824)
    """
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"bad size {text!r}: use a number with an optional K, M, G or T")
    return int(m.group(1)) << _SHIFT[m.group(2).lower()]


def human_bytes(n: int) -> str:
    """
    >>> human_bytes(67104768), human_bytes(512)
    ('64.0 MiB', '512 B')
    """
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"
