"""Choosing a victim frame. One small interface, one class per policy.

The fault path tells a policy when a frame is ``loaded`` with a page and
``released``; LRU also wants every access (``touched``). ``victim`` picks a
frame among those that ``ok`` allows (not pinned, and, when swap is full,
not needing swap).
"""

from __future__ import annotations

import random
from typing import Callable, Iterable

from vmlab.core.frame import Frame

Ok = Callable[[Frame], bool]


class Policy:
    name = "?"
    wants_touch = False

    def __init__(self, frames: list[Frame], seed: int = 0) -> None:
        self.frames = frames

    def loaded(self, frame: Frame) -> None: ...

    def touched(self, frame: Frame) -> None: ...

    def released(self, frame: Frame) -> None: ...

    def victim(self, ok: Ok) -> Frame | None:
        raise NotImplementedError


class Clock(Policy):
    """Textbook one-bit second chance. The reference bit is the PTEs'
    accessed bits (set on load and on every access); the hand sweeps,
    clearing set bits, takes the first frame whose bit is clear, then moves
    one past it."""

    name = "clock"

    def __init__(self, frames: list[Frame], seed: int = 0) -> None:
        super().__init__(frames)
        self.hand = 0

    def victim(self, ok: Ok) -> Frame | None:
        n = len(self.frames)
        for _ in range(2 * n + 1):          # two sweeps clear every bit
            f = self.frames[self.hand]
            self.hand = (self.hand + 1) % n
            if not f.in_use() or not ok(f):
                continue
            if f.referenced():
                f.clear_referenced()
                continue
            return f
        return None


class _Ordered(Policy):
    """Frames in an order; the victim is the first ``ok`` one."""

    def __init__(self, frames: list[Frame], seed: int = 0) -> None:
        super().__init__(frames)
        self.order: dict[Frame, None] = {}

    def loaded(self, frame: Frame) -> None:
        self.order.pop(frame, None)
        self.order[frame] = None

    def released(self, frame: Frame) -> None:
        self.order.pop(frame, None)

    def victim(self, ok: Ok) -> Frame | None:
        return next((f for f in self.order if ok(f)), None)


class Fifo(_Ordered):
    """The frame loaded longest ago."""

    name = "fifo"


class Lru(_Ordered):
    """The frame used longest ago (every access moves it to the back)."""

    name = "lru"
    wants_touch = True

    def touched(self, frame: Frame) -> None:
        order = self.order
        del order[frame]
        order[frame] = None


class Random(Policy):
    """A uniformly chosen frame; seeded, so runs repeat."""

    name = "random"

    def __init__(self, frames: list[Frame], seed: int = 0) -> None:
        super().__init__(frames)
        self.rng = random.Random(seed)

    def victim(self, ok: Ok) -> Frame | None:
        candidates = [f for f in self.frames if f.in_use() and ok(f)]
        return self.rng.choice(candidates) if candidates else None


POLICIES: dict[str, type[Policy]] = {p.name: p for p in (Clock, Fifo, Lru, Random)}


def make_policy(name: str, frames: Iterable[Frame], seed: int = 0) -> Policy:
    if name == "opt":
        raise ValueError("opt needs to know the future: use it with 'vmlab trace'")
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}: use one of {', '.join(POLICIES)}")
    return POLICIES[name](list(frames), seed)
