"""Every exercise in demo/EXERCISES.md prints what its text shows: its
commands run as written (the lab mounted at a directory of this test's own
instead of /tmp/lab), and their output equals the block that follows it:
exactly where the figures are deterministic, in shape (numbers masked)
where they are times or depend on the machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vmlab_fs

EXERCISES = Path(__file__).resolve().parent.parent / "demo" / "EXERCISES.md"
MASKED = {3, 6, 7, 9, 10}   # times, real programs on this machine, real faults


def sections() -> dict[int, tuple[str, str]]:
    """Exercise number -> (its commands, the output its text shows)."""
    out = {}
    for part in re.split(r"^## ", EXERCISES.read_text(), flags=re.M)[1:]:
        n = int(part.split(".", 1)[0])
        after = part.split("```sh\n", 1)[1]
        commands, rest = after.split("```\n", 1)
        shown = rest.split("```\n", 1)[1].split("```", 1)[0]
        out[n] = (commands, shown)
    return out


def run(commands: str, cwd: Path, lab: Path) -> str:
    env = dict(os.environ, NO_COLOR="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    r = subprocess.run(["bash", "-c", "set -e -o pipefail\n" + commands.replace("/tmp/lab", str(lab))],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.replace(str(lab), "/tmp/lab")


def same(n: int, got: str, shown: str) -> None:
    if n in MASKED:
        mask = lambda t: re.sub(r"\s+", " ", re.sub(r"\d[\d,.]*", "N", t)).strip()
        got, shown = mask(got), mask(shown)
    assert got == shown, f"exercise {n} printed:\n{got}\nits text shows:\n{shown}"


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 8, 9, 10])
def test_exercise_prints_what_it_shows(n, tmp_path):
    commands, shown = sections()[n]
    same(n, run(commands, tmp_path, tmp_path / "lab"), shown)


def test_exercises_4_and_5_on_one_mount(tmp_path):
    """Exercise 4 mounts the lab and exercise 5 goes on with it, then unmounts."""
    lab = tmp_path / "lab"
    try:
        for n in (4, 5):
            commands, shown = sections()[n]
            same(n, run(commands, tmp_path, lab), shown)
        assert vmlab_fs.mounted_fstype(str(lab)) is None
    finally:
        if vmlab_fs.mounted_fstype(str(lab)) == vmlab_fs.FSTYPE:
            vmlab_fs.unmount(str(lab))


def test_every_exercise_is_checked():
    assert sorted(sections()) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
