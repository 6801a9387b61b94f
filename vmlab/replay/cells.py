"""Every (policy, frame count) of a ``vmlab trace`` run as one cell, all
fed the same chunks of the trace in one pass: a built-in by its tight
loop (``policies``), anything else through the Policy interface
(``generic``). A trace that no cell needs to see ahead in is streamed."""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from vmlab.replay.policies import REPLAYERS, next_use, run_starts

FEED = 1 << 16              # references a cell is fed at a time from a trace in memory


class Cell:
    """One policy at one frame count; ``faults`` once fed, and the
    ``seconds`` its feeding took. A built-in's loop ``folds`` (it is fed
    folded chunks, and their next uses if it ``needs_future``); a Policy
    is fed every reference and its store flag."""

    def __init__(self, spec: Any, frames: int, seed: int = 0, **options: Any) -> None:
        self.frames, self.seconds, self._policy = frames, 0.0, None
        self.folds = spec in REPLAYERS
        if self.folds:
            self._replayer: Any = REPLAYERS[spec](frames, seed)
            self.name, self.needs_future = spec, self._replayer.needs_future
        else:
            from vmlab.core.registry import make_policy
            from vmlab.replay.generic import PolicyReplay
            self._policy = make_policy(spec, frames, seed, **options)
            self._replayer = PolicyReplay(frames, self._policy)
            self.name, self.needs_future = self._policy.name, False

    @property
    def faults(self) -> int:
        return self._replayer.faults

    def feed(self, refs: Sequence[int], extra: Any) -> None:
        """The next references, with their next uses (a fold) or store flags."""
        t0 = time.perf_counter()
        self._replayer.feed(refs, extra)
        self.seconds += time.perf_counter() - t0

    def close(self) -> None:
        if hasattr(self._policy, "close"):
            self._policy.close()


def make_cells(policies: list[Any], frames: list[int], seed: int = 0, **options: Any) -> list[Cell]:
    """One cell a policy and frame count, in that order; a misbehaving
    policy's PolicyError and a bad spec's ValueError come from here."""
    return [Cell(p, n, seed, **options) for p in policies for n in frames]


def run_cells(cells: list[Cell], source: Any) -> None:
    """Feeds every cell the whole of ``source``: a Trace (in memory), or a
    TraceStream when no cell needs the future.

    The built-ins' loops are fed each chunk with its immediate repeats
    folded (``1 1 1 2`` as ``1 2``): a reference to the page referenced just
    before is a hit that changes nothing under fifo, lru, clock (its bit is
    already set), random (no draw) and opt (fed the next use after the run),
    so their counts are exact. A policy of the user's, or one that counts
    time (tick, tau), sees every reference."""
    nexts = next_use(source.pages) if any(c.needs_future for c in cells) else None
    every = any(not c.folds for c in cells)
    folds = any(c.folds for c in cells)
    try:
        lo = 0
        for pages, writes in _chunks(source):
            refs, flags = (pages.tolist(), writes.tobytes()) if every else (None, None)
            folded, ahead = _folded(pages, nexts, lo) if folds else (None, None)
            for c in cells:
                c.feed(*((folded, ahead) if c.folds else (refs, flags)))
            lo += len(pages)
    finally:
        for c in cells:
            c.close()


def _folded(pages: np.ndarray, nexts: np.ndarray | None, lo: int) -> tuple[memoryview, np.ndarray | None]:
    """The chunk at index ``lo`` with its runs of one page folded to one
    reference, and each run's next use (that of its last reference). The
    pages come as a memoryview: a loop over it makes each int as it goes,
    faster than a list made first."""
    starts = run_starts(pages)
    if len(starts) == len(pages):
        return memoryview(np.ascontiguousarray(pages)), None if nexts is None else nexts[lo:lo + len(pages)]
    ahead = None if nexts is None else nexts[lo + np.append(starts[1:], len(pages)) - 1]
    return memoryview(pages[starts]), ahead


def _chunks(source: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if hasattr(source, "pages"):
        for lo in range(0, len(source.pages), FEED):
            yield source.pages[lo:lo + FEED], source.writes[lo:lo + FEED]
    else:
        yield from source


def results(cells: Iterable[Cell], refs: int) -> list[dict[str, Any]]:
    """``[{"policy", "frames", "faults", "hits", "seconds"}]`` in the cells' order."""
    return [{"policy": c.name, "frames": c.frames, "faults": c.faults, "hits": refs - c.faults,
             "seconds": round(c.seconds, 6)} for c in cells]
