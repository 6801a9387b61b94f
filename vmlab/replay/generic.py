"""Replay through the Policy interface: any policy, the user's included, on
a reference string. Slower than the built-ins' tight loops (``policies``),
and counting exactly what they count when the policy is the same."""

from __future__ import annotations

from typing import Any, Sequence

from vmlab.core.policy import Policy, access_hook
from vmlab.core.registry import make_policy


class Slot:
    """A frame as a policy sees it in a replay."""

    __slots__ = ("index", "page", "referenced", "dirty")

    def __init__(self, index: int) -> None:
        self.index, self.page, self.referenced, self.dirty = index, None, False, False

    def __repr__(self) -> str:
        return f"<frame {self.index}: page {self.page}{' R' if self.referenced else ''}{' D' if self.dirty else ''}>"


class Opt(Policy):
    """Belady's optimal (1966): evict the page whose next use is furthest in
    the future (never: furthest of all). It must be given the references."""

    name = "opt"
    wants_touch = True              # counts the references it has seen

    def __init__(self, frames: int = 0, seed: int = 0, refs: Sequence[int] = ()) -> None:
        super().__init__(frames, seed)
        n = len(refs)
        self._next = [n] * n
        last: dict[int, int] = {}
        for i in range(n - 1, -1, -1):
            self._next[i] = last.get(refs[i], n)
            last[refs[i]] = i
        self._pos = 0
        self._next_use: dict[Any, int] = {}

    def touched(self, frame: Any) -> None:
        self._next_use[frame.page] = self._next[self._pos]
        self._pos += 1

    def victim(self, candidates: Sequence[Any]) -> Any:
        return max(candidates, key=lambda f: self._next_use[f.page])


class PolicyReplay:
    """A replay under ``policy`` (a Policy, or a guarded one) on ``frames``
    frames, following the Machine's rules: frames fill in order; the
    referenced bit is set on load and every reference; touched() follows
    every reference, load included; the dirty bit is set by a store, and a
    page read back from swap is dirty too (its slot is freed on the read).
    ``feed`` it the references and their store flags in order."""

    def __init__(self, frames: int, policy: Any, step: Any = None) -> None:
        self.slots = [Slot(i) for i in range(frames)]
        self.where: dict[int, Slot] = {}
        self.in_swap: set[int] = set()      # pages evicted dirty: their only copy is in swap
        self.policy, self.step = policy, step
        self.used = self.faults = self.k = 0

    def feed(self, pages: Sequence[int], writes: Sequence[int]) -> None:
        """Replays the references; ``step(k, page, victim_page_or_None_or_False,
        slots)`` after each (False: a hit), for a view of every step."""
        where, slots, in_swap, step = self.where, self.slots, self.in_swap, self.step
        touch, policy = access_hook(self.policy), self.policy
        for p, w in zip(pages, writes):
            s = where.get(p)
            gone: Any = False
            if s is None:
                s, gone = self._load(p)
            s.referenced = True
            if w:
                s.dirty = True
            if touch is not None:
                touch(s)
            if step is not None:
                step(self.k, p, gone, slots[:self.used])
            self.k += 1

    def _load(self, p: int) -> tuple[Slot, Any]:
        """A miss on ``p``: a free slot, else the policy's victim; returns the
        slot and the page it held (None: it was free)."""
        self.faults += 1
        gone = None
        if self.used < len(self.slots):
            s = self.slots[self.used]
            self.used += 1
        else:
            s = self.policy.victim(self.slots)
            self.policy.released(s)
            gone = s.page
            del self.where[s.page]
            if s.dirty:
                self.in_swap.add(s.page)
        s.page, s.dirty = p, p in self.in_swap
        self.in_swap.discard(p)
        self.where[p] = s
        self.policy.loaded(s)
        return s, gone


def replay(pages: Sequence[int], writes: Sequence[int], frames: int, policy: Any,
           step: Any = None) -> int:
    """Faults of ``pages`` on ``frames`` frames under ``policy`` by the rules
    of PolicyReplay; ``step`` as its feed takes it."""
    r = PolicyReplay(frames, policy, step)
    r.feed(pages, writes)
    return r.faults


def replay_spec(spec: Any, pages: Sequence[int], writes: Sequence[int], frames: int,
                seed: int = 0, **options: Any) -> int:
    """``replay`` under a policy given as make_policy takes it (``opt``: the
    Opt class, given the references), with ``options`` (tick, tau); a
    user's runs guarded."""
    policy = (Opt(frames, seed, refs=pages) if spec == "opt"
              else make_policy(spec, frames, seed, **options))
    try:
        return replay(pages, writes, frames, policy)
    finally:
        if hasattr(policy, "close"):
            policy.close()


__all__ = ["Opt", "PolicyReplay", "Slot", "replay", "replay_spec"]
