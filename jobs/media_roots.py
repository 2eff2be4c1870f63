"""The rule for server-side video paths, shared by the web (at submit) and the worker (at open).

A path is acceptable when, with every symlink resolved, it lies inside one of POSE_MEDIA_ROOTS (each
resolved the same way). The web checks it when a job is submitted; the worker checks the file it has
actually opened, so swapping a component for a symlink between the two changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def resolve_roots(roots: Iterable[str]) -> tuple[str, ...]:
    return tuple(os.path.realpath(os.path.expanduser(r)) for r in roots if r)


def inside_roots(real_path: str, resolved_roots: Iterable[str]) -> bool:
    """Whether the already resolved ``real_path`` is one of the roots or lies below one."""
    return any(real_path == root or real_path.startswith(root.rstrip(os.sep) + os.sep) for root in resolved_roots)
