"""Shared fixtures: a real lab mount per test, and a session-wide check that
every mount this test run made is gone again (lazily unmounted if not, and
the session fails).

Other test runs and people's own mounts may live on the same machine: the
check touches only mounts this run made, known by identity (the mounts this
process started, and those under this run's own temporary directory), never
by filesystem type or name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import vmlab_fs
from vmlab_fs.mounting import _mountinfo, started_here

PAGE = 4096
pytest_plugins = ["pytester"]


def mounts_of_this_run(basetemp: str) -> set[str]:
    """vmlab mounts this run made: started by this process, or mounted on a
    directory under this run's basetemp (by `vmlab mount` in a subprocess)."""
    under = basetemp.rstrip("/") + "/"
    ours = set(started_here())
    ours |= {mnt for mnt, fstype, _ in _mountinfo()
             if fstype == vmlab_fs.FSTYPE and mnt.startswith(under)}
    return ours


@pytest.fixture(scope="session", autouse=True)
def no_mount_left_behind(tmp_path_factory):
    basetemp = str(tmp_path_factory.getbasetemp())
    yield
    left = mounts_of_this_run(basetemp)
    for mnt in left:
        subprocess.run(["fusermount3", "-uz", mnt], check=False)
    assert not left, f"tests left these mounts behind: {sorted(left)}"


@pytest.fixture
def lab(tmp_path):
    """A live lab filesystem over a fresh backing directory."""
    backing = tmp_path / "backing"
    mnt = tmp_path / "mnt"
    backing.mkdir()
    mnt.mkdir()
    with vmlab_fs.mount(str(backing), str(mnt)) as m:
        yield m


@pytest.fixture
def page_buffer():
    """A page-aligned buffer (anonymous mmap), as O_DIRECT wants."""
    import mmap
    buf = mmap.mmap(-1, PAGE)
    yield buf
    buf.close()


def run_vmlab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real console entry point as a user would."""
    return subprocess.run([sys.executable, "-m", "vmlab", *args], capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, NO_COLOR="1"))


@pytest.fixture(scope="module", params=["vmlab_fs.mount", "vmlab-mount"])
def shared_lab(request, tmp_path_factory):
    """One lab mount for a whole test module (a Machine per test on it),
    made once in-process with vmlab_fs.mount and once with the `vmlab mount` CLI."""
    root = tmp_path_factory.mktemp("lab")
    back, mnt = root / "b", root / "m"
    back.mkdir()
    mnt.mkdir()
    if request.param == "vmlab_fs.mount":
        with vmlab_fs.mount(str(back), str(mnt)) as m:
            yield m
        return
    r = run_vmlab("mount", str(mnt), "--backing", str(back))
    assert r.returncode == 0, r.stderr
    try:
        yield vmlab_fs.attach(str(mnt))
    finally:
        if run_vmlab("umount", str(mnt)).returncode != 0:
            subprocess.run(["fusermount3", "-uz", str(mnt)])


@pytest.fixture
def machine(shared_lab):
    """A factory: machine(frames=..., policy=...) on the module's mount,
    closed after the test."""
    from vmlab import Machine
    made = []

    def make(**kw):
        kw.setdefault("lab", shared_lab.path)
        m = Machine(**kw)
        made.append(m)
        return m
    yield make
    for m in made:
        m.close()


def copy_to_lab(lab: str, src: str, name: str) -> str:
    import shutil
    dst = os.path.join(lab, name)
    shutil.copyfile(src, dst)
    return dst
