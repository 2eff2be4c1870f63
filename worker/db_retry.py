"""Riding out database outages: retry an operation with capped exponential backoff.

A PostgreSQL restart must not kill a worker or lose the job it is running; the pool's pre-ping
replaces dead connections, and this loop waits for the server to come back.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = (OperationalError,)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def backoff_delays(base: float = 0.2, cap: float = 5.0):
    """0.2, 0.4, 0.8 … capped, each with ±50 % jitter so many workers do not reconnect in lockstep."""
    delay = base
    while True:
        yield delay * (0.5 + random.random())
        delay = min(cap, delay * 2)


def with_db_retry(
    operation: Callable[[], T], what: str, stop: threading.Event | None = None, max_wait_s: float | None = None
) -> T:
    """Run ``operation`` until it succeeds, retrying transient database errors.

    Gives up (re-raising) when ``stop`` is set or after ``max_wait_s`` seconds of failures.
    """
    waited = 0.0
    for delay in backoff_delays():
        try:
            return operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if (stop is not None and stop.is_set()) or (max_wait_s is not None and waited >= max_wait_s):
                raise
            log.warning("database unavailable while trying to %s (%s); retrying in %.1fs",
                        what, type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__, delay)
            if stop is not None:
                stop.wait(delay)
            else:
                threading.Event().wait(delay)
            waited += delay
    raise AssertionError("unreachable")
