"""Deliberately plain page replacement: the definitions, not fast code.
The tests hold vmlab's replay and its Machine to these."""

from __future__ import annotations

from collections import OrderedDict


def ref_fifo(refs, n):
    frames, faults = [], 0
    for r in refs:
        if r not in frames:
            faults += 1
            if len(frames) == n:
                frames.pop(0)
            frames.append(r)
    return faults


def ref_lru(refs, n):
    frames, faults = OrderedDict(), 0
    for r in refs:
        if r in frames:
            frames.move_to_end(r)
            continue
        faults += 1
        if len(frames) == n:
            frames.popitem(last=False)
        frames[r] = True
    return faults


def ref_opt(refs, n):
    """Scan the future on every miss (OSTEP's way): slow and obviously right."""
    frames, faults = [], 0
    for i, r in enumerate(refs):
        if r in frames:
            continue
        faults += 1
        if len(frames) == n:
            future = refs[i + 1:]
            far = max(frames, key=lambda p: future.index(p) if p in future else len(refs))
            frames.remove(far)
        frames.append(r)
    return faults


def ref_clock(refs, n):
    frames, bits, hand, faults = [None] * n, [0] * n, 0, 0
    for r in refs:
        if r in frames:
            bits[frames.index(r)] = 1
            continue
        faults += 1
        if None in frames:                      # fill in order while free
            i = frames.index(None)
        else:
            while bits[hand]:
                bits[hand] = 0
                hand = (hand + 1) % n
            i = hand
            hand = (hand + 1) % n
        frames[i], bits[i] = r, 1
    return faults


REF = {"fifo": ref_fifo, "lru": ref_lru, "opt": ref_opt, "clock": ref_clock}
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
