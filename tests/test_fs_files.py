"""Ordinary file operations pass through to the backing directory, and
nothing reached through the mount leads out of it."""

from __future__ import annotations

import os
import subprocess

import pytest

import vmlab_fs
from vmlab_fs.mounting import check_mountpoint


def test_everyday_file_operations(lab):
    mnt, back = lab.path, lab.backing
    os.mkdir(f"{mnt}/dir")
    with open(f"{mnt}/dir/a.txt", "w") as f:
        f.write("hello\n")
        f.flush()
        os.fsync(f.fileno())
    assert open(f"{back}/dir/a.txt").read() == "hello\n"
    with open(f"{mnt}/dir/a.txt", "a") as f:
        f.write("more\n")
    assert open(f"{mnt}/dir/a.txt").read() == "hello\nmore\n"
    os.truncate(f"{mnt}/dir/a.txt", 3)
    assert open(f"{back}/dir/a.txt").read() == "hel"
    os.chmod(f"{mnt}/dir/a.txt", 0o600)
    assert os.stat(f"{back}/dir/a.txt").st_mode & 0o777 == 0o600
    os.utime(f"{mnt}/dir/a.txt", ns=(1_000_000_000, 2_000_000_000))
    assert os.stat(f"{back}/dir/a.txt").st_mtime_ns == 2_000_000_000
    os.rename(f"{mnt}/dir/a.txt", f"{mnt}/b.txt")
    assert os.path.exists(f"{back}/b.txt") and not os.path.exists(f"{back}/dir/a.txt")
    os.link(f"{mnt}/b.txt", f"{mnt}/c.txt")
    assert os.stat(f"{mnt}/c.txt").st_ino == os.stat(f"{mnt}/b.txt").st_ino
    os.symlink("b.txt", f"{mnt}/link")
    assert os.readlink(f"{mnt}/link") == "b.txt" and open(f"{mnt}/link").read() == "hel"
    assert sorted(os.listdir(mnt)) == [".vmlab", "b.txt", "c.txt", "dir", "link"]
    os.unlink(f"{mnt}/c.txt")
    os.rmdir(f"{mnt}/dir")
    assert sorted(os.listdir(back)) == ["b.txt", "link"]
    sv = os.statvfs(mnt)
    assert sv.f_blocks == os.statvfs(back).f_blocks
    with pytest.raises(FileNotFoundError):
        os.stat(f"{mnt}/missing")


def test_rename_carries_the_counters(lab, page_buffer):
    fd = os.open(f"{lab.path}/old", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    os.pwritev(fd, [page_buffer], 0)
    os.close(fd)
    os.rename(f"{lab.path}/old", f"{lab.path}/new")
    assert lab.files()["/new"].writes == 1 and "/old" not in lab.files()


def test_a_shell_and_coreutils_work_on_the_mount(lab):
    script = "cd \"$1\" && seq 1 1000 > n && sort -rn n | head -1 && cp n m && cmp n m && rm n m && ls"
    out = subprocess.run(["sh", "-c", script, "sh", lab.path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1000"]


def test_the_control_directory_is_read_only_namespace(lab):
    with pytest.raises(OSError):
        open(f"{lab.path}/.vmlab/new", "w")
    with pytest.raises(OSError):
        os.unlink(f"{lab.path}/.vmlab/stats")
    with pytest.raises(OSError):
        os.mkdir(f"{lab.path}/.vmlab/d")
    assert sorted(os.listdir(f"{lab.path}/.vmlab")) == ["control", "files", "iolog", "pid", "stats"]
    assert int(open(f"{lab.path}/.vmlab/pid").read()) == lab.pid


def test_symlinks_cannot_lead_out_of_the_backing_directory(lab, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    back = lab.backing
    os.symlink(str(secret), f"{back}/abs-out")               # absolute, outside
    os.symlink("../secret.txt", f"{back}/rel-out")            # relative, outside
    os.makedirs(f"{back}/d/e")
    os.symlink("../../../secret.txt", f"{back}/d/e/deep-out")
    os.symlink(str(tmp_path), f"{back}/dir-out")              # a directory outside
    for name in ("abs-out", "rel-out", "d/e/deep-out", "dir-out/secret.txt"):
        with pytest.raises(PermissionError):
            open(f"{lab.path}/{name}").read()
    with open(f"{back}/inside.txt", "w") as f:
        f.write("inside")
    os.symlink(f"{back}/inside.txt", f"{back}/abs-in")        # absolute, inside
    os.symlink("../../inside.txt", f"{back}/d/e/rel-in")
    assert open(f"{lab.path}/abs-in").read() == "inside"
    assert os.readlink(f"{lab.path}/abs-in") == "inside.txt"  # rewritten to stay in
    assert open(f"{lab.path}/d/e/rel-in").read() == "inside"


def test_the_daemon_itself_never_follows_a_symlink(lab, tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep")
    os.symlink(str(target), f"{lab.backing}/trap")
    with pytest.raises(OSError):
        os.chmod(f"{lab.path}/trap", 0o777)           # would chmod the victim
    with pytest.raises(OSError):
        os.truncate(f"{lab.path}/trap", 0)
    assert target.read_text() == "keep" and target.stat().st_mode & 0o777 != 0o777


def test_dotdot_stays_inside(lab, tmp_path):
    (tmp_path / "outside.txt").write_text("x")
    os.mkdir(f"{lab.path}/sub")
    # ".." is resolved by the kernel: from the mount root it is the mount's parent
    # directory, which is not served by the daemon at all.
    assert os.path.realpath(f"{lab.path}/sub/../..") == os.path.dirname(lab.path)
    assert not os.path.exists(f"{lab.path}/sub/../outside.txt")
    # And should a path with ".." ever reach the daemon, it refuses it.
    from vmlab_fs.labfs import LabFS
    from vmlab_fs.libfuse import mfusepy
    daemon = LabFS(lab.backing)
    for path in ("/../outside.txt", "/sub/../../outside.txt", "/.."):
        with pytest.raises(mfusepy.FuseOSError):
            daemon._full(path)
    assert daemon._full("/sub/file") == os.path.realpath(lab.backing) + "/sub/file"


def test_mount_point_checks(tmp_path):
    back = tmp_path / "b"
    back.mkdir()
    afile = tmp_path / "f"
    afile.write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    with pytest.raises(vmlab_fs.BadMountpoint, match="contain each other"):
        check_mountpoint("/", str(back), force=True)      # / holds every backing directory
    cases = [
        (str(afile), str(back), "not a directory"),
        (str(tmp_path / "missing"), str(back), "not a directory"),
        (str(full), str(back), "not empty"),
        (str(back / "inner"), str(back), "contain each other"),
    ]
    (back / "inner").mkdir()
    for mnt, backing, why in cases:
        with pytest.raises(vmlab_fs.BadMountpoint, match=why):
            vmlab_fs.start(mnt, backing)
    mnt = tmp_path / "m"
    mnt.mkdir()
    with vmlab_fs.mount(str(back), str(mnt)):
        with pytest.raises(vmlab_fs.BadMountpoint, match="already a mount point"):
            vmlab_fs.start(str(mnt), str(back))
    # --force mounts over a non-empty directory, hiding (not touching) its files
    with vmlab_fs.mount(str(back), str(full), force=True) as m:
        assert "keep" not in os.listdir(m.path)
    assert (full / "keep").read_text() == "x"


def test_unmounted_and_daemon_gone_even_when_the_block_fails(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with vmlab_fs.mount() as m:
            pid = m.pid
            fd = os.open(f"{m.path}/busy", os.O_CREAT | os.O_RDWR)   # left open on purpose
            1 / 0
    with pytest.raises(OSError):    # the busy mount was detached lazily
        os.close(fd)
    assert vmlab_fs.mounted_fstype(m.path) is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(m.path)


def test_no_allow_other_by_default(lab):
    fields = [l.split() for l in open("/proc/self/mounts") if f" {lab.path} " in l][0]
    assert fields[2] == "fuse.vmlab"
    assert "allow_other" not in fields[3].split(",")


def test_symlink_chains_are_walked_as_the_kernel_walks_them(lab, tmp_path):
    """A link is judged by where the links it passes lead, not by their
    names: ``toroot/..`` from the mount root is the mount point's parent."""
    (tmp_path / "secret.txt").write_text("outside")
    mnt = lab.path
    assert os.path.dirname(mnt) == str(tmp_path)
    os.makedirs(f"{mnt}/d/e/f")
    os.symlink("../../..", f"{mnt}/d/e/f/toroot")          # the mount root: allowed
    assert os.path.samefile(f"{mnt}/d/e/f/toroot", mnt)
    with pytest.raises(PermissionError):                     # refused when made
        os.symlink("d/e/f/toroot/../secret.txt", f"{mnt}/esc")
    os.symlink("d/e/f/toroot/../secret.txt", f"{lab.backing}/esc")   # made behind its back
    with pytest.raises(PermissionError):
        open(f"{mnt}/esc").read()
    # Harmless when made; an escape once a directory it passes becomes a link.
    os.makedirs(f"{mnt}/p/q")
    os.symlink("p/q/../secret.txt", f"{mnt}/later")
    with pytest.raises(FileNotFoundError):
        open(f"{mnt}/later").read()                          # p/secret.txt: not there
    os.rmdir(f"{mnt}/p/q")
    os.symlink("..", f"{mnt}/p/q")                           # q is now the mount root
    with pytest.raises(PermissionError):
        open(f"{mnt}/later").read()
    os.symlink("loop/x", f"{lab.backing}/loop")              # a cycle is refused, not walked forever
    with pytest.raises(OSError):
        open(f"{mnt}/loop").read()
    # Chains that stay inside still work.
    with open(f"{mnt}/d/inside.txt", "w") as f:
        f.write("in")
    os.symlink("d/e/f/toroot/d/inside.txt", f"{mnt}/ok")
    assert open(f"{mnt}/ok").read() == "in"


def test_names_that_only_look_special_are_ordinary(lab):
    for name in ("..foo", "...", ".vmlab2", ".vmlabrc", "a..b"):
        with open(f"{lab.path}/{name}", "w") as f:
            f.write(name)
        assert open(f"{lab.path}/{name}").read() == name
        assert open(f"{lab.backing}/{name}").read() == name
    os.mkdir(f"{lab.path}/.vmlab.d")
    assert {"..foo", "...", ".vmlab2", ".vmlabrc", ".vmlab.d", ".vmlab"} <= set(os.listdir(lab.path))
    assert lab.files()["/.vmlab2"].writes == 1               # counted like any file
    with pytest.raises(OSError):
        os.mkdir(f"{lab.path}/.vmlab/x")                     # the control directory still is special
