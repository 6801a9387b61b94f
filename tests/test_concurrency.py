"""Load: concurrent clients on one mount, several Machines on one mount,
and a long eviction churn whose memory stays bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from vmlab import Machine

PAGE = 4096
CLIENTS, PAGES, ROUNDS = 4, 16, 5

CLIENT = r'''
import mmap, os, sys
path, me, pages, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
torn = 0
for r in range(rounds):
    for i in range(pages):                      # my own pages: write, read back
        page = me * pages + i
        buf[:] = bytes([me, r, i, 7]) * 1024
        os.pwritev(fd, [buf], page * 4096)
        os.preadv(fd, [buf], page * 4096)
        if bytes(buf) != bytes([me, r, i, 7]) * 1024:
            sys.exit(f"client {me}: page {page} round {r} came back wrong")
    buf[:] = bytes([me + 1]) * 4096             # everyone hammers the shared page 0 of the tail
    os.pwritev(fd, [buf], 4 * pages * 4096)
    os.preadv(fd, [buf], 4 * pages * 4096)
    if len(set(bytes(buf))) != 1:
        torn += 1
os.close(fd)
print(torn)
'''


def test_four_concurrent_clients(lab):
    path = os.path.join(lab.path, "shared.bin")
    with open(os.path.join(lab.backing, "shared.bin"), "wb") as f:
        f.write(bytes((CLIENTS * PAGES + 1) * PAGE))
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, path, str(me), str(PAGES), str(ROUNDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me in range(CLIENTS)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert [int(o) for o, _ in outs] == [0] * CLIENTS          # no torn shared page
    with open(os.path.join(lab.backing, "shared.bin"), "rb") as f:
        data = f.read()
    for me in range(CLIENTS):                                    # no lost write
        for i in range(PAGES):
            page = me * PAGES + i
            assert data[page * PAGE:(page + 1) * PAGE] == bytes([me, ROUNDS - 1, i, 7]) * 1024
    tail = data[CLIENTS * PAGES * PAGE:]
    assert len(set(tail)) == 1 and tail[0] in range(1, CLIENTS + 1)
    f = lab.files()["/shared.bin"]                               # exact counts
    per_client = ROUNDS * (PAGES + 1)
    assert (f.reads, f.writes) == (CLIENTS * per_client, CLIENTS * per_client)


def test_several_machines_share_one_mount(shared_lab):
    machines = [Machine(frames=3, swap_mb=1, lab=shared_lab.path) for _ in range(3)]
    try:
        names = [os.path.basename(m.swap_path) for m in machines]
        assert len(set(names)) == 3
        procs = [m.spawn() for m in machines]
        for p in procs:
            p.mmap(None, 0x10000000, length=12 * PAGE)
        for rnd in range(3):                     # interleaved, so their I/O mixes
            for i in range(12):
                for k, p in enumerate(procs):
                    p.write(0x10000000 + i * PAGE, bytes([k, rnd, i]))
        for k, p in enumerate(procs):
            assert all(p.read(0x10000000 + i * PAGE, 3) == bytes([k, 2, i]) for i in range(12))
        files = shared_lab.files()
        for m, name in zip(machines, names):
            s = m.vmstat()
            assert files["/" + name].reads == s["pswpin"] > 0
            assert files["/" + name].writes == s["pswpout"] + 1
    finally:
        for m in machines:
            m.close()


def _rss_kib(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss // 1024


def test_long_churn_keeps_memory_bounded():
    """VMLAB_CHURN_SECONDS sets the length (default 6 s in CI; see README)."""
    seconds = float(os.environ.get("VMLAB_CHURN_SECONDS", "6"))
    with Machine(frames=8, swap_mb=2) as m:
        p = m.spawn()
        a = p.mmap(None, 0x10000000, length=64 * PAGE)
        rss, n = [], 0
        start = time.monotonic()
        while (t := time.monotonic() - start) < seconds:
            for i in range(64):
                p.write(a + i * PAGE, bytes([n & 0xFF, i]))
            n += 1
            if len(rss) < int(3 * t / seconds) + 1:          # at 0, 1/3 and 2/3 of the run
                rss.append((_rss_kib(os.getpid()), _rss_kib(m.mount.pid)))
        rss.append((_rss_kib(os.getpid()), _rss_kib(m.mount.pid)))
        s = m.vmstat()
        assert s["pswpout"] > 1000 and all(p.read(a + i * PAGE, 2) == bytes([(n - 1) & 0xFF, i])
                                           for i in range(64))
    grow_vm = rss[-1][0] - rss[1][0]
    grow_daemon = rss[-1][1] - rss[1][1]
    print(f"churn {seconds:.0f} s: {s['pswpout']} swap-outs; RSS growth after warm-up: "
          f"test process {grow_vm} KiB, daemon {grow_daemon} KiB")
    assert grow_vm < 8 * 1024 and grow_daemon < 20 * 1024     # iolog alone may reach 16 MiB
