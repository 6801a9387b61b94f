"""Replacement policies: one public interface, and the built-ins written on it.

A policy is told what happens to frames and, when memory is full, picks the
victim. Each frame it is given has ``index``, ``page`` (a hashable identity
of what it holds), ``referenced`` (a bool the policy may clear) and
``dirty``. The calls:

    loaded(frame)       a page was just put in ``frame``
    touched(frame)      ``frame`` was accessed (only if ``wants_touch``)
    released(frame)     ``frame`` was emptied (evicted, or its page freed)
    tick()              every ``tick_every`` accesses (0: never), for NRU, aging
    victim(candidates)  return one of ``candidates``: the frames that may be
                        evicted now, each holding a page (a sequence, in
                        frame-table order)

The same class runs in ``Machine(policy=...)``, in ``vmlab trace`` and in
``vmlab run``. The policies by name, the loading of a user's and the guard
it runs in are in ``vmlab.core.registry``; the textbook set beyond these
four in ``vmlab.core.textbook``.
"""

from __future__ import annotations

import bisect
import random
from operator import attrgetter
from typing import Any, Iterator, Sequence


_INDEX = attrgetter("index")


class Policy:
    """Base of every replacement policy. Subclass it, override what you need.

    >>> class MyFifo(Policy):
    ...     def __init__(self, *args, **kwargs):
    ...         super().__init__(*args, **kwargs)
    ...         self.order = []
    ...     def loaded(self, frame):
    ...         self.order.append(frame.index)
    ...     def released(self, frame):
    ...         self.order.remove(frame.index)
    ...     def victim(self, candidates):
    ...         allowed = {f.index: f for f in candidates}
    ...         return next(allowed[i] for i in self.order if i in allowed)
    """

    name = ""               # shown in errors and tables; the class name, lower case, if empty
    wants_touch = False     # call touched() on every access
    tick_every = 0          # call tick() every so many accesses (0: never)

    def __init__(self, frames: int = 0, seed: int = 0) -> None:
        """``frames``: how many the machine has; ``seed`` for ``self.rng``."""
        self.nframes = frames
        self.rng = random.Random(seed)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__.lower()

    def loaded(self, frame: Any) -> None:
        """A page was just put in ``frame``."""

    def touched(self, frame: Any) -> None:
        """``frame`` was accessed (called only if ``wants_touch``)."""

    def released(self, frame: Any) -> None:
        """``frame`` was emptied."""

    def tick(self) -> None:
        """Another ``tick_every`` accesses went by."""

    def victim(self, candidates: Sequence[Any]) -> Any:
        """One of ``candidates`` to evict."""
        raise NotImplementedError(f"{type(self).__name__} has no victim()")


class Clock(Policy):
    """Textbook one-bit second chance (Corbató 1968; Tanenbaum, *Modern
    Operating Systems*, 3.4.5): the reference bit is set on load and on
    every access; the hand sweeps, clearing set bits, takes the first frame
    whose bit is clear, then moves one past it."""

    name = "clock"

    def __init__(self, frames: int = 0, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.hand = 0

    def victim(self, candidates: Sequence[Any]) -> Any:
        for f in under_the_hand(self, candidates):
            if not f.referenced:
                return f
            f.referenced = False
        return candidates[0]


def under_the_hand(policy: Any, candidates: Sequence[Any]) -> Iterator[Any]:
    """The candidates a clock hand (``policy.hand``, a frame index) passes,
    moving one frame at a time for two full turns and one frame more (two
    turns clear every reference bit); frames not evictable are passed over.
    The candidates come in frame-table order, so the first the hand reaches
    is found by bisection: no map to build, however many frames."""
    n, m, start = policy.nframes, len(candidates), policy.hand
    if not m:
        return
    i = bisect.bisect_left(candidates, start, key=_INDEX) % m
    # Two turns pass each candidate twice, and the one at the hand a third time.
    for k in range(2 * m + (candidates[i].index == start)):
        f = candidates[(i + k) % m]
        policy.hand = (f.index + 1) % n
        yield f
    policy.hand = (start + 1) % n       # where 2n + 1 steps of the hand end


class Fifo(Policy):
    """The frame loaded longest ago (first in, first out)."""

    name = "fifo"

    def __init__(self, frames: int = 0, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.order: dict[Any, None] = {}

    def loaded(self, frame: Any) -> None:
        self.order.pop(frame, None)
        self.order[frame] = None

    def released(self, frame: Any) -> None:
        self.order.pop(frame, None)

    def victim(self, candidates: Sequence[Any]) -> Any:
        if len(candidates) == len(self.order):
            return next(iter(self.order))       # every page may go: no set to build
        allowed = set(candidates)
        return next(f for f in self.order if f in allowed)


class Lru(Fifo):
    """The frame used longest ago (every access moves it to the back)."""

    name = "lru"
    wants_touch = True

    def touched(self, frame: Any) -> None:
        order = self.order
        del order[frame]
        order[frame] = None


class Random(Policy):
    """A uniformly chosen candidate; seeded, so runs repeat."""

    name = "random"

    def victim(self, candidates: Sequence[Any]) -> Any:
        return self.rng.choice(candidates)


def access_hook(policy: Any) -> Any:
    """What the MMU calls on every access: ``touched`` if the policy wants
    it, and ``tick`` every ``tick_every`` accesses; None if neither."""
    every, touched = policy.tick_every, policy.touched if policy.wants_touch else None
    if not every:
        return touched
    count = 0

    def touch(frame: Any) -> None:
        nonlocal count
        if touched is not None:
            touched(frame)
        count += 1
        if count >= every:
            count = 0
            policy.tick()
    return touch
