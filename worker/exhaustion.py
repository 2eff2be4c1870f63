"""Which failures mean the machine ran out of something, rather than that the job is bad.

Memory (RAM or GPU) and disk run out because of what else the host is doing, or because of this
host's size: the same job may well succeed on a retry, later or elsewhere, so these failures get
their own error kind (``resource_exhausted``) and are retried, unlike a pipeline bug. Imported by
both the worker and the pipeline child, so it imports nothing heavy (torch's CUDA out-of-memory
error is recognised by name).
"""

from __future__ import annotations

import errno

#: OSError numbers that mean a disk or quota is full.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def exhausted(exc: BaseException) -> str | None:
    """A short description when ``exc`` is resource exhaustion, else None."""
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError)"
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return f"disk full: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    if type(exc).__name__ == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc)):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"GPU out of memory: {first}"[:500]
    return None
