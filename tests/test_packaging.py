"""A non-editable install holds every module of the project: a wheel is
built from a copy of the tree (no stale build/ of an older layout) and its
contents are checked against the modules on disk."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.test_layout import PACKAGES, ROOT, modules


def test_wheel_holds_every_module(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".hypothesis"))
    # pip fetches the build backend (setuptools) from the package index, as set-up does.
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("vmlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    folders = {folder: name for name, folder in PACKAGES.items()}
    expected = {f"{folders[p.relative_to(ROOT).parts[0]]}/"
                f"{'/'.join(p.relative_to(ROOT).parts[1:])}" for p in modules().values()}
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing} (pyproject.toml's packages list)"
    assert "vmlab/real/pager.py" in expected      # the walk found the modules
