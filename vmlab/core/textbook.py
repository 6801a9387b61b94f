"""The textbook replacement policies beyond clock, FIFO, LRU and random,
each as its definition gives it, on the one Policy interface (so each runs
in a Machine as in ``vmlab trace``). Time is virtual: one unit per
reference (access).

    ``tick``  accesses between clock ticks (NRU, NFU, aging, working set);
              default TICK
    ``tau``   the working-set window, in accesses (working set, WSClock);
              default TAU

References: A. S. Tanenbaum and H. Bos, *Modern Operating Systems*, 4th ed.,
section 3.4 ("MOS"); R. H. Arpaci-Dusseau and A. C. Arpaci-Dusseau,
*Operating Systems: Three Easy Pieces*, chapter 22 ("OSTEP").
"""

from __future__ import annotations

from typing import Any, Sequence

from vmlab.core.policy import Lru, Policy, under_the_hand

TICK = 100
TAU = 500


class _Timed(Policy):
    """A policy with a virtual clock (``now``: accesses so far) and the
    ``tick``/``tau`` options."""

    OPTIONS = ("tick", "tau")
    wants_touch = True

    def __init__(self, frames: int = 0, seed: int = 0, tick: int | None = None,
                 tau: int | None = None) -> None:
        super().__init__(frames, seed)
        self.tick_every = tick or TICK
        self.tau = tau or TAU
        self.now = 0

    def touched(self, frame: Any) -> None:
        self.now += 1


class SecondChance(Policy):
    """Second chance (MOS 3.4.4): FIFO, but the oldest page, if its R bit is
    set, has the bit cleared and goes to the back as if just loaded."""

    name = "second-chance"

    def __init__(self, frames: int = 0, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.queue: list[Any] = []

    def loaded(self, frame: Any) -> None:
        self.queue.append(frame)

    def released(self, frame: Any) -> None:
        self.queue.remove(frame)

    def victim(self, candidates: Sequence[Any]) -> Any:
        allowed = set(candidates)
        for _ in range(2 * len(self.queue) + 1):
            frame = next(f for f in self.queue if f in allowed)
            if not frame.referenced:
                return frame
            frame.referenced = False
            self.queue.remove(frame)
            self.queue.append(frame)
        return candidates[0]


class Nru(_Timed):
    """Not recently used (MOS 3.4.2): R bits are cleared at every tick; evict
    a page at random from the lowest non-empty class, class 0 = not
    referenced, not modified; 1 = not referenced, modified; 2 = referenced,
    not modified; 3 = referenced, modified."""

    name = "nru"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: set[Any] = set()

    def loaded(self, frame: Any) -> None:
        self.frames.add(frame)

    def released(self, frame: Any) -> None:
        self.frames.discard(frame)

    def tick(self) -> None:
        for f in self.frames:
            f.referenced = False

    def victim(self, candidates: Sequence[Any]) -> Any:
        lowest = min(2 * f.referenced + f.dirty for f in candidates)
        return self.rng.choice([f for f in candidates if 2 * f.referenced + f.dirty == lowest])


class Nfu(_Timed):
    """Not frequently used (MOS 3.4.7): at every tick each page's counter
    gains its R bit, then R is cleared; evict the lowest counter (the first
    in frame order on a tie). A loaded page starts at 0."""

    name = "nfu"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count: dict[Any, int] = {}

    def loaded(self, frame: Any) -> None:
        self.count[frame] = 0

    def released(self, frame: Any) -> None:
        self.count.pop(frame, None)

    def tick(self) -> None:
        for f in self.count:
            self.count[f] = self._age(self.count[f], f.referenced)
            f.referenced = False

    @staticmethod
    def _age(counter: int, referenced: bool) -> int:
        return counter + referenced

    def victim(self, candidates: Sequence[Any]) -> Any:
        return min(candidates, key=lambda f: self.count[f])


class Aging(Nfu):
    """Aging (MOS 3.4.7): NFU with 8-bit counters that forget: at every tick
    each counter shifts right by one and takes its page's R bit in the
    leftmost place, then R is cleared; evict the lowest counter."""

    name = "aging"

    @staticmethod
    def _age(counter: int, referenced: bool) -> int:
        return (counter >> 1) | (referenced << 7)


class WorkingSet(_Timed):
    """Working set (MOS 3.4.8): every tick, referenced pages have their time
    of last use set to now and R cleared. On a fault, scanning the frames: a
    referenced page has its time set to now and stays; the first
    unreferenced page older than ``tau`` goes; failing that, the oldest
    unreferenced page; if every page was referenced, a clean one (else the
    first)."""

    name = "working-set"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_use: dict[Any, int] = {}

    def loaded(self, frame: Any) -> None:
        self.last_use[frame] = self.now

    def released(self, frame: Any) -> None:
        self.last_use.pop(frame, None)

    def tick(self) -> None:
        for f in self.last_use:
            if f.referenced:
                self.last_use[f] = self.now
                f.referenced = False

    def victim(self, candidates: Sequence[Any]) -> Any:
        oldest = None
        for f in candidates:
            if f.referenced:
                self.last_use[f] = self.now
            elif self.now - self.last_use[f] > self.tau:
                return f
            elif oldest is None or self.last_use[f] < self.last_use[oldest]:
                oldest = f
        if oldest is not None:
            return oldest
        return next((f for f in candidates if not f.dirty), candidates[0])


class WsClock(WorkingSet):
    """WSClock (MOS 3.4.9): the frames in a circle and a hand. At the hand,
    a referenced page has R cleared and its time set to now; an unreferenced
    page older than ``tau`` goes if clean; if dirty, its write is scheduled
    and the hand moves on (when the hand comes back to it, the write is done
    and it goes). After a full turn with no write scheduled, the first clean
    page goes, else the page at the hand."""

    name = "wsclock"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hand = 0
        self.scheduled: set[Any] = set()

    def released(self, frame: Any) -> None:
        super().released(frame)
        self.scheduled.discard(frame)

    def victim(self, candidates: Sequence[Any]) -> Any:
        for f in under_the_hand(self, candidates):
            if f.referenced:
                f.referenced = False
                self.last_use[f] = self.now
            elif self.now - self.last_use[f] > self.tau:
                if not f.dirty or f in self.scheduled:
                    return f
                self.scheduled.add(f)
        if self.scheduled & set(candidates):
            return next(f for f in candidates if f in self.scheduled)
        at_hand = next((f for f in candidates if f.index == self.hand), candidates[0])
        return next((f for f in candidates if not f.dirty), at_hand)


class Mru(Lru):
    """Most recently used (OSTEP 22's MRU): evict the page used last; LRU's
    order, read from the other end."""

    name = "mru"

    def victim(self, candidates: Sequence[Any]) -> Any:
        allowed = set(candidates)
        return next(f for f in reversed(self.order) if f in allowed)


TEXTBOOK = (SecondChance, Nru, Nfu, Aging, WorkingSet, WsClock, Mru)
