"""Policy-only replay of a reference string: fault counts by the classic
definitions (fifo, lru, opt as in OSTEP's paging-policy simulator; clock as
the textbook one-bit second chance; random, seeded). Each is one tight loop
over the references, fed a chunk at a time so that a trace of any length
streams through it; opt is fed each reference's next use as well (see
``next_use``), so a miss costs a heap operation, not a scan of the future.
"""

from __future__ import annotations

import heapq
import random as _random
from collections import OrderedDict, deque
from typing import Any, Callable, Iterable, Sequence

import numpy as np

Replay = Callable[[Sequence[int], int, int], int]   # (references, frames, seed) -> faults


class Replayer:
    """One policy at one frame count; ``feed`` it the references in order,
    then read ``faults``."""

    name = ""
    needs_future = False            # opt: feed(refs, nexts) with next_use()

    def __init__(self, frames: int, seed: int = 0) -> None:
        self.frames, self.faults = frames, 0

    def feed(self, refs: Iterable[int], extra: Any = None) -> None:
        raise NotImplementedError


class Fifo(Replayer):
    name = "fifo"

    def __init__(self, frames: int, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.resident: set[int] = set()
        self.queue: deque[int] = deque()

    def feed(self, refs: Iterable[int], extra: Any = None) -> None:
        resident, queue, frames, faults = self.resident, self.queue, self.frames, 0
        for p in refs:
            if p in resident:
                continue
            faults += 1
            if len(queue) == frames:
                resident.discard(queue.popleft())
            queue.append(p)
            resident.add(p)
        self.faults += faults


class Lru(Replayer):
    name = "lru"

    def __init__(self, frames: int, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.resident: OrderedDict[int, None] = OrderedDict()

    def feed(self, refs: Iterable[int], extra: Any = None) -> None:
        resident, frames, faults = self.resident, self.frames, 0
        move, evict = resident.move_to_end, resident.popitem
        for p in refs:
            if p in resident:
                move(p)
                continue
            faults += 1
            if len(resident) == frames:
                evict(last=False)
            resident[p] = None
        self.faults += faults


class Clock(Replayer):
    """Reference bit set on load and on every hit; frames fill in order;
    on a miss the hand clears set bits, replaces the first clear one and
    moves one past it."""

    name = "clock"

    def __init__(self, frames: int, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.where: dict[int, int] = {}
        self.pages, self.bits = [0] * frames, bytearray(frames)
        self.hand = self.used = 0

    def feed(self, refs: Iterable[int], extra: Any = None) -> None:
        where, pages, bits, frames = self.where, self.pages, self.bits, self.frames
        hand, used, faults = self.hand, self.used, 0
        for p in refs:
            i = where.get(p)
            if i is not None:
                bits[i] = 1
                continue
            faults += 1
            if used < frames:
                i = used
                used += 1
            else:
                while bits[hand]:
                    bits[hand] = 0
                    hand = hand + 1 if hand + 1 < frames else 0
                i = hand
                del where[pages[i]]
                hand = hand + 1 if hand + 1 < frames else 0
            pages[i] = p
            bits[i] = 1
            where[p] = i
        self.hand, self.used, self.faults = hand, used, self.faults + faults


class Random(Replayer):
    name = "random"

    def __init__(self, frames: int, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.rng = _random.Random(seed)
        self.where: dict[int, int] = {}
        self.pages: list[int] = []

    def feed(self, refs: Iterable[int], extra: Any = None) -> None:
        where, pages, frames, pick, faults = self.where, self.pages, self.frames, self.rng.randrange, 0
        for p in refs:
            if p in where:
                continue
            faults += 1
            if len(pages) < frames:
                where[p] = len(pages)
                pages.append(p)
            else:
                i = pick(frames)
                del where[pages[i]]
                pages[i] = p
                where[p] = i
        self.faults += faults


class Opt(Replayer):
    """Belady's optimal: evict the page used furthest in the future. Fed
    each reference's next use (a numpy chunk of ``next_use``), all distinct.

    A max-heap holds every next use pushed; a page's entry goes stale when
    the page is referenced, that is when its next use becomes the past. So
    every stale entry lies below every live one (a resident's next use is
    still to come), and the top is always a live entry: the victim, with no
    check and no scan."""

    name = "opt"
    needs_future = True

    def __init__(self, frames: int, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.key: dict[int, int] = {}       # resident page -> -(its next use)
        self.owner: dict[int, int] = {}     # -(next use) -> its page
        self.heap: list[int] = []           # -(next use), a min-heap

    def feed(self, refs: Iterable[int], extra: Any = None) -> None:
        key, owner, heap, frames, faults = self.key, self.owner, self.heap, self.frames, 0
        push, pop = heapq.heappush, heapq.heappop
        limit = 4 * frames + 64             # past this, stale entries outnumber live ones
        for p, neg in zip(refs, np.negative(extra, dtype=np.int64).tolist()):
            if p not in key:
                faults += 1
                if len(key) == frames:
                    del key[owner[pop(heap)]]
            key[p] = neg
            owner[neg] = p
            push(heap, neg)
            if len(heap) > limit:           # keep the live entries only: each step costs
                heap[:] = key.values()      # log(frames), and owner stays O(frames)
                heapq.heapify(heap)
                owner = self.owner = {v: k for k, v in key.items()}
        self.faults += faults


def run_starts(pages: np.ndarray) -> np.ndarray:
    """Where each run of references to one page begins.

    >>> run_starts(np.array([1, 1, 2, 1, 1])).tolist()
    [0, 2, 3]
    """
    return np.flatnonzero(np.concatenate(([True], pages[1:] != pages[:-1]))) if len(pages) \
        else np.zeros(0, np.int64)


CHUNK = 1 << 18              # references next_use sorts at a time: its temporaries stay small


def next_use(pages: np.ndarray) -> np.ndarray:
    """Each reference's next reference to the same page, as an index, or
    ``len(pages) + i`` for never (i: the reference's own index, so that no
    two are equal); int32 where that fits. Worked backwards a chunk at a
    time, so the extra memory is one chunk's sort.

    >>> next_use(np.array([1, 2, 1, 3, 2])).tolist()
    [2, 4, 7, 8, 9]
    """
    n = len(pages)
    out = np.empty(n, np.int32 if 2 * n < 2**31 - 1 else np.int64)
    after: dict[int, int] = {}          # page -> its first reference in the part done
    for hi in range(n, 0, -CHUNK):
        lo = max(0, hi - CHUNK)
        order = np.argsort(pages[lo:hi], kind="stable")
        s = pages[lo:hi][order]
        same = s[1:] == s[:-1]
        nxt = np.empty(hi - lo, np.int64)
        nxt[order[:-1]] = np.where(same, order[1:] + lo, 0)
        last = np.flatnonzero(np.append(~same, True))          # each page's last in this part
        first = np.flatnonzero(np.insert(~same, 0, True))      # and its first
        keys = s[last].tolist()
        nxt[order[last]] = [after.get(p, -1) for p in keys]
        after.update(zip(keys, (order[first] + lo).tolist()))
        never = np.flatnonzero(nxt < 0)
        nxt[never] = n + lo + never
        out[lo:hi] = nxt
    return out


REPLAYERS: dict[str, type[Replayer]] = {c.name: c for c in (Fifo, Lru, Opt, Clock, Random)}


def _whole(cls: type[Replayer]) -> Replay:
    def run(refs: Sequence[int], frames: int, seed: int = 0) -> int:
        r = cls(frames, seed)
        refs = list(refs)
        r.feed(refs, next_use(np.array(refs, np.int64)) if cls.needs_future else None)
        return r.faults
    run.__name__ = run.__qualname__ = cls.name
    run.__doc__ = f"Faults of ``refs`` on ``frames`` frames under {cls.name}."
    return run


fifo, lru, opt, clock, random = (_whole(REPLAYERS[n]) for n in ("fifo", "lru", "opt", "clock", "random"))
POLICIES: dict[str, Replay] = {"fifo": fifo, "lru": lru, "opt": opt, "clock": clock,
                               "random": random}
