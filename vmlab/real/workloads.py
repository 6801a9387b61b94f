"""The built-in workloads of ``vmlab real``: plain functions of a writable
memoryview (``fn(mem, seed, frames)``) that run natively, numpy doing the
work in C, and return a summary with ``ok`` (their own check of the result).

The same functions run over the real machine's region and, for
``--against-kernel``, over a file mapped shared under a memory cgroup.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any, Callable

PAGE = 4096
STEP = 1 << 15      # elements a chunk: temporaries stay small (256 KiB), beside the frames


def scan(mem: memoryview, seed: int = 0, frames: int = 0) -> dict:
    """Two sequential passes: write every 8-byte word, then read them all."""
    import numpy as np
    a = np.frombuffer(mem, dtype=np.int64)
    for i in range(0, len(a), STEP):
        a[i:i + STEP] = np.arange(i, min(i + STEP, len(a)), dtype=np.int64)
    total = sum(int(a[i:i + STEP].sum()) for i in range(0, len(a), STEP))
    return {"ok": total == len(a) * (len(a) - 1) // 2, "pages": len(mem) // PAGE}


def _touches(mem: memoryview, seed: int, hot: bool) -> dict:
    """Twice as many page touches as pages, each adding one to a page's first
    word; uniform, or hot-cold (90% of them on 10% of the pages). Checked
    against the counts of the touches made."""
    import numpy as np
    rng = np.random.default_rng(seed)
    words = np.frombuffer(mem, dtype=np.int64)
    n = len(mem) // PAGE
    k = 2 * n
    if hot:
        hot_n = max(1, n // 10)
        idx = np.where(rng.random(k) < 0.9, rng.integers(0, hot_n, k), rng.integers(0, n, k))
    else:
        idx = rng.integers(0, n, k)
    per = PAGE // 8
    for chunk in np.array_split(idx, max(1, k // 4096)):
        np.add.at(words, chunk * per, 1)
    want = np.bincount(idx, minlength=n)
    return {"ok": bool(np.array_equal(words[::per][:n], want)), "pages": n, "touches": k}


def random(mem: memoryview, seed: int = 0, frames: int = 0) -> dict:
    """Page touches spread uniformly over the region."""
    return _touches(mem, seed, hot=False)


def hot_cold(mem: memoryview, seed: int = 0, frames: int = 0) -> dict:
    """90% of the touches on the first 10% of the pages."""
    return _touches(mem, seed, hot=True)


def sort(mem: memoryview, seed: int = 0, frames: int = 0) -> dict:
    """numpy's sort of the region as int64 (seeded values, filled in
    chunks), checked sorted and with the same sum, chunk by chunk."""
    import numpy as np
    a = np.frombuffer(mem, dtype=np.int64)
    rng = np.random.default_rng(seed)
    step = STEP
    total = 0
    for i in range(0, len(a), step):
        part = rng.integers(-(1 << 40), 1 << 40, size=min(step, len(a) - i), dtype=np.int64)
        a[i:i + len(part)] = part
        total += int(part.sum())
    a.sort()
    ok, after, last = True, 0, None
    for i in range(0, len(a), step):
        part = a[i:i + step]
        ok = ok and bool(np.all(part[:-1] <= part[1:])) and (last is None or last <= part[0])
        last = part[-1]
        after += int(part.sum())
    return {"ok": ok and after == total, "elements": len(a)}


def _matrices(mem: memoryview, seed: int) -> tuple[Any, Any, Any, int]:
    """A, B (seeded) and C (zeros), n x n float64 each, side by side in ``mem``."""
    import numpy as np
    n = int(math.isqrt(len(mem) // (3 * 8)))
    m = np.frombuffer(mem, dtype=np.float64, count=3 * n * n).reshape(3, n, n)
    rng = np.random.default_rng(seed)
    for i in range(n):
        m[0, i] = rng.random(n)
        m[1, i] = rng.random(n)
    return m[0], m[1], m[2], n


def _check_rows(a: Any, b: Any, c: Any, n: int, seed: int) -> bool:
    """A few rows of C against a product computed apart."""
    import numpy as np
    rows = np.random.default_rng(seed + 1).integers(0, n, 4)
    return all(np.allclose(c[i], a[i] @ b) for i in rows)


def matmul(mem: memoryview, seed: int = 0, frames: int = 0) -> dict:
    """C = A x B in the naive order: each row of C reads all of B."""
    a, b, c, n = _matrices(mem, seed)
    for i in range(n):
        c[i] = a[i] @ b
    return {"ok": _check_rows(a, b, c, n, seed), "n": n}


def matmul_blocked(mem: memoryview, seed: int = 0, frames: int = 0) -> dict:
    """The same product in square blocks sized so three of them fit in the
    frames: each block of B is read once per block row of A, not per row."""
    a, b, c, n = _matrices(mem, seed)
    rows_fit = max(1, (frames or 64) * PAGE // 3 // max(8 * n, PAGE))
    bs = max(1, min(n, rows_fit))
    for i in range(0, n, bs):
        for k in range(0, n, bs):
            c[i:i + bs] += a[i:i + bs, k:k + bs] @ b[k:k + bs]
    return {"ok": _check_rows(a, b, c, n, seed), "n": n, "block": bs}


WORKLOADS: dict[str, Callable[..., dict]] = {
    "scan": scan, "random": random, "hot-cold": hot_cold, "sort": sort,
    "matmul": matmul, "matmul-blocked": matmul_blocked,
}


def script(path: str) -> Callable[..., Any]:
    """``main(mem)`` from a user's file, as a workload. Raises ValueError."""
    spec = importlib.util.spec_from_file_location("vmlab_real_script", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path!r} as a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise ValueError(f"no script {path!r}") from None
    except Exception as e:
        raise ValueError(f"cannot load {path!r}: {type(e).__name__}: {e}") from None
    main = getattr(module, "main", None)
    if not callable(main):
        raise ValueError(f"{path!r} has no main(mem) function")
    return lambda mem, seed=0, frames=0: main(mem)
