"""The ``vmlab`` command as a user runs it: mount lifecycle, stat, mkswap,
demo, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

import vmlab_fs
from tests.conftest import PAGE, run_vmlab


@pytest.fixture
def dirs(tmp_path):
    back, mnt = tmp_path / "back", tmp_path / "mnt"
    back.mkdir()
    mnt.mkdir()
    yield str(back), str(mnt)
    if vmlab_fs.mounted_fstype(str(mnt)) == vmlab_fs.FSTYPE:      # a failed test must not leak it
        subprocess.run(["fusermount3", "-uz", str(mnt)])


def _wait_mounted(path: str, want: bool = True, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (vmlab_fs.mounted_fstype(path) == vmlab_fs.FSTYPE) != want:
        assert time.monotonic() < deadline, f"{path} mounted={not want} after {timeout}s"
        time.sleep(0.05)


def test_mount_stat_umount(dirs):
    back, mnt = dirs
    r = run_vmlab("mount", mnt, "--backing", back, "--latency", "ssd")
    assert r.returncode == 0, r.stderr
    assert vmlab_fs.mounted_fstype(mnt) == "fuse.vmlab"
    pid = vmlab_fs.daemon_pid(mnt)
    assert pid and os.getsid(pid) != os.getsid(0)          # detached in its own session
    assert str(pid) in r.stdout
    with open(os.path.join(mnt, "f"), "wb") as f:
        f.write(b"x" * PAGE)
    r = run_vmlab("stat", mnt)
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[0] == "reads"
    assert any(line.split()[:3] == ["/f", "0", "1"] for line in r.stdout.splitlines())
    data = json.loads(run_vmlab("stat", mnt, "--json").stdout)
    assert data["stats"]["writes"] == 1 and data["files"]["/f"]["write_bytes"] == PAGE
    r = run_vmlab("stat", mnt, "--interval", "0.2", "--count", "2")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 3 and lines[0].split()[:2] == ["reads", "writes"]
    assert "latency ssd" in open(os.path.join(mnt, ".vmlab/control")).read()
    r = run_vmlab("umount", mnt)
    assert r.returncode == 0 and r.stdout == f"{mnt}: unmounted\n", r.stderr
    assert vmlab_fs.mounted_fstype(mnt) is None
    assert _gone(pid)           # exited (a zombie, if its parent has not reaped it yet, has)
    assert open(os.path.join(back, "f"), "rb").read() == b"x" * PAGE


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_umount_does_not_wait_for_a_parent_that_never_reaps(dirs):
    """As under a container's PID 1 that never reaps: the exited daemon
    stays a zombie, and umount must not take it for alive."""
    back, mnt = dirs
    parent = subprocess.Popen(
        [sys.executable, "-c", "import vmlab_fs, sys, time\n"
         f"m = vmlab_fs.start({mnt!r}, {back!r}, detach=True)\nprint(m.pid, flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert psutil.Process(pid).ppid() == parent.pid
        t0 = time.monotonic()
        vmlab_fs.unmount(mnt)
        took = time.monotonic() - t0
        assert vmlab_fs.mounted_fstype(mnt) is None and _gone(pid)
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE     # nobody reaped it
        assert took < 2.5, took          # it used to wait the whole 5 s, then kill
    finally:
        parent.kill()
        parent.wait()


def test_a_failed_mount_says_why(tmp_path):
    """libfuse's own words reach the one-line error, with what to do."""
    d = tmp_path
    (d / "m").mkdir()
    (d / "b").mkdir()
    # A /dev/fuse closed to its user: in a mount namespace of our own, a file
    # of nobody's, mode 0600, over it, opened by root without the capability
    # to override file modes. (Not by nobody itself: the checkout may be in a
    # directory only root can reach, as mktemp -d makes them.)
    closed = d / "closed"
    closed.touch()
    os.chown(closed, 65534, 65534)
    os.chmod(closed, 0o600)
    no_override = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                   "--bounding-set=-dac_override,-dac_read_search", "--"]
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount --bind "$0" /dev/fuse && exec "$@"', str(closed), *no_override,
                        sys.executable, "-m", "vmlab_fs.daemon", str(d / "b"), str(d / "m")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "/dev/fuse: Permission denied" in r.stderr and "chmod 0666 /dev/fuse" in r.stderr
    assert "(4)" not in r.stderr
    # The FUSE device replaced by another one, in a mount namespace of our own.
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount --bind /dev/null /dev/fuse && exec "$@"', "sh", sys.executable,
                        "-m", "vmlab", "mount", str(d / "m"), "--backing", str(d / "b")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "fuse: mount failed: Invalid argument" in r.stderr and "10, 229" in r.stderr


def test_mount_without_backing_makes_one_and_keeps_it(dirs):
    _, mnt = dirs
    r = run_vmlab("mount", mnt)
    assert r.returncode == 0, r.stderr
    back = r.stdout.split("backing ")[1].split(",")[0]
    try:
        with open(os.path.join(mnt, "kept"), "w") as f:
            f.write("data")
        assert run_vmlab("umount", mnt).returncode == 0
        assert open(os.path.join(back, "kept")).read() == "data"
    finally:
        subprocess.run(["rm", "-rf", back])


def test_foreground_mount_unmounts_on_ctrl_c(dirs):
    back, mnt = dirs
    p = subprocess.Popen([sys.executable, "-m", "vmlab", "mount", mnt, "--backing", back,
                          "--foreground"], stderr=subprocess.PIPE, text=True)
    try:
        _wait_mounted(mnt)
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0
        assert "Ctrl-C unmounts" in p.stderr.read()
        assert vmlab_fs.mounted_fstype(mnt) is None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_dead_daemon_is_reported_and_cleaned_up(dirs):
    back, mnt = dirs
    assert run_vmlab("mount", mnt, "--backing", back).returncode == 0
    os.kill(vmlab_fs.daemon_pid(mnt), signal.SIGKILL)
    time.sleep(0.2)
    r = run_vmlab("stat", mnt, timeout=20)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "not connected" in r.stderr
    r = run_vmlab("umount", mnt, timeout=20)
    assert r.returncode == 0, r.stderr
    assert vmlab_fs.mounted_fstype(mnt) is None


def test_mounting_twice_or_on_a_file_is_refused(dirs, tmp_path):
    back, mnt = dirs
    assert run_vmlab("mount", mnt, "--backing", back).returncode == 0
    try:
        r = run_vmlab("mount", mnt, "--backing", back)
        assert r.returncode == 2 and "already a mount point" in r.stderr
    finally:
        assert run_vmlab("umount", mnt).returncode == 0
    (tmp_path / "file").write_text("x")
    r = run_vmlab("mount", str(tmp_path / "file"), "--backing", back)
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_mkswap(tmp_path):
    p = str(tmp_path / "swap.img")
    r = run_vmlab("mkswap", p, "--size", "1M")
    assert r.returncode == 0
    assert r.stdout.startswith("Setting up swapspace version 1, size = 1020.0 KiB (1044480 bytes)")
    assert os.path.getsize(p) == 1 << 20
    (tmp_path / "precious").write_text("keep")
    r = run_vmlab("mkswap", str(tmp_path / "precious"), "--size", "1M")
    assert r.returncode == 1 and "not a swap file" in r.stderr
    assert (tmp_path / "precious").read_text() == "keep"


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_mkswap_refuses_what_is_not_a_regular_file(tmp_path, force):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run_vmlab("mkswap", str(fifo), "--size", "1M", *force, timeout=20)   # once hung forever
    assert r.returncode == 2 and "not a regular file" in r.stderr and r.stderr.count("\n") == 1
    r = run_vmlab("mkswap", str(tmp_path), "--size", "1M", *force)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


BAD_INPUT = [
    ([], "required"),
    (["frobnicate"], "invalid choice"),
    (["mount"], "required"),
    (["mount", "/tmp", "--latency", "warp"], "bad latency"),
    (["mount", "/nonexistent/mnt"], "not a directory"),
    (["stat", "/tmp"], "not a vmlab mount"),
    (["stat", "/tmp", "--interval", "0"], "bad interval"),
    (["stat", "/tmp", "--interval", "soon"], "bad interval"),
    (["stat", "/tmp", "--count", "-1"], "bad count"),
    (["stat", "/tmp", "--count", "2"], "--count goes with --interval"),
    (["umount", "/tmp"], "not a vmlab mount"),
    (["mkswap", "/tmp/x.img"], "required"),
    (["mkswap", "/tmp/x.img", "--size", "lots"], "bad size"),
    (["mkswap", "/tmp/x.img", "--size", "5000"], "multiple of 4096"),
    (["mkswap", "/tmp/x.img", "--size", "4K"], "at least 2 pages"),
    (["mkswap", "/tmp/x.img", "--size", "99999999999999999999999G"], "over the format's limit"),
    (["mkswap", "/tmp/x.img", "--size", "1M", "--label", "seventeen-bytes!!"], "over 16 bytes"),
    (["demo", "--latency", "1parsec"], "bad latency"),
]


@pytest.mark.parametrize("argv,why", BAD_INPUT, ids=[" ".join(a) or "nothing" for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(argv, why):
    r = run_vmlab(*argv)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and why in r.stderr, r.stderr
    assert r.stderr.startswith("vmlab: error: ")            # one prefix for every error
    assert "Traceback" not in r.stderr
    assert not os.path.exists("/tmp/x.img")


def _demo_table(out: str) -> dict[str, list[str]]:
    lines = out.split("Page fault costs, measured")[1].split("\n7. Real faults")[0].splitlines()[1:]
    rows = [l for l in lines if l and not l.startswith(("Feature", "major", "unmounted", "("))]
    table = {}
    for l in rows:
        name = l[:15].strip()
        if name:
            table[name] = l[15:].split()
    return table


def test_demo_runs_every_seed_feature_and_fills_the_table():
    r = run_vmlab("demo", timeout=120)
    assert r.returncode == 0, r.stderr
    table = _demo_table(r.stdout)
    assert list(table) == ["Demand paging", "Zero page", "Stack growth", "COW", "mmap", "Swap in"]
    for name, cols in table.items():
        major = name in ("Demand paging", "mmap", "Swap in")
        assert cols[:2] == (["Major", "Yes"] if major else ["Minor", "No"])
        assert int(cols[2]) > 0                           # faults measured
        assert (int(cols[-1]) > 0) == major               # requests only for disk faults
    assert "every page read back intact" in r.stdout and "FAILED" not in r.stdout
    # the real section: a real child's faults, served by the pager (root here, as in CI)
    real = r.stdout.split("Real page faults, served by vmlab's pager")[1].splitlines()[1:]
    rows = {l.split("  ")[0]: l.split() for l in real if l.startswith(("Zero fill", "Swap in"))}
    assert set(rows) == {"Zero fill", "Swap in"} and "data intact" in r.stdout
    assert rows["Swap in"][2] == "Major" and int(rows["Swap in"][3]) > 0
    mnt = r.stdout.split("lab filesystem at ")[1].split()[0]
    assert r.stdout.split()[-1] == mnt and vmlab_fs.mounted_fstype(mnt) is None and not os.path.exists(mnt)


def test_demo_with_hdd_latency_shows_millisecond_major_faults():
    r = run_vmlab("demo", "--latency", "hdd", timeout=120)
    assert r.returncode == 0, r.stderr
    swap = _demo_table(r.stdout)["Swap in"]
    assert swap[4] == "us" and float(swap[3].replace(",", "")) >= 4000     # median >= 4 ms
    ratio = float(r.stdout.split("major / minor fault cost: ")[1].split("x")[0])
    assert ratio > 100
