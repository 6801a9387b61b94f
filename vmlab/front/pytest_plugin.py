"""vmlab's pytest plugin (loaded automatically once vmlab is installed).

Fixtures for other projects' integration tests:

- ``vmlab_mount``: a lab filesystem mounted over a temporary backing
  directory (a ``vmlab_fs.Mount``, path-like as ``tmp_path``: ``.path``,
  ``.backing``, ``.stats()``, ``.files()``, ``.iolog()``, ``.control(...)``),
  always unmounted.
- ``vmlab_replay``: ``vmlab_replay(refs, frames, policy)`` -> faults, a
  reference string replayed under a policy (a name, ``FILE.py:Class``, a
  Policy class or instance): for grading a student's policy.
- ``vmlab_machine``: a ``vmlab.Machine`` on ``vmlab_mount``, closed after the
  test. Options with a marker, e.g. ``@pytest.mark.vmlab(frames=4,
  policy="lru", latency="hdd")``; an unknown option fails the test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    import vmlab_fs
    import vmlab


MACHINE_OPTIONS = ("frames", "policy", "swap_mb", "stack_max", "phys_base", "seed", "io_timeout")
MOUNT_OPTIONS = ("latency",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vmlab(**options): options for the vmlab fixtures: latency (of "
        "vmlab_mount), and frames, policy, swap_mb, stack_max, phys_base, seed, "
        "io_timeout (of vmlab_machine)")


def _options(request: pytest.FixtureRequest, names: tuple[str, ...]) -> dict:
    """The ``@pytest.mark.vmlab`` options among ``names``; an unknown option
    fails the test, naming the ones there are."""
    marker = request.node.get_closest_marker("vmlab")
    given = dict(marker.kwargs) if marker else {}
    unknown = sorted(set(given) - set(MACHINE_OPTIONS) - set(MOUNT_OPTIONS))
    if unknown or (marker and marker.args):
        what = ", ".join(unknown) if unknown else f"arguments {marker.args!r}"
        pytest.fail(f"@pytest.mark.vmlab: unknown option {what}; "
                    f"use keywords among {', '.join(MOUNT_OPTIONS + MACHINE_OPTIONS)}",
                    pytrace=False)
    return {k: v for k, v in given.items() if k in names}


@pytest.fixture
def vmlab_mount(tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Iterator["vmlab_fs.Mount"]:
    """A mounted lab filesystem (path-like, as ``tmp_path``), unmounted
    after the test even if it fails. Marker option: ``latency``."""
    import vmlab_fs
    root = tmp_path_factory.mktemp("vmlab")
    (root / "backing").mkdir()
    (root / "mnt").mkdir()
    with vmlab_fs.mount(str(root / "backing"), str(root / "mnt"),
                        **_options(request, MOUNT_OPTIONS)) as m:
        yield m


@pytest.fixture
def vmlab_machine(vmlab_mount, request: pytest.FixtureRequest) -> Iterator["vmlab.Machine"]:
    """A Machine whose swap lives on ``vmlab_mount``; marker options as Machine's."""
    from vmlab import Machine
    with Machine(lab=vmlab_mount.path, **_options(request, MACHINE_OPTIONS)) as m:
        yield m


@pytest.fixture
def vmlab_replay():
    """``vmlab_replay(refs, frames, policy, writes=None, seed=0)`` -> the fault
    count of ``refs`` under ``policy``; ``writes``: 1 where a reference stores
    (the dirty bits). A misbehaving policy raises ``vmlab.PolicyError``."""
    from vmlab.replay.generic import replay_spec

    def replay(refs, frames: int, policy, writes=None, seed: int = 0) -> int:
        refs = list(refs)
        return replay_spec(policy, refs, bytes(len(refs)) if writes is None else writes, frames, seed)
    return replay
