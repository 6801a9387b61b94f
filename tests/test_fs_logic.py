"""Pure logic of the lab filesystem: the control language, latency models
and the accounting, without a mount."""

from __future__ import annotations

import errno

import pytest

from vmlab_fs.accounting import IOLOG_MAX, PENDING_MAX, Accounting, escape_path, parse_files, parse_stats
from vmlab_fs.control import Control, ControlError, parse_latency


def test_fault_rules_count_down_and_match_paths():
    c = Control()
    c.execute("fail read /a EIO 2\nfail write * ENOSPC 1  # comment\n")
    assert c.injected("read", "/b") == 0
    assert [c.injected("read", "/a") for _ in range(3)] == [errno.EIO, errno.EIO, 0]
    assert c.injected("write", "/anything") == errno.ENOSPC
    assert c.injected("write", "/anything") == 0 and c.rules == []


def test_first_matching_rule_wins_and_clear_by_path():
    c = Control()
    c.execute("fail rw /a ENOSPC all\nfail read * EIO all")
    assert c.injected("read", "/a") == errno.ENOSPC
    assert c.injected("read", "/z") == errno.EIO
    c.execute("clear /a")
    assert c.injected("read", "/a") == errno.EIO
    c.execute("clear")
    assert c.injected("read", "/a") == 0


def test_a_bad_line_stops_the_batch_and_is_remembered():
    c = Control()
    with pytest.raises(ControlError):
        c.execute("latency ssd\nlatency sideways\nlatency hdd")
    assert c.latency.name == "ssd" and "sideways" in c.last_error
    assert "last error" in c.render()


@pytest.mark.parametrize("spec,ns", [("none", 0), ("ssd", 100_000), ("250us", 250_000),
                                     ("4ms", 4_000_000), ("1.5ms", 1_500_000)])
def test_fixed_latencies(spec, ns):
    assert parse_latency(spec).delay_ns("/f", 0, 4096) == ns


@pytest.mark.parametrize("spec", ["", "fast", "5", "5s", "-1us", "1e3us", "61000ms"])
def test_bad_latencies(spec):
    with pytest.raises(ControlError):
        parse_latency(spec)


def test_hdd_model_range_and_streaming():
    h = parse_latency("hdd")
    first = h.delay_ns("/f", 0, 4096)
    streaming = h.delay_ns("/f", 4096, 4096)
    far = h.delay_ns("/f", 900 << 20, 4096)
    near = h.delay_ns("/f", (900 << 20) + 8 * 4096, 4096)
    other_file = h.delay_ns("/g", 0, 4096)
    assert streaming < 100_000
    for d in (first, far, near, other_file):
        assert 4_000_000 <= d <= 10_000_000
    assert near < far


def test_accounting_counts_only_successful_bytes():
    a = Accounting()
    a.record("read", "/f", 0, 4096, 1000, 4096)
    a.record("read", "/f", 4096, 4096, 1000, 100)          # short read at EOF
    a.record("write", "/f", 0, 4096, 1000, -errno.EIO)
    a.record("getattr", "/f", 0, 0, 1000, 0)
    s = parse_stats(a.render_stats())
    assert (s["reads"], s["writes"], s["read_bytes"], s["errors"], s["requests"]) == (2, 0, 4196, 1, 4)
    assert parse_files(a.render_files())["/f"].reads == 2
    assert a.iolog.decode().splitlines()[2].split()[-1] == "-EIO"


def test_paths_with_spaces_stay_one_column():
    a = Accounting()
    a.record("write", "/my file\tx", 0, 4096, 1000, 4096)
    assert escape_path("/my file") == "/my\\040file"
    assert list(parse_files(a.render_files())) == ["/my file\tx"]
    assert len(a.iolog.decode().split()) == 7


def test_iolog_rotates_instead_of_growing_forever():
    a = Accounting()
    lines = 0
    for i in range(IOLOG_MAX // 40):
        a.record("read", "/f", i, 4096, 1000, 4096)
        if i % 20_000 == 0:                  # a reader now and then (more often than PENDING_MAX)
            lines = len(a.iolog)
    assert 0 < len(a.iolog) <= IOLOG_MAX and a.rotations > 0 and lines > 0
    assert a.totals.reads == IOLOG_MAX // 40
    assert a.iolog.endswith(b" 4096\n")


def test_unread_iolog_keeps_only_the_recent_requests():
    a = Accounting()
    for i in range(PENDING_MAX + 10):
        a.record("write", "/f", i, 4096, 1000, 4096)
    lines = a.iolog.decode().splitlines()
    assert len(lines) == PENDING_MAX and lines[-1].split()[3] == str(PENDING_MAX + 9)
