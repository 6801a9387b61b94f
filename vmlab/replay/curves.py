"""Whole miss-ratio curves: the fault count at every frame count from 1 to
``K`` in one pass for the stack algorithms (Mattson, Gecsei, Slutz and
Traiger, "Evaluation techniques for storage hierarchies", IBM Systems
Journal 9(2), 1970), per frame count for the rest.

LRU: a reference hits in k frames iff its stack distance, the number of
different pages since the last reference to its page plus one, is at most
k. OPT: Mattson's priority stack, the priority being the next use.
"""

from __future__ import annotations

import os
from array import array
from typing import Any

import numpy as np

from vmlab.replay.policies import next_use, run_starts

SHALLOW = 16                # a stack update this deep is a Python loop; deeper, numpy's


def fold(pages: np.ndarray) -> np.ndarray:
    """``pages`` with each run of one page cut to its first reference; the
    rest are hits at distance 1, in every size, under every stack policy."""
    return pages[run_starts(pages)]


def lru_curve(pages: np.ndarray, k_max: int) -> np.ndarray:
    """``faults[k - 1]``, the LRU fault count in ``k`` frames, for every k in
    1..k_max, from the stack distances of all references at once.

    >>> lru_curve(np.array([1, 2, 3, 1, 2, 3, 4]), 4).tolist()
    [7, 7, 4, 4]
    """
    p = fold(pages)
    prev = _previous(p)
    seen = np.flatnonzero(prev >= 0)
    repeats = _earlier_greater(prev, prev)          # j < i with prev[j] > prev[i]
    distance = seen - prev[seen] - repeats[seen]    # distinct pages since, plus one
    hits = np.bincount(np.minimum(distance, k_max + 1), minlength=k_max + 2)[1:k_max + 1]
    return len(p) - np.cumsum(hits)


def _previous(p: np.ndarray) -> np.ndarray:
    """Each reference's previous reference to the same page, or -1: the
    next uses turned round."""
    nxt = next_use(p)
    prev = np.full(len(p), -1, np.int64)
    used = np.flatnonzero(nxt < len(p))
    prev[nxt[used]] = used
    return prev


def _earlier_greater(values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each i, how many j < i have ``values[j] > queries[i]``: a bottom-up
    merge sort, each level a search of every right half's queries in its
    left half, all blocks at once (values and queries in [-1, len))."""
    n = len(values)
    big = n + 2
    count = np.zeros(n, np.int64)
    idx = np.arange(n)
    keyed = values + 1                               # sorted within blocks of `width`
    width = 1
    while width < n:
        pair = idx // (2 * width)
        right = (idx & width) != 0
        base = pair * big
        left = base[~right] + keyed[~right]         # sorted: by pair, then value
        rpair = pair[right]
        ends = np.minimum((rpair + 1) * width, len(left))
        count[right] += ends - np.searchsorted(left, base[right] + queries[right] + 1, side="right")
        keyed = np.sort(base + keyed, kind="stable") - base     # sorted within blocks of 2 width
        width *= 2
    return count


def opt_curve(pages: np.ndarray, k_max: int) -> np.ndarray:
    """``faults[k - 1]``, Belady's optimal fault count in ``k`` frames, for
    every k in 1..k_max: Mattson's priority stack cut at depth k_max, the
    priority of a page its next use (sooner is higher).

    A reference to the page at depth d puts it on top; going down from the
    top, the page carried down and the one at each level swap when the
    carried one is needed sooner, until the carried one fills depth d. Below
    k_max a page never rises again until referenced, so the cut is exact.

    >>> opt_curve(np.array([1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]), 5).tolist()
    [12, 9, 7, 6, 5]
    """
    p = fold(pages)
    nexts = next_use(p).tolist()
    stack = array("q", bytes(8 * k_max))           # next uses, top first
    view = np.frombuffer(stack, np.int64)          # the same memory, for deep updates
    on: set[int] = set()                           # what the stack holds
    hits = [0] * (k_max + 2)
    size = 0
    for t, nu in enumerate(nexts):
        if t in on:                                # the page, with next use t, is on the stack
            d = stack.index(t, 0, size)
            hits[d + 1] += 1
            on.discard(t)
            _sink(stack, view, d)
        elif size < k_max:
            size += 1
            _sink(stack, view, size - 1)
        else:                                      # the bottom one falls past the cut
            on.discard(_sink(stack, view, size, keep=False))
        stack[0] = nu
        on.add(nu)
    return len(p) - np.cumsum(hits[1:k_max + 1])


def _sink(stack: array, view: np.ndarray, d: int, keep: bool = True) -> int:
    """Carries the top down to depth ``d`` (whose page left for the top, or
    a new slot at the bottom), swapping with every page needed later than
    the one carried, and leaves it at ``d`` if ``keep``; returns it."""
    if d == 0:
        return stack[0]
    if d <= SHALLOW:
        carry = stack[0]
        for k in range(1, d):
            v = stack[k]
            if v > carry:
                stack[k], carry = carry, v
    else:
        run = np.maximum.accumulate(view[:d])
        view[1:d] = np.minimum(view[1:d], run[:-1])
        carry = int(run[-1])
    if keep:
        stack[d] = carry
    return carry


STACK = {"lru": lru_curve, "opt": opt_curve}


def sweep(trace: Any, policy: Any, frames: list[int], seed: int = 0,
          **options: Any) -> list[int]:
    """Faults of ``trace`` (in memory) at each of ``frames``: one stack pass
    for lru and opt, else one replay a frame count, spread over the CPUs
    (a policy of the user's runs in this process, where its errors belong)."""
    if policy in STACK:
        curve = STACK[policy](trace.pages, max(frames))
        return [int(curve[n - 1]) for n in frames]
    if isinstance(policy, str) and ":" in policy or len(frames) == 1:
        return [_one((trace, policy, n, seed, options)) for n in frames]
    import concurrent.futures
    import multiprocessing
    workers = min(len(frames), len(os.sched_getaffinity(0)))
    with concurrent.futures.ProcessPoolExecutor(workers, multiprocessing.get_context("fork"),
                                                initializer=_adopt, initargs=(trace,)) as pool:
        return list(pool.map(_one, [(None, policy, n, seed, options) for n in frames]))


_TRACE: Any = None              # a worker's trace, inherited through fork


def _adopt(trace: Any) -> None:
    global _TRACE
    _TRACE = trace


def _one(job: tuple[Any, Any, int, int, dict[str, Any]]) -> int:
    from vmlab.replay.cells import make_cells, run_cells
    trace, policy, n, seed, options = job
    cells = make_cells([policy], [n], seed, **options)
    run_cells(cells, trace if trace is not None else _TRACE)
    return cells[0].faults
