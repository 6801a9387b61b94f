"""Nobody but the owner gets in, nothing leads out, and paths are data, never
shell code. (Symlink and `..` escapes: tests/test_fs_files.py.)"""

from __future__ import annotations

import os
import subprocess

import pytest

import vmlab_fs
from tests.conftest import run_vmlab

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def test_other_users_cannot_reach_the_mount(lab):
    with open(os.path.join(lab.path, "secret"), "w") as f:
        f.write("owner only")
    os.chmod(lab.path, 0o755)
    os.chmod(os.path.join(lab.backing, "secret"), 0o644)
    for argv in (["ls", lab.path], ["cat", os.path.join(lab.path, "secret")],
                 ["cat", os.path.join(lab.path, ".vmlab", "stats")]):
        r = subprocess.run(NOBODY + argv, capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (argv, r.stderr)
    assert open(os.path.join(lab.path, "secret")).read() == "owner only"    # the owner can


def test_control_is_writable_by_its_owner_only(lab):
    path = os.path.join(lab.path, ".vmlab", "control")
    assert os.stat(path).st_mode & 0o777 == 0o600
    lab.control("latency ssd")                   # the owner can
    for name in ("stats", "files", "iolog", "pid"):
        with pytest.raises(PermissionError):
            open(os.path.join(lab.path, ".vmlab", name), "w")


@pytest.mark.parametrize("name", ["m; touch PWNED", "$(touch PWNED)", "`touch PWNED`",
                                  "a b\tc", "-rf", "x' && touch PWNED '"])
def test_paths_are_never_shell_code(tmp_path, name):
    mnt, back = tmp_path / name, tmp_path / "back"
    mnt.mkdir()
    back.mkdir()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = run_vmlab("mount", str(mnt), "--backing", str(back))
        assert r.returncode == 0, r.stderr
        assert vmlab_fs.mounted_fstype(str(mnt)) == vmlab_fs.FSTYPE
        assert run_vmlab("stat", str(mnt)).returncode == 0
        assert run_vmlab("umount", str(mnt)).returncode == 0
    finally:
        os.chdir(cwd)
        if vmlab_fs.mounted_fstype(str(mnt)) == vmlab_fs.FSTYPE:
            subprocess.run(["fusermount3", "-uz", str(mnt)])
    assert not any(p.name == "PWNED" for p in tmp_path.rglob("*")) and not os.path.exists("PWNED")


def test_mounting_over_a_mount_needs_force(tmp_path):
    back, mnt = tmp_path / "b", tmp_path / "m"
    back.mkdir()
    mnt.mkdir()
    with vmlab_fs.mount(str(back), str(mnt)) as lower:
        with open(os.path.join(lower.path, "below"), "w") as f:
            f.write("x")
        r = run_vmlab("mount", str(mnt), "--backing", str(tmp_path))
        assert r.returncode == 2 and "already a mount point" in r.stderr
        other = tmp_path / "other"
        other.mkdir()
        r = run_vmlab("mount", str(mnt), "--backing", str(other), "--force")
        assert r.returncode == 0, r.stderr
        assert os.listdir(mnt) == [".vmlab"]          # the new mount hides the old one
        assert run_vmlab("umount", str(mnt)).returncode == 0
        assert "below" in os.listdir(mnt)             # and the old one is back, untouched


def test_a_test_run_claims_only_its_own_mounts(tmp_path, tmp_path_factory):
    """A mount made by someone else (another suite, a student's `vmlab
    mount`) is never taken for one of this run's, whatever its type."""
    from tests.conftest import mounts_of_this_run
    import tempfile
    basetemp = str(tmp_path_factory.getbasetemp())
    theirs = tempfile.mkdtemp(prefix="vmlab-someone-else-")      # outside this run's basetemp
    back = tempfile.mkdtemp(prefix="vmlab-someone-else-back-")
    mine = tmp_path / "mine"
    mine.mkdir()
    try:
        assert run_vmlab("mount", theirs, "--backing", back).returncode == 0
        with vmlab_fs.mount(mountpoint=str(mine)) as m, vmlab_fs.mount() as elsewhere:
            ours = mounts_of_this_run(basetemp)
            assert m.path in ours and elsewhere.path in ours      # started here, or under basetemp
            assert theirs not in ours and vmlab_fs.mounted_fstype(theirs) == vmlab_fs.FSTYPE
    finally:
        assert run_vmlab("umount", theirs).returncode == 0
        os.rmdir(theirs)
        subprocess.run(["rm", "-rf", back])
