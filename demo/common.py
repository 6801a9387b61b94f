"""What every scenario shares: the registry, a check that fails loudly, and
two helpers for moving data in and out of a process."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from vmlab import Machine, Process

PAGE = 4096
PHYS_BASE = 0xC0000000


class ScenarioFailed(Exception):
    """A scenario's own check found wrong data."""


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Machine], list[str]]
    frames: int                 # default frame count
    summary: str


REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, frames: int, summary: str | None = None):
    """Register ``fn(machine) -> lines to print`` as ``vmlab run NAME``;
    the summary is the first line of its docstring unless given."""
    def register(fn):
        REGISTRY[name] = Scenario(name, fn, frames,
                                  summary or (fn.__doc__ or "").strip().splitlines()[0])
        return fn
    return register


def check(ok: bool, what: str) -> None:
    if not ok:
        raise ScenarioFailed(what)


def fill(p: Process, addr: int, data: bytes) -> None:
    """Write ``data`` page by page, as a program filling a buffer would."""
    for i in range(0, len(data), PAGE):
        p.write(addr + i, data[i:i + PAGE])


def shuffle(p: Process, addr: int, model: bytearray, rng: random.Random, swaps: int) -> None:
    """Swap random byte pairs in the process and in ``model`` alike."""
    for _ in range(swaps):
        i, j = rng.randrange(len(model)), rng.randrange(len(model))
        x, y = p.read(addr + i, 1), p.read(addr + j, 1)
        p.write(addr + i, y)
        p.write(addr + j, x)
        model[i], model[j] = model[j], model[i]
