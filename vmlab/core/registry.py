"""The replacement policies by name, a user's loaded from ``FILE.py:Class``
or ``module:Class``, and the guard a user's policy runs in: a policy that
raises, returns something that is not a candidate, or takes longer than
``DECISION_LIMIT`` seconds for one call gets a ``PolicyError``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
import time
from typing import Any, Sequence

from vmlab.core.errors import PolicyError
from vmlab.core.policy import Clock, Fifo, Lru, Policy, Random
from vmlab.core.textbook import TEXTBOOK

DECISION_LIMIT = 1.0        # seconds a policy may take for one call

POLICIES: dict[str, type[Policy]] = {p.name: p for p in (Clock, Fifo, Lru, Random, *TEXTBOOK)}


def policy_class(spec: str) -> type[Policy]:
    """A policy class from a name (``clock``), ``path/to/file.py:Class`` or
    ``module:Class``. Raises ValueError with what to do."""
    if ":" not in spec:
        if spec == "opt":
            raise ValueError("opt needs to know the future: use it with 'vmlab trace'")
        if spec not in POLICIES:
            raise ValueError(f"unknown policy {spec!r}: use one of {', '.join(POLICIES)}, "
                             "or FILE.py:Class, or module:Class")
        return POLICIES[spec]
    where, _, name = spec.rpartition(":")
    try:
        if where.endswith(".py") or os.sep in where:
            loader = importlib.util.spec_from_file_location(f"vmlab_user_policy_{abs(hash(where))}", where)
            if loader is None or not os.path.isfile(where):
                raise ValueError(f"no policy file {where!r}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"cannot load {where!r} for policy {spec!r}: {type(e).__name__}: {e}") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise ValueError(f"{spec!r}: {name!r} is not a Policy class in {where!r} "
                         "(from vmlab import Policy; class Mine(Policy): ...)")
    return cls


def make_policy(spec: Any, frames: int, seed: int = 0, **options: Any) -> Policy:
    """A policy for ``frames`` frames from a name, a spec (see
    ``policy_class``), a Policy class or instance; a user's runs guarded.
    ``options`` (``tick``, ``tau``) go to the policies that take them.
    Raises ValueError or TypeError for what is none of these."""
    policy = instantiate(spec, frames, seed, **options)
    return policy if type(policy) in POLICIES.values() else Guarded(policy)


def instantiate(spec: Any, frames: int, seed: int = 0, **options: Any) -> Policy:
    """The policy ``spec`` names, made for ``frames`` frames (an instance is
    taken as it is), unguarded. Raises ValueError, TypeError or PolicyError."""
    if isinstance(spec, Policy):
        if not spec.nframes:
            spec.nframes = frames
        return spec
    if isinstance(spec, str):
        return _build(policy_class(spec), frames, seed, options)
    if isinstance(spec, type) and issubclass(spec, Policy):
        return _build(spec, frames, seed, options)
    raise TypeError(f"policy must be a name, 'FILE.py:Class', a Policy class or instance, "
                    f"not {spec!r:.60}")


def _build(cls: type[Policy], frames: int, seed: int, options: dict[str, Any]) -> Policy:
    """An instance of ``cls``; the options it takes (its ``OPTIONS``) are given."""
    taken = {k: v for k, v in options.items() if v is not None and k in getattr(cls, "OPTIONS", ())}
    try:
        return cls(frames, seed=seed, **taken)
    except Exception as e:
        raise PolicyError(f"policy {cls.name}: __init__() raised {type(e).__name__}: {e}") from None


class _TooLong(BaseException):
    """Raised into a policy's call that outlived DECISION_LIMIT."""


class Guarded:
    """A user's policy behind a guard: every call that raises, a victim that
    is not a candidate (or None), and a call longer than ``limit`` seconds
    becomes one PolicyError naming the policy, the call and the fault."""

    def __init__(self, policy: Policy, limit: float = DECISION_LIMIT) -> None:
        self.inner, self.limit = policy, limit
        self.name = policy.name
        self.nframes = policy.nframes
        self.wants_touch, self.tick_every = policy.wants_touch, policy.tick_every
        self._since = 0.0
        self._thread = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watchdog, name="vmlab-policy-watchdog",
                                       daemon=True)
        self._watch.start()

    def _call(self, what: str, *args: Any) -> Any:
        try:
            with self._lock:
                self._since, self._thread = time.monotonic(), threading.get_ident()
            try:
                return getattr(self.inner, what)(*args)
            finally:
                with self._lock:
                    self._since = 0.0
        except _TooLong:
            raise PolicyError(f"policy {self.name}: {what}() took longer than {self.limit:g} s "
                              "(the limit for one decision)") from None
        except PolicyError:
            raise
        except Exception as e:
            raise PolicyError(f"policy {self.name}: {what}() raised {type(e).__name__}: "
                              f"{str(e)[:200]}") from None

    def _watchdog(self) -> None:
        import ctypes
        while not self._stop.wait(min(0.05, self.limit / 4)):
            with self._lock:
                if self._since and time.monotonic() - self._since > self.limit:
                    self._since = 0.0
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self._thread), ctypes.py_object(_TooLong))

    def close(self) -> None:
        """Stop the watchdog (the machine is done with this policy)."""
        self._stop.set()
        self._watch.join()

    def loaded(self, frame: Any) -> None:
        self._call("loaded", frame)

    def touched(self, frame: Any) -> None:
        self._call("touched", frame)

    def released(self, frame: Any) -> None:
        self._call("released", frame)

    def tick(self) -> None:
        self._call("tick")

    def victim(self, candidates: Sequence[Any]) -> Any:
        chosen = self._call("victim", candidates)
        if not any(chosen is f for f in candidates):
            raise PolicyError(f"policy {self.name}: victim() returned {chosen!r:.60}, "
                              f"not one of the {len(candidates)} candidates")
        return chosen
