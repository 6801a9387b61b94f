"""Policy-only replay of a reference string: fault counts by the classic
definitions (fifo, lru, opt as in OSTEP's paging-policy simulator; clock as
the textbook one-bit second chance; random, seeded). Each is one tight loop
over the references; opt precomputes every reference's next use so a miss
costs a heap operation, not a scan of the future.
"""

from __future__ import annotations

import heapq
import random as _random
from collections import OrderedDict, deque
from typing import Callable, Sequence

Replay = Callable[[Sequence[int], int, int], int]   # (references, frames, seed) -> faults


def fifo(refs: Sequence[int], frames: int, seed: int = 0) -> int:
    """
    >>> fifo([1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5], 3), fifo([1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5], 4)
    (9, 10)
    """
    resident: set[int] = set()
    queue: deque[int] = deque()
    faults = 0
    for p in refs:
        if p in resident:
            continue
        faults += 1
        if len(queue) == frames:
            resident.discard(queue.popleft())
        queue.append(p)
        resident.add(p)
    return faults


def lru(refs: Sequence[int], frames: int, seed: int = 0) -> int:
    resident: OrderedDict[int, None] = OrderedDict()
    move, faults = resident.move_to_end, 0
    for p in refs:
        if p in resident:
            move(p)
            continue
        faults += 1
        if len(resident) == frames:
            resident.popitem(last=False)
        resident[p] = None
    return faults


def opt(refs: Sequence[int], frames: int, seed: int = 0) -> int:
    """Belady's optimal: evict the page used furthest in the future."""
    n = len(refs)
    never = n                           # "not used again" sorts after every index
    nxt = [never] * n
    last: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        p = refs[i]
        nxt[i] = last.get(p, never)
        last[p] = i
    resident: dict[int, int] = {}       # page -> its next use
    heap: list[tuple[int, int]] = []    # (-next use, page); stale entries skipped
    push, pop, faults = heapq.heappush, heapq.heappop, 0
    limit = 4 * frames + 64             # past this, stale entries outnumber live ones
    for i, p in enumerate(refs):
        nu = nxt[i]
        if p not in resident:
            faults += 1
            if len(resident) == frames:
                while True:
                    neg, q = pop(heap)
                    if resident.get(q) == -neg:
                        break
                del resident[q]
        resident[p] = nu
        push(heap, (-nu, p))
        if len(heap) > limit:           # rebuild from the live entries: the heap stays
            heap = [(-n, q) for q, n in resident.items()]   # O(frames), so each step
            heapq.heapify(heap)                             # costs log(frames), not log(refs)
    return faults


def clock(refs: Sequence[int], frames: int, seed: int = 0) -> int:
    """Reference bit set on load and on every hit; frames fill in order;
    on a miss the hand clears set bits, replaces the first clear one and
    moves one past it."""
    where: dict[int, int] = {}
    pages = [0] * frames
    bits = bytearray(frames)
    hand = used = faults = 0
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
    return faults


def random(refs: Sequence[int], frames: int, seed: int = 0) -> int:
    rng = _random.Random(seed)
    where: dict[int, int] = {}
    pages: list[int] = []
    faults = 0
    for p in refs:
        if p in where:
            continue
        faults += 1
        if len(pages) < frames:
            where[p] = len(pages)
            pages.append(p)
        else:
            i = rng.randrange(frames)
            del where[pages[i]]
            pages[i] = p
            where[p] = i
    return faults


POLICIES: dict[str, Replay] = {"fifo": fifo, "lru": lru, "opt": opt, "clock": clock,
                               "random": random}
