"""vmlab's pytest plugin (loaded automatically once vmlab is installed).

Fixtures for other projects' integration tests:

- ``vmlab_mount``: a lab filesystem mounted over a temporary backing
  directory (an ``fs.Mount``: ``.path``, ``.backing``, ``.stats()``,
  ``.files()``, ``.iolog()``, ``.control(...)``), always unmounted.
- ``vmlab_machine``: a ``vmlab.Machine`` on ``vmlab_mount``, closed after the
  test. Options with a marker: ``@pytest.mark.vmlab(frames=4, policy="lru")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    import fs
    import vmlab


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vmlab(**options): Machine options for the vmlab_machine fixture "
        "(frames, policy, swap_mb, stack_max, phys_base, seed)")


@pytest.fixture
def vmlab_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator["fs.Mount"]:
    """A mounted lab filesystem, unmounted after the test (even if it fails)."""
    import fs
    root = tmp_path_factory.mktemp("vmlab")
    (root / "backing").mkdir()
    (root / "mnt").mkdir()
    with fs.mount(str(root / "backing"), str(root / "mnt")) as m:
        yield m


@pytest.fixture
def vmlab_machine(vmlab_mount, request: pytest.FixtureRequest) -> Iterator["vmlab.Machine"]:
    """A Machine whose swap lives on ``vmlab_mount``."""
    from vmlab import Machine
    marker = request.node.get_closest_marker("vmlab")
    options = dict(marker.kwargs) if marker else {}
    with Machine(lab=vmlab_mount.path, **options) as m:
        yield m
