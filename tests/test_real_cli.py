"""``vmlab real`` as a user runs it: workloads, --vmstat, --json,
--script, --against-kernel's one table, bad input, and the one-line error
where userfaultfd is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import run_vmlab
from tests.test_real import pytestmark  # noqa: F401  (skipped only where userfaultfd is not)


def real(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return run_vmlab("real", *args, timeout=timeout)


@pytest.mark.parametrize("workload", ["scan", "random", "hot-cold", "sort", "matmul",
                                      "matmul-blocked"])
def test_each_workload_runs_and_checks_itself(workload):
    r = real(workload, "--size", "1M", "--frames", "64", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["result"]["ok"] is True
    v, io = out["vmstat"], out["swap_io"]
    assert v["pgfault"] > 0 and io["reads"] == v["pswpin"] and io["writes"] == v["pswpout"]


def test_blocked_matmul_takes_fewer_major_faults_than_naive():
    naive, blocked = (json.loads(real(w, "--size", "2M", "--frames", "128", "--json").stdout)
                      for w in ("matmul", "matmul-blocked"))
    assert blocked["vmstat"]["pgmajfault"] * 5 < naive["vmstat"]["pgmajfault"]


def test_readahead_turns_major_faults_into_swapcache_hits():
    plain, ra = (json.loads(real("scan", "--size", "2M", "--frames", "64", "--json",
                                 "--readahead", n).stdout) for n in ("0", "3"))
    assert ra["vmstat"]["swap_ra"] > 0 and ra["vmstat"]["swapcache_faults"] > 0
    assert ra["vmstat"]["pgmajfault"] * 4 < plain["vmstat"]["pgmajfault"]
    assert ra["vmstat"]["pswpin"] == plain["vmstat"]["pswpin"]      # the same pages come back


def test_reclaim_batch_frees_that_many_frames_at_once():
    runs = {n: json.loads(real("scan", "--size", "1M", "--frames", "32", "--policy", "fifo",
                               "--reclaim-batch", n, "--json").stdout)["vmstat"] for n in ("1", "8")}
    for n, v in runs.items():
        assert v["evictions"] == int(n) * v["allocstall"]
    assert runs["8"]["allocstall"] * 4 < runs["1"]["allocstall"]
    assert runs["8"]["pgmajfault"] == runs["1"]["pgmajfault"]     # a scan faults on every page anyway


def test_vmstat_lines_and_the_cost_table():
    r = real("scan", "--size", "4M", "--frames", "64", "--vmstat", "0.2", "--latency", "200us")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = lines.index("    r     swpd     free       si       so       bi       bo      flt   majflt")
    rates = [l for l in lines[head + 1:] if l.split() and l.split()[0].isdigit()]
    assert len(rates) >= 2
    assert any(l.startswith("swap     major") for l in lines)
    assert lines[-1] == "ok"


def test_the_kernel_side_by_side(tmp_path):
    r = real("scan", "--size", "4M", "--frames", "256", "--against-kernel")
    assert r.returncode == 0, r.stderr
    row = {l.split("  ")[0].strip(): l.split() for l in r.stdout.splitlines()
           if l.startswith(("vmlab (", "kernel ("))}
    kernel = row["kernel (memory cgroup)"]
    # every page of the file was read at least once by the kernel's faults
    assert int(kernel[-3]) >= 1024 and int(kernel[-4]) >= 1024
    out = json.loads(real("random", "--size", "4M", "--frames", "256", "--against-kernel",
                          "--json").stdout)
    assert out["kernel"]["result"]["ok"] and out["kernel"]["major"] == out["kernel"]["reads"]


def test_a_script_of_ones_own(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text("def main(mem):\n"
                      "    for i in range(0, len(mem), 4096):\n"
                      "        mem[i] = 7\n"
                      "    return sum(mem[i] for i in range(0, len(mem), 4096))\n")
    out = json.loads(real("--script", str(script), "--size", "256K", "--frames", "8",
                          "--json").stdout)
    assert out["result"] == 7 * 64 and out["vmstat"]["zero_faults"] == 64


@pytest.mark.parametrize("args,says", [
    ((), "name a WORKLOAD"),
    (("nope",), "no workload 'nope'"),
    (("scan", "--size", "12Q"), "bad size"),
    (("scan", "--size", "100"), "out of range: one page (4096) to 64G"),
    (("scan", "--size", "1T"), "out of range"),
    (("scan", "--frames", "0"), "bad count"),
    (("scan", "--readahead", "9"), "invalid choice"),
    (("scan", "--policy", "opt"), "opt needs to know the future"),
    (("--script", "/nonexistent.py"), "no script"),
    (("scan", "--frames", "8", "--reclaim-batch", "9"), "--reclaim-batch 9 is more than the 8 frames"),
    (("scan", "--reclaim-batch", "0"), "bad count"),
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    r = real(*args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and says in r.stderr, r.stderr


def test_a_workload_that_raises_is_one_line(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("def main(mem):\n    mem[0] = 1\n    raise RuntimeError('oops')\n")
    r = real("--script", str(script), "--size", "64K")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "oops" in r.stderr and "Traceback" not in r.stderr


def test_a_students_policy_file_counts_as_the_builtin_and_a_bad_one_exits_2(tmp_path):
    mine = tmp_path / "mine.py"
    import inspect
    from tests.test_user_policy import MyFifo
    mine.write_text("from vmlab import Policy\n\n\n" + inspect.getsource(MyFifo))
    counts = [json.loads(real("hot-cold", "--size", "2M", "--frames", "64", "--policy", p,
                              "--json").stdout)["vmstat"] for p in ("fifo", f"{mine}:MyFifo")]
    keys = ("pgfault", "pgmajfault", "pswpin", "pswpout", "evictions", "wp_faults")
    assert [counts[0][k] for k in keys] == [counts[1][k] for k in keys] and counts[0]["pswpout"] > 0
    bad = tmp_path / "bad.py"
    bad.write_text("from vmlab import Policy\n"
                   "class Bad(Policy):\n"
                   "    def victim(self, candidates):\n"
                   "        return 42\n")
    r = real("scan", "--size", "1M", "--frames", "16", "--policy", f"{bad}:Bad")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "policy bad: victim() returned 42, not one of the 16 candidates" in r.stderr


def test_where_userfaultfd_is_refused_the_error_says_how_to_enable_it(tmp_path):
    """Root without CAP_SYS_PTRACE, and /dev/userfaultfd closed to it (a file
    of nobody's over it in a mount namespace of our own): refused as an
    unprivileged user is where vm.unprivileged_userfaultfd is 0."""
    with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
        open_to_users = f.read().strip() == "1"
    closed = tmp_path / "closed"
    closed.touch()
    os.chown(closed, 65534, 65534)
    os.chmod(closed, 0o600)
    caps = "-sys_ptrace,-dac_override,-dac_read_search"
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount --bind "$0" /dev/userfaultfd && exec "$@"', str(closed),
                        "setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--",
                        sys.executable, "-m", "vmlab", "real", "scan", "--size", "64K",
                        "--frames", "4"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, NO_COLOR="1"))
    if open_to_users:               # this kernel lets every user have it: it simply runs
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert ("userfaultfd is not available (userfaultfd(): Operation not permitted; "
            "/dev/userfaultfd: Permission denied)") in r.stderr
    assert "sysctl vm.unprivileged_userfaultfd=1" in r.stderr and "--device /dev/userfaultfd" in r.stderr


def test_on_a_mount_of_ones_own(lab):
    out = json.loads(real("hot-cold", "--size", "1M", "--frames", "32", "--lab", lab.path,
                          "--json").stdout)
    v, io = out["vmstat"], out["swap_io"]
    assert out["ok"] and io["reads"] == v["pswpin"] > 0 and io["writes"] == v["pswpout"] > 0
    assert not os.path.exists(os.path.join(lab.path, "swap.img"))      # removed at the end


@pytest.mark.parametrize("policy", ["nru", "aging", "working-set", "wsclock"])
def test_the_textbook_set_on_real_faults(policy):
    out = json.loads(real("hot-cold", "--size", "2M", "--frames", "64", "--policy", policy,
                          "--tick", "50", "--tau", "200", "--json").stdout)
    v = out["vmstat"]
    assert out["ok"] and v["ref_faults"] > 0 and v["pswpout"] > 0      # bits were sampled and used


@pytest.mark.parametrize("pager", [[], ["--python-pager"]], ids=["fast-path", "python"])
def test_ctrl_c_stops_a_run_at_once_and_unmounts_its_lab(pager, tmp_path):
    """SIGINT while the pager waits in its loop (compiled or Python) for a
    workload that touched its memory and sleeps: exit 130 within seconds,
    the embedded mount gone, the workload and the daemon ended."""
    import signal
    import time

    import psutil
    import vmlab_fs
    script = tmp_path / "sleeps.py"
    script.write_text("import time\n\ndef main(mem):\n    mem[0] = 1\n    time.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-m", "vmlab", "real", "--script", str(script),
                          "--size", "1M", "--frames", "64", *pager], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        head = p.stdout.readline()
        lab = head.split(" lab ")[1].split(",")[0]
        assert ("compiled fast path" in head) == (not pager), head
        time.sleep(1.0)
        assert vmlab_fs.mounted_fstype(lab) is not None and p.poll() is None   # still running
        started = psutil.Process(p.pid).children(recursive=True)    # the workload, the daemon
        assert started
        p.send_signal(signal.SIGINT)
        start = time.monotonic()
        assert p.wait(timeout=30) == 130
        assert time.monotonic() - start < 10
        assert vmlab_fs.mounted_fstype(lab) is None
        gone, alive = psutil.wait_procs(started, timeout=5)
        assert not alive
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_the_workload_dies_with_its_pager(tmp_path):
    """SIGKILL to vmlab real (nothing can be caught): its workload, whose
    faults no one else can serve, is killed with it. (The embedded mount's
    daemon outlives it, as a detached `vmlab mount` would; this test ends
    it and removes what it left.)"""
    import shutil
    import time

    import psutil
    script = tmp_path / "sleeps.py"
    script.write_text("import time\n\ndef main(mem):\n    mem[0] = 1\n    time.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-m", "vmlab", "real", "--script", str(script),
                          "--size", "1M", "--frames", "64"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    head = p.stdout.readline()
    lab = head.split(" lab ")[1].split(",")[0]
    deadline = time.monotonic() + 20
    while len(kids := psutil.Process(p.pid).children(recursive=True)) < 2 and \
            time.monotonic() < deadline:
        time.sleep(0.05)        # the workload is forked after the header
    time.sleep(0.5)             # and dies with its parent once set up
    lines = {k: k.cmdline() for k in kids}
    daemons = [k for k in kids if "vmlab_fs.daemon" in lines[k]]
    workloads = [k for k in kids if k not in daemons]
    try:
        assert len(daemons) == 1 and len(workloads) == 1, kids
        p.kill()
        p.wait()
        gone, alive = psutil.wait_procs(workloads, timeout=5)
        assert not alive
    finally:
        if p.poll() is None:
            p.terminate()               # vmlab real ends its run and its mount on SIGTERM
            p.wait(timeout=30)
        for k in kids:
            if k.is_running():
                k.terminate()           # the daemon unmounts on SIGTERM
        psutil.wait_procs(kids, timeout=10)
        backing = lines[daemons[0]][3] if daemons else None
        if backing and backing.startswith("/tmp/vmlab-backing-"):
            shutil.rmtree(backing, ignore_errors=True)
        if lab.startswith("/tmp/vmlab-mnt-") and not os.path.ismount(lab):
            os.rmdir(lab)
