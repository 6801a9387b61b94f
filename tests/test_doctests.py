"""The doctests of the packages whose folders carry other names than their
imports (fs/ is vmlab_fs, swapdisk/ is vmlab_swapdisk, demo/ is
vmlab_scenarios), run on the modules as installed. (vmlab/'s own run
through pytest's --doctest-modules.)"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import vmlab_fs
import vmlab_scenarios
import vmlab_swapdisk

MODULES = [f"{pkg.__name__}.{m.name}" for pkg in (vmlab_fs, vmlab_swapdisk, vmlab_scenarios)
           for m in pkgutil.iter_modules(pkg.__path__)] + [
    p.__name__ for p in (vmlab_fs, vmlab_swapdisk, vmlab_scenarios)]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_doctests_are_there():
    tried = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert tried >= 20, tried
