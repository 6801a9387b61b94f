"""What the tests hold vmlab's replay and its Machine to: the textbook
definitions, written here, for the tests alone, as a simulation of the
frames step by step (clarity, not speed; they share no code with vmlab).

Each returns the fault count of ``refs`` with ``n`` frames, frames filled
in order while free:
- fifo: evict the page loaded longest ago;
- lru: evict the page used longest ago;
- opt (Belady): evict the page whose next use is furthest away (never: furthest);
- clock: one-bit second chance, the bit set on load and on every use; the
  hand clears set bits, takes the first clear frame and moves one past it.
"""

from __future__ import annotations

BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]


def _simulate(refs: list[int], n: int, pick) -> int:
    """Count faults; ``pick(slots, t)`` chooses the slot to replace at time t."""
    slots: list[dict] = []                       # one dict per frame: page, loaded, used, bit
    faults = 0
    for t, page in enumerate(refs):
        hit = next((s for s in slots if s["page"] == page), None)
        if hit:
            hit["used"], hit["bit"] = t, 1
            continue
        faults += 1
        new = {"page": page, "loaded": t, "used": t, "bit": 1}
        if len(slots) < n:
            slots.append(new)
        else:
            slots[pick(slots, t)] = new
    return faults


def fifo(refs: list[int], n: int) -> int:
    return _simulate(refs, n, lambda slots, t: min(range(n), key=lambda i: slots[i]["loaded"]))


def lru(refs: list[int], n: int) -> int:
    return _simulate(refs, n, lambda slots, t: min(range(n), key=lambda i: slots[i]["used"]))


def opt(refs: list[int], n: int) -> int:
    def next_use(page: int, t: int) -> int:
        later = [u for u in range(t + 1, len(refs)) if refs[u] == page]
        return later[0] if later else len(refs)
    return _simulate(refs, n, lambda slots, t: max(range(n), key=lambda i: next_use(slots[i]["page"], t)))


def clock(refs: list[int], n: int) -> int:
    hand = [0]

    def pick(slots: list[dict], t: int) -> int:
        while slots[hand[0]]["bit"]:
            slots[hand[0]]["bit"] = 0
            hand[0] = (hand[0] + 1) % n
        chosen = hand[0]
        hand[0] = (hand[0] + 1) % n
        return chosen
    return _simulate(refs, n, pick)


REF = {"fifo": fifo, "lru": lru, "opt": opt, "clock": clock}
