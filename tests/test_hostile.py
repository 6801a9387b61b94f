"""Hostile input: every bad call, trace and control command gets a clear
error of a known kind, never a traceback from deep inside or a hang.
The tables below are the bad inputs tried."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmlab_fs.control import Control, ControlError
from vmlab import MapError, SegFault, VMError
from vmlab.replay.traces import TraceError, parse_lackey, parse_refs, read_trace

PAGE = 4096
PHYS_BASE = 0xC0000000

# (description, call on a fresh process p, expected exception)
BAD_CALLS = [
    ("negative address", lambda p: p.read(-1, 1), ValueError),
    ("address of the wrong type", lambda p: p.read("0x1000", 1), TypeError),
    ("float address", lambda p: p.read(4096.0, 1), TypeError),
    ("negative length", lambda p: p.read(PHYS_BASE - 8, -5), ValueError),
    ("length of the wrong type", lambda p: p.read(PHYS_BASE - 8, "8"), TypeError),
    ("bool length", lambda p: p.read(PHYS_BASE - 8, True), TypeError),
    ("huge length", lambda p: p.read(PHYS_BASE - 8, 1 << 60), SegFault),
    ("kernel address", lambda p: p.read(PHYS_BASE, 1), SegFault),
    ("far kernel address", lambda p: p.write(2**64 - 1, b"x"), SegFault),
    ("write of a str", lambda p: p.write(PHYS_BASE - 8, "text"), TypeError),
    ("write of an int", lambda p: p.write(PHYS_BASE - 8, 5), TypeError),
    ("write running past PHYS_BASE", lambda p: p.write(PHYS_BASE - 2, b"four"), SegFault),
    ("push of a str", lambda p: p.push("x"), TypeError),
    ("esp of the wrong type", lambda p: setattr(p, "esp", "top"), TypeError),
    ("esp above PHYS_BASE", lambda p: setattr(p, "esp", PHYS_BASE + PAGE), ValueError),
    ("mmap at 0", lambda p: p.mmap(None, 0, length=PAGE), MapError),
    ("mmap unaligned", lambda p: p.mmap(None, 0x10000001, length=PAGE), MapError),
    ("mmap negative length", lambda p: p.mmap(None, 0x10000000, length=-PAGE), MapError),
    ("mmap zero length", lambda p: p.mmap(None, 0x10000000, length=0), MapError),
    ("mmap huge length", lambda p: p.mmap(None, 0x10000000, length=1 << 40), MapError),
    ("mmap into the kernel", lambda p: p.mmap(None, PHYS_BASE, length=PAGE), MapError),
    ("mmap of a missing file", lambda p: p.mmap("/nonexistent/file", 0x10000000), MapError),
    ("mmap of a directory", lambda p: p.mmap("/tmp", 0x10000000), MapError),
    ("mmap unaligned offset", lambda p: p.mmap("/etc/hostname", 0x10000000, offset=100), MapError),
    ("mmap offset past the end", lambda p: p.mmap("/etc/hostname", 0x10000000, offset=1 << 30), MapError),
    ("munmap of nothing", lambda p: p.munmap(0x10000000), MapError),
    ("munmap of a str", lambda p: p.munmap("x"), TypeError),
    ("mmap length of the wrong type", lambda p: p.mmap(None, 0x10000000, length="4096"), TypeError),
    ("exit status of the wrong type", lambda p: p.exit("x"), TypeError),
    ("exit status out of range", lambda p: p.exit(2**100), ValueError),
    ("negative exit status", lambda p: p.exit(-1), ValueError),
    ("munmap of the stack", lambda p: p.munmap(PHYS_BASE - PAGE), MapError),
    ("load_elf of a text file", lambda p: p.load_elf("/etc/hostname"), MapError),
    ("load_elf of a missing file", lambda p: p.load_elf("/nonexistent"), MapError),
]


@pytest.mark.parametrize("what,call,error", BAD_CALLS, ids=[w for w, _, _ in BAD_CALLS])
def test_bad_api_calls(machine, what, call, error):
    m = machine(frames=2)
    p = m.spawn()
    before = p.maps()
    with pytest.raises(error) as e:
        call(p)
    assert str(e.value) and "\n" not in str(e.value)
    if error is SegFault:
        assert not p.alive
    else:
        assert p.alive and p.maps() == before
    q = m.spawn()                                 # the machine goes on
    q.write(PHYS_BASE - 8, b"fine")
    assert q.read(PHYS_BASE - 8, 4) == b"fine"


BAD_MACHINES = [
    dict(frames=0), dict(frames=-3), dict(frames="8"), dict(frames=2.5), dict(frames=True),
    dict(swap_mb=0), dict(swap_mb=-1), dict(swap_mb="4"), dict(swap_mb=0.001),
    dict(policy="belady"), dict(policy="opt"), dict(policy=None),
    dict(phys_base=0x1001), dict(phys_base=-PAGE), dict(phys_base=1 << 60),
    dict(stack_max=0), dict(io_timeout=0), dict(io_timeout="soon"),
    dict(lab="/nonexistent/lab"), dict(latency="warp"),
    dict(frames=2**40),                                     # more memory than there is
]


@pytest.mark.parametrize("kwargs", BAD_MACHINES, ids=[str(k) for k in BAD_MACHINES])
def test_bad_machines(kwargs):
    from vmlab import Machine
    with pytest.raises((ValueError, TypeError, VMError)) as e:
        Machine(**kwargs)
    assert str(e.value) and "\n" not in str(e.value)


def test_a_dead_process_and_a_closed_machine(machine):
    m = machine(frames=2)
    p = m.spawn()
    p.exit(0)
    for call in (lambda: p.read(PHYS_BASE - 8, 1), lambda: p.fork(), lambda: p.exit(1),
                 lambda: p.mmap(None, 0x10000000, length=PAGE)):
        with pytest.raises(VMError, match="has exited"):
            call()
    m.close()
    with pytest.raises(VMError, match="closed"):
        m.spawn()


# -- traces, fuzzed ------------------------------------------------------------

LACKEY_LINE = st.one_of(
    st.from_regex(r"\A(I |  L | S | M )?[0-9a-fA-FxzZ]{0,20},?-?[0-9]{0,25}\Z", fullmatch=True),
    st.from_regex(r"\A==[0-9]+== .*\Z", fullmatch=True),
    st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(st.lists(LACKEY_LINE, max_size=30))
def test_lackey_parser_only_ever_raises_trace_errors(lines):
    try:
        t = parse_lackey(lines)
    except TraceError as e:
        assert str(e).startswith("line ") and "\n" not in str(e)
        return
    assert len(t.pages) == len(t.writes)
    assert all(0 <= p < 1 << 52 for p in t.pages)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.from_regex(r"\A[0-9 ,\t]{0,40}\Z", fullmatch=True)),
                max_size=20))
def test_refs_parser_only_ever_raises_trace_errors(lines):
    try:
        t = parse_refs(lines)
    except TraceError as e:
        assert str(e).startswith("line ")
        return
    assert all(p >= 0 for p in t.pages)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_any_file_is_a_trace_or_a_trace_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("t") / "blob"
    path.write_bytes(blob)
    try:
        read_trace(str(path))
    except TraceError as e:
        assert "\n" not in str(e)


# -- control commands, fuzzed ----------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=40),
    st.tuples(st.sampled_from(["latency", "fail", "clear", "reset", "LATENCY", "Fail"]),
              st.lists(st.one_of(st.sampled_from(["read", "write", "rw", "*", "/a", "EIO", "ENOSPC",
                                                  "all", "0", "3", "ssd", "hdd", "5ms", "1e9us",
                                                  "99999999ms", "-1"]), st.text(max_size=8)),
                       max_size=5)).map(lambda t: " ".join([t[0], *t[1]]))), max_size=6))
def test_control_language_only_ever_raises_control_errors(lines):
    c = Control()
    try:
        c.execute("\n".join(lines))
    except ControlError as e:
        assert str(e) and "\n" not in str(e) and c.last_error == str(e)
    assert c.render().startswith("latency ")
    for rule in c.rules:
        assert rule.remaining is None or rule.remaining > 0


def test_a_machine_on_a_full_lab_is_a_lab_error_and_leaves_nothing(shared_lab):
    from vmlab import LabError, Machine, OutOfMemory
    shared_lab.control("fail write * ENOSPC all")
    try:
        with pytest.raises(LabError, match="No space left on device"):
            Machine(lab=shared_lab.path)
    finally:
        shared_lab.control("clear")
    assert not [n for n in os.listdir(shared_lab.backing) if n.startswith("swap")]
    with pytest.raises(OutOfMemory, match="cannot allocate"):
        Machine(frames=2**40, lab=shared_lab.path)
    assert not [n for n in os.listdir(shared_lab.backing) if n.startswith("swap")]
