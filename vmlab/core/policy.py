"""Replacement policies: one public interface, and the built-ins written on it.

A policy is told what happens to frames and, when memory is full, picks the
victim. Each frame it is given has ``index``, ``page`` (a hashable identity
of what it holds), ``referenced`` (a bool the policy may clear) and
``dirty``. The calls:

    loaded(frame)       a page was just put in ``frame``
    touched(frame)      ``frame`` was accessed (only if ``wants_touch``)
    released(frame)     ``frame`` was emptied (evicted, or its page freed)
    tick()              every ``tick_every`` accesses (0: never), for NRU, aging
    victim(candidates)  return one of ``candidates``: the frames that may be
                        evicted now (a sequence, in frame-table order)

The same class runs in ``Machine(policy=...)``, in ``vmlab trace`` and in
``vmlab run``; a user's class runs in a guard (``guarded``): a policy that
raises, returns something that is not a candidate, or takes longer than
``DECISION_LIMIT`` seconds for one call gets a ``PolicyError``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import threading
import time
from typing import Any, Sequence

from vmlab.core.errors import PolicyError

DECISION_LIMIT = 1.0        # seconds a policy may take for one call


class Policy:
    """Base of every replacement policy. Subclass it, override what you need.

    >>> class MyFifo(Policy):
    ...     def __init__(self, *args, **kwargs):
    ...         super().__init__(*args, **kwargs)
    ...         self.order = []
    ...     def loaded(self, frame):
    ...         self.order.append(frame.index)
    ...     def released(self, frame):
    ...         self.order.remove(frame.index)
    ...     def victim(self, candidates):
    ...         allowed = {f.index: f for f in candidates}
    ...         return next(allowed[i] for i in self.order if i in allowed)
    """

    name = ""               # shown in errors and tables; the class name, lower case, if empty
    wants_touch = False     # call touched() on every access
    tick_every = 0          # call tick() every so many accesses (0: never)

    def __init__(self, frames: int = 0, seed: int = 0) -> None:
        """``frames``: how many the machine has; ``seed`` for ``self.rng``."""
        self.nframes = frames
        self.rng = random.Random(seed)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__.lower()

    def loaded(self, frame: Any) -> None:
        """A page was just put in ``frame``."""

    def touched(self, frame: Any) -> None:
        """``frame`` was accessed (called only if ``wants_touch``)."""

    def released(self, frame: Any) -> None:
        """``frame`` was emptied."""

    def tick(self) -> None:
        """Another ``tick_every`` accesses went by."""

    def victim(self, candidates: Sequence[Any]) -> Any:
        """One of ``candidates`` to evict."""
        raise NotImplementedError(f"{type(self).__name__} has no victim()")


class Clock(Policy):
    """Textbook one-bit second chance (Corbató 1968; Tanenbaum, *Modern
    Operating Systems*, 3.4.5): the reference bit is set on load and on
    every access; the hand sweeps, clearing set bits, takes the first frame
    whose bit is clear, then moves one past it."""

    name = "clock"

    def __init__(self, frames: int = 0, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.hand = 0

    def victim(self, candidates: Sequence[Any]) -> Any:
        allowed = {f.index: f for f in candidates}
        n = self.nframes
        for _ in range(2 * n + 1):          # two sweeps clear every bit
            f = allowed.get(self.hand)
            self.hand = (self.hand + 1) % n
            if f is None:
                continue
            if f.referenced:
                f.referenced = False
                continue
            return f
        return candidates[0]


class Fifo(Policy):
    """The frame loaded longest ago (first in, first out)."""

    name = "fifo"

    def __init__(self, frames: int = 0, seed: int = 0) -> None:
        super().__init__(frames, seed)
        self.order: dict[Any, None] = {}

    def loaded(self, frame: Any) -> None:
        self.order.pop(frame, None)
        self.order[frame] = None

    def released(self, frame: Any) -> None:
        self.order.pop(frame, None)

    def victim(self, candidates: Sequence[Any]) -> Any:
        allowed = set(candidates)
        return next(f for f in self.order if f in allowed)


class Lru(Fifo):
    """The frame used longest ago (every access moves it to the back)."""

    name = "lru"
    wants_touch = True

    def touched(self, frame: Any) -> None:
        order = self.order
        del order[frame]
        order[frame] = None


class Random(Policy):
    """A uniformly chosen candidate; seeded, so runs repeat."""

    name = "random"

    def victim(self, candidates: Sequence[Any]) -> Any:
        return self.rng.choice(candidates)


POLICIES: dict[str, type[Policy]] = {p.name: p for p in (Clock, Fifo, Lru, Random)}


def access_hook(policy: Any) -> Any:
    """What the MMU calls on every access: ``touched`` if the policy wants
    it, and ``tick`` every ``tick_every`` accesses; None if neither."""
    every, touched = policy.tick_every, policy.touched if policy.wants_touch else None
    if not every:
        return touched
    count = 0

    def touch(frame: Any) -> None:
        nonlocal count
        if touched is not None:
            touched(frame)
        count += 1
        if count >= every:
            count = 0
            policy.tick()
    return touch


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


def make_policy(spec: Any, frames: int, seed: int = 0) -> Policy:
    """A policy for ``frames`` frames from a name, a spec (see
    ``policy_class``), a Policy class or instance; a user's runs guarded.
    Raises ValueError or TypeError for what is none of these."""
    if isinstance(spec, Policy):
        policy = spec
        if not policy.nframes:
            policy.nframes = frames
    elif isinstance(spec, str):
        policy = _build(policy_class(spec), frames, seed)
    elif isinstance(spec, type) and issubclass(spec, Policy):
        policy = _build(spec, frames, seed)
    else:
        raise TypeError(f"policy must be a name, 'FILE.py:Class', a Policy class or instance, "
                        f"not {spec!r:.60}")
    return policy if type(policy) in POLICIES.values() else Guarded(policy)


def _build(cls: type[Policy], frames: int, seed: int) -> Policy:
    try:
        return cls(frames, seed=seed)
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
