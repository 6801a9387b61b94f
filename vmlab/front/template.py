"""``vmlab policy --template NAME``: a replacement policy to start from,
commented, clock-like, and one that runs as it is."""

from __future__ import annotations

TEMPLATE = '''"""{name}: a page replacement policy for vmlab.

Try it:
    vmlab trace TRACE --frames 3,4,8 --policy {file}:{name},clock
    vmlab run thrash --policy {file}:{name}
and in Python: Machine(policy={name}).
"""

from vmlab import Policy


class {name}(Policy):
    """As written, the textbook clock (second chance); change it.

    Every frame you are given has:
        frame.index       its place in the frame table (0, 1, ...)
        frame.page        what it holds (hashable), None if empty
        frame.referenced  used since the bit was last cleared; you may set it to False
        frame.dirty       written since it was loaded (evicting it costs a write)
    """

    wants_touch = False     # True: touched(frame) is called on every access
    tick_every = 0          # N: tick() is called every N accesses (NRU, aging)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)   # sets self.nframes and self.rng (seeded)
        self.hand = 0                       # the clock hand: a frame index

    def loaded(self, frame):
        """A page was just put in frame."""

    def released(self, frame):
        """frame was emptied: its page was evicted or freed."""

    def touched(self, frame):
        """frame was accessed (only if wants_touch)."""

    def tick(self):
        """tick_every accesses went by."""

    def victim(self, candidates):
        """Return one of candidates (frames that may be evicted now, in
        frame-table order); anything else is an error, as is taking over a
        second to decide."""
        allowed = {{f.index: f for f in candidates}}
        for _ in range(2 * self.nframes + 1):       # two sweeps clear every bit
            frame = allowed.get(self.hand)
            self.hand = (self.hand + 1) % self.nframes
            if frame is None:
                continue                            # not evictable now: skip it
            if frame.referenced:
                frame.referenced = False            # a second chance
                continue
            return frame
        return candidates[0]
'''


def template(name: str) -> str:
    """The skeleton for a class called ``name`` (a Python identifier)."""
    return TEMPLATE.format(name=name, file=f"{name.lower()}.py")
