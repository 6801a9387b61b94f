"""Every code block in the README (```sh and ```python; the plain ones are
transcripts) runs as written. Each block is recognised by its first line,
and a block no check knows fails the test, so a new one cannot slip by."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def blocks() -> list[tuple[str, str]]:
    """(language, text) of every ```sh and ```python block."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^```(sh|python)\n(.*?)^```", README.read_text(), re.M | re.S)]


def _env() -> dict[str, str]:
    return dict(os.environ, NO_COLOR="1",
                PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])


def _sh(text: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "set -e\n" + text], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_python(text: str, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", text], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def run_pytest_file(text: str, tmp_path: Path) -> None:
    (tmp_path / "test_from_readme.py").write_text(text)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_from_readme.py"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and " passed" in r.stdout, r.stdout + r.stderr


def run_setup_and_demo(text: str, tmp_path: Path) -> None:
    r = _sh(text)       # the set-up is safe to run again: it installs only what is missing
    assert r.returncode == 0 and "unmounted /tmp/vmlab-mnt-" in r.stdout, r.stderr


def the_ci_command(text: str, tmp_path: Path) -> None:
    """The suite itself: CI runs exactly this line (running it here would recurse)."""
    assert text.strip() in (ROOT / ".ci" / "run").read_text()


def long_runs(text: str, tmp_path: Path) -> None:
    """Minutes each: collected, not run, so the test ids and options are real."""
    for line in text.strip().splitlines():
        command = line.split("#")[0].strip()
        r = _sh(command + " --collect-only -q")
        assert r.returncode == 0 and re.search(r"\.py: [1-9]\d*$|[1-9]\d* tests? collected",
                                               r.stdout, re.M), r.stdout


def run_sh(text: str, tmp_path: Path) -> None:
    r = _sh(text)
    assert r.returncode == 0, r.stderr


def containers(text: str, tmp_path: Path) -> None:
    """Run by scripts/container-test.sh wherever an engine can run them;
    here: every command in the block is one that script runs."""
    script = (ROOT / "scripts" / "container-test.sh").read_text()
    for command in re.findall(r"^(?:docker|podman) .*?(?<!\\)$", text.replace("\\\n", " "), re.M):
        words = command.split("#")[0].split()
        assert all(w in script for w in words[2:]), (command, "not run by container-test.sh")


CHECKS = [   # (the block's first line starts with, how it is checked)
    ("bash scripts/setup.sh && ", run_setup_and_demo),
    ("bash scripts/setup.sh --dev && ", the_ci_command),
    ("import pytest", run_pytest_file),
    ("VMLAB_HYPOTHESIS_PROFILE=long", long_runs),
    ("docker build", containers),
    ("", None),         # any other block: python runs as a script, sh as a script
]


def check_for(lang: str, text: str):
    first = text.splitlines()[0]
    check = next(c for prefix, c in CHECKS if first.startswith(prefix))
    return check or (run_python if lang == "python" else run_sh)


@pytest.mark.parametrize("i", range(len(blocks())))
def test_readme_block_runs_as_written(i, tmp_path):
    lang, text = blocks()[i]
    check_for(lang, text)(text, tmp_path)


def test_the_readme_has_its_blocks():
    assert len(blocks()) >= 8 and {lang for lang, _ in blocks()} == {"sh", "python"}
