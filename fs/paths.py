"""Paths inside the lab mount: which names are special, and where a
symbolic link really leads.

Pure logic over the backing directory (``lstat`` and ``readlink`` only, never
following a link itself), so the daemon can decide before the kernel walks.
"""

from __future__ import annotations

import os
import stat

CTL = "/.vmlab"
MAXSYMLINKS = 40            # as the kernel: more hops in one walk is ELOOP


def is_ctl(path: str) -> bool:
    """Is ``path`` the control directory or a file in it? Only ``/.vmlab``
    itself is special, not ``/.vmlab2`` or ``/.vmlabrc``.

    >>> is_ctl("/.vmlab"), is_ctl("/.vmlab/stats"), is_ctl("/.vmlab2"), is_ctl("/d/.vmlab")
    (True, True, False, False)
    """
    return path == CTL or path.startswith("/.vmlab/")


def has_dotdot(path: str) -> bool:
    """Does ``path`` have a real ``..`` component? (``..foo`` and ``...`` are names.)

    >>> has_dotdot("/a/../b"), has_dotdot("/.."), has_dotdot("/..foo"), has_dotdot("/...")
    (True, True, False, False)
    """
    return "/../" in path + "/"


def link_leaves(root: str, here: str, target: str) -> bool:
    """Would the kernel, reading a symlink in mount directory ``here`` whose
    contents are ``target``, end up outside the mount? The walk follows the
    links it passes inside ``root`` (the backing directory), as the kernel
    will, so ``toroot/../..`` is judged by where ``toroot`` leads, not by
    its name. Missing components are taken as plain directories. More than
    MAXSYMLINKS hops counts as leaving (the kernel would give ELOOP).

    >>> import tempfile; d = tempfile.mkdtemp(); os.makedirs(d + "/a/b")
    >>> os.symlink("../..", d + "/a/b/up")
    >>> link_leaves(d, "/", "a/b/up/x"), link_leaves(d, "/", "a/b/up/../x")
    (False, True)
    """
    base = [c for c in here.split("/") if c]
    return _walk(root, base, target, [0]) is None


def _walk(root: str, parts: list[str], target: str, hops: list[int]) -> list[str] | None:
    """The mount-relative components ``target`` resolves to from ``parts``,
    or None if the walk leaves the mount."""
    if target.startswith("/"):
        # An absolute link into the backing directory is served rewritten to
        # stay in the mount (see LabFS.readlink); any other leads out.
        if not (target == root or target.startswith(root + "/")):
            return None
        parts, target = [], target[len(root):]
    else:
        parts = list(parts)
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(comp)
        full = root + "/" + "/".join(parts)
        try:
            if not stat.S_ISLNK(os.lstat(full).st_mode):
                continue
            link = os.readlink(full)
        except OSError:
            continue                    # missing: taken as a plain directory
        hops[0] += 1
        if hops[0] > MAXSYMLINKS:
            return None
        resolved = _walk(root, parts[:-1], link, hops)
        if resolved is None:
            return None
        parts = resolved
    return parts
