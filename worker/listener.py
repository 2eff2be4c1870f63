"""LISTEN for new jobs and cancel requests, on a connection of its own, reconnecting forever.

NOTIFY is only a wake-up call: the daemon also polls, so a missed notification delays a job by at
most one poll interval. After a reconnect the LISTENs are issued again (a new session has none) and
the daemon is woken once, because anything queued during the outage was never announced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

from jobs.database import CONNECT_ARGS, libpq_url
from jobs.db_deadline import deadline
from worker.db_retry import backoff_delays

log = logging.getLogger(__name__)

QUEUED_CHANNEL = "pose_jobs_queued"
CANCEL_CHANNEL = "pose_jobs_cancel"
PROBE_EVERY_S = 10.0
PROBE_TIMEOUT_S = 5.0


class Listener(threading.Thread):
    def __init__(
        self,
        dsn: str,
        *,
        on_queued: Callable[[], None],
        on_cancel: Callable[[int], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True, name="listener")
        self.dsn = libpq_url(dsn)
        self.on_queued = on_queued
        self.on_cancel = on_cancel
        self.stop_event = stop
        self.connected = threading.Event()
        self._ever_connected = False

    def run(self) -> None:
        delays = backoff_delays()
        while not self.stop_event.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, **CONNECT_ARGS) as conn:
                    conn.execute(f"LISTEN {QUEUED_CHANNEL}")
                    conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    log.info("listening for jobs and cancel requests%s",
                             " again after reconnecting" if self._ever_connected else "")
                    self._ever_connected = True
                    self.connected.set()
                    delays = backoff_delays()
                    self.on_queued()  # anything queued while we were not listening
                    checked = time.monotonic()
                    while not self.stop_event.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._dispatch(note.channel, note.payload)
                        if time.monotonic() - checked >= PROBE_EVERY_S:
                            self._probe(conn)
                            checked = time.monotonic()
            except psycopg.Error as exc:
                self.connected.clear()
                delay = next(delays)
                log.warning("listen connection lost (%s); reconnecting in %.1fs", exc.__class__.__name__, delay)
                self.stop_event.wait(delay)

    @staticmethod
    def _probe(conn: psycopg.Connection) -> None:
        """A silent connection may be a dead one (a frozen middlebox delivers no NOTIFY and no
        error): ask for a reply, and cut the connection if none comes in time."""
        with deadline(conn.pgconn.socket, PROBE_TIMEOUT_S):
            conn.execute("SELECT 1")

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == QUEUED_CHANNEL:
            self.on_queued()
        elif channel == CANCEL_CHANNEL:
            try:
                self.on_cancel(int(payload))
            except ValueError:
                log.warning("ignoring malformed cancel notification %r", payload)
