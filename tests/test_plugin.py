"""The pytest plugin, used from a separate project in a temporary directory."""

from __future__ import annotations

import vmlab_fs
from tests.conftest import mounts_of_this_run

PROJECT_TESTS = '''
import os
import pytest

def test_mount_counts_requests(vmlab_mount):
    fd = os.open(os.path.join(vmlab_mount.path, "f"), os.O_CREAT | os.O_RDWR | os.O_DIRECT)
    import mmap
    page = mmap.mmap(-1, 4096)
    os.pwritev(fd, [page], 0)
    os.close(fd)
    assert vmlab_mount.files()["/f"].writes == 1

@pytest.mark.vmlab(frames=2, policy="fifo")
def test_machine_swaps_on_the_mount(vmlab_machine, vmlab_mount):
    assert vmlab_machine.lab == vmlab_mount.path
    p = vmlab_machine.spawn()
    a = p.mmap(None, 0x10000000, length=8 * 4096)
    for i in range(8):
        p.write(a + i * 4096, bytes([i]))
    assert [p.read(a + i * 4096, 1)[0] for i in range(8)] == list(range(8))
    s = vmlab_machine.vmstat()
    assert s["nr_frames"] == 2 and vmlab_mount.files()["/swap.img"].reads == s["pswpin"] > 0

def test_a_failing_test_still_unmounts(vmlab_machine):
    assert False, "on purpose, mounted at " + vmlab_machine.lab
'''


def test_fixtures_work_in_a_separate_project(pytester):
    pytester.makepyfile(test_project=PROJECT_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, failed=1)
    failed_at = result.stdout.str().split("on purpose, mounted at ")[-1].split()[0]
    assert failed_at.startswith(str(pytester.path))   # its mounts lived under this directory
    assert vmlab_fs.mounted_fstype(failed_at) is None       # and the failing test's is gone too
    assert not mounts_of_this_run(str(pytester.path))


def test_marker_is_registered(pytester):
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.vmlab(**options)*"])


NEXT_TO_PYFILESYSTEM2 = '''
import fs                      # PyFilesystem2, not vmlab's lab filesystem
import vmlab_fs

def test_both(vmlab_mount):
    mem = fs.open_fs("mem://")
    mem.writetext("/a.txt", "pyfilesystem2")
    (vmlab_mount / "a.txt").write_text(mem.readtext("/a.txt"))
    assert isinstance(vmlab_mount, vmlab_fs.Mount)
    assert vmlab_mount.files()["/a.txt"].writes == 1
'''


def test_the_plugin_next_to_pyfilesystem2(pytester):
    """A project whose tests import PyFilesystem2's `fs` uses the plugin."""
    pytester.makepyfile(test_project=NEXT_TO_PYFILESYSTEM2)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


MARKERS = '''
import os
import pytest

@pytest.mark.vmlab(latency="hdd", frames=3)
def test_every_option_is_honoured(vmlab_machine, vmlab_mount):
    assert open(os.path.join(vmlab_mount, ".vmlab", "control")).read().startswith("latency hdd")
    assert vmlab_machine.vmstat()["nr_frames"] == 3
    assert os.fspath(vmlab_mount) == str(vmlab_mount) == vmlab_mount.path
    assert os.path.join(vmlab_mount, "x") == str(vmlab_mount / "x") == vmlab_mount.path + "/x"

@pytest.mark.vmlab(frams=3)
def test_a_misspelt_option_is_refused(vmlab_machine):
    pass
'''


def test_marker_options_are_honoured_or_refused(pytester):
    pytester.makepyfile(test_project=MARKERS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.vmlab: unknown option frams; use keywords among latency, frames*"])
