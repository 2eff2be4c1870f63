"""Riding out database outages: tell outages from refusals, and retry the former with backoff.

A PostgreSQL restart, a failover or a dropped network must not kill a worker or lose the job it is
running: those are *outages*, and every caller waits them out. An error PostgreSQL answers with on a
working connection (a value too large, invalid data, a constraint) is a *refusal*: retrying sends
the same statement to the same answer, so it is raised at once for the caller to turn into an
outcome.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

#: SQLSTATEs that mean "the server cannot serve you right now", not "no": class 08 (connection
#: exceptions) by prefix, plus shutdowns, start-up, too many connections, and transaction conflicts
#: that a repeat resolves.
OUTAGE_SQLSTATE_CLASSES = ("08",)
OUTAGE_SQLSTATES = frozenset({
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, recovering)
    "53300",  # too_many_connections
    "53100",  # disk_full on the server: it frees up or an operator fixes it
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
})


def is_transient(exc: BaseException) -> bool:
    """True for an outage (retry later), False for a refusal or a bug (retrying cannot help)."""
    if isinstance(exc, PoolTimeout):
        return True
    orig: BaseException | None = exc
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
    if not isinstance(orig, psycopg.Error):
        return False
    state = orig.sqlstate
    if state is None:  # raised by the client: the connection failed or was lost, no server answer
        return isinstance(orig, psycopg.OperationalError)
    return state.startswith(OUTAGE_SQLSTATE_CLASSES) or state in OUTAGE_SQLSTATES


def describe(exc: BaseException) -> str:
    """One line for the log: the driver's error class and its first line, never a traceback."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first}" if first else type(orig).__name__


def backoff_delays(base: float = 0.2, cap: float = 5.0) -> Iterator[float]:
    """0.2, 0.4, 0.8 … capped, each with ±50 % jitter so many workers do not reconnect in lockstep."""
    delay = base
    while True:
        yield delay * (0.5 + random.random())
        delay = min(cap, delay * 2)


class OutageLog:
    """Logs an outage once when it starts and once when it ends, instead of once per failed call:
    a heartbeat every two seconds through a minute-long outage would otherwise write thirty
    identical warnings."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._since: float | None = None
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                log.warning("database unavailable for %s (%s); retrying until it is back", self.what, describe(exc))

    def succeeded(self) -> None:
        with self._lock:
            if self._since is not None:
                log.info("database reachable again for %s after %.1fs", self.what, time.monotonic() - self._since)
                self._since = None


def with_db_retry(
    operation: Callable[[], T],
    what: str,
    *,
    give_up: Callable[[], bool] = lambda: False,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run ``operation`` until it succeeds, waiting out outages with capped, jittered backoff.

    There is no time limit: an outcome that is not written is not lost, only late, and fencing by
    (job, worker, attempt) makes a late write safe. A refusal is raised at once; an outage is raised
    only when ``give_up()`` says so (the worker is shutting down). ``on_retry`` hears each outage
    error before the wait (e.g. to stop claiming in the same statement).
    """
    outage = OutageLog(what)
    for delay in backoff_delays():
        try:
            result = operation()
        except Exception as exc:
            if not is_transient(exc) or give_up():
                raise
            outage.failed(exc)
            if on_retry is not None:
                on_retry(exc)
            _sleep(delay, give_up)
        else:
            outage.succeeded()
            return result
    raise AssertionError("unreachable")


def _sleep(seconds: float, give_up: Callable[[], bool]) -> None:
    """Sleep, waking early (in steps of 0.1 s) when ``give_up`` turns true."""
    end = time.monotonic() + seconds
    while not give_up() and (left := end - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
