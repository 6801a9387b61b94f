"""vmlab's lab scenarios (installed as ``vmlab_scenarios``): short programs
on the public API, each verifying its own data. ``vmlab run --list``."""

from . import features, pintos  # noqa: F401  (registering them)
from .common import REGISTRY, Scenario, ScenarioFailed

__all__ = ["REGISTRY", "Scenario", "ScenarioFailed"]
