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


def replay(pages: Sequence[int], writes: Sequence[int], frames: int, policy: Any,
           step: Any = None) -> int:
    """Faults of ``pages`` on ``frames`` frames under ``policy`` (a Policy, or
    a guarded one), following the Machine's rules: frames fill in order; the
    referenced bit is set on load and every reference; touched() follows
    every reference, load included; the dirty bit is set by a store, and a
    page read back from swap is dirty too (its slot is freed on the read).
    ``step(k, page, victim_page_or_None_or_False, slots)`` after each
    reference (False: a hit), for a view of every step."""
    slots = [Slot(i) for i in range(frames)]
    where: dict[int, Slot] = {}
    in_swap: set[int] = set()           # pages evicted dirty: their only copy is in swap
    used = faults = 0
    touch = access_hook(policy)
    loaded, released, victim = policy.loaded, policy.released, policy.victim
    for k, (p, w) in enumerate(zip(pages, writes)):
        s = where.get(p)
        gone: Any = False
        if s is None:
            faults += 1
            gone = None
            if used < frames:
                s = slots[used]
                used += 1
            else:
                s = victim(slots)
                released(s)
                gone = s.page
                del where[s.page]
                if s.dirty:
                    in_swap.add(s.page)
            s.page, s.dirty = p, p in in_swap
            in_swap.discard(p)
            where[p] = s
            loaded(s)
        s.referenced = True
        if w:
            s.dirty = True
        if touch is not None:
            touch(s)
        if step is not None:
            step(k, p, gone, slots[:used])
    return faults


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


__all__ = ["Opt", "Slot", "replay", "replay_spec"]
