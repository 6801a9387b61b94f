"""``vmlab trace --explain``: every reference of a short string, as OSTEP's
``paging-policy.py -c`` shows it: hit or miss, the victim, and the pages
in memory in the policy's order (with reference bits where it uses them)."""

from __future__ import annotations

from typing import Any

from vmlab.core.registry import make_policy
from vmlab.replay.generic import Opt, replay

LIMIT = 5000            # references: past this, a per-reference view is no help
BITLESS = {"fifo", "lru", "mru", "opt", "random"}     # policies that never read R


def _resident(policy: Any, slots: list[Any]) -> tuple[str, list[str]]:
    """(what the order means, the pages in memory in the policy's order)."""
    inner = getattr(policy, "inner", policy)
    order = getattr(inner, "order", None) or getattr(inner, "queue", None) or getattr(inner, "used", None)
    label = {"lru": "LRU -> MRU", "mru": "LRU -> MRU"}.get(inner.name, "first in -> last in")
    bits = inner.name not in BITLESS
    if order:
        frames = [f for f in order if f in slots] if not isinstance(order, list) else order
        return label, [_page(f, bits) for f in frames]
    hand = getattr(inner, "hand", None)
    marks = [("> " if f.index == hand else "") + _page(f, bits) for f in slots]
    return "frames" + (", > the hand" if hand is not None else ""), marks


def _page(f: Any, bits: bool) -> str:
    return f"{f.page}" + ("(R)" if bits and f.referenced else "")


def explain(refs: list[int], writes: bytes, spec: str, frames: int, seed: int = 0,
            **options: Any) -> list[str]:
    """The lines for one policy and frame count, the summary line last."""
    policy = Opt(frames, seed, refs=refs) if spec == "opt" else make_policy(spec, frames, seed, **options)
    lines = [f"{policy.name}, {frames} frames"]

    def step(k: int, page: int, gone: Any, slots: list[Any]) -> None:
        label, pages = _resident(policy, slots)
        result = "hit " if gone is False else "MISS"
        victim = "-" if gone in (False, None) else str(gone)
        if k == 0:
            lines.append(f"{'#':>5} {'access':>7}  result  replaced  memory ({label})")
        lines.append(f"{k + 1:>5} {page:>7}  {result}    {victim:>8}  [{' '.join(pages)}]")
    try:
        faults = replay(refs, writes, frames, policy, step)
    finally:
        if hasattr(policy, "close"):
            policy.close()
    hits = len(refs) - faults
    lines.append(f"FINALSTATS hits {hits}   misses {faults}   hitrate {100 * hits / len(refs):.2f}")
    return lines
