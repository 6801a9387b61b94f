"""What the tests hold vmlab's replay and its Machine to: the plainest
loops, list scans and all (they live in vmlab.front.bench, which races them against
vmlab.replay.policies; they share no code with it or with the Machine's policies)."""

from __future__ import annotations

from vmlab.front.bench import PLAIN

REF = dict(PLAIN)
BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
