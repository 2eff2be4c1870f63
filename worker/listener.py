"""LISTEN for new jobs and cancel requests, on a connection of its own, reconnecting forever.

NOTIFY is only a wake-up call: the daemon also polls, so a missed notification delays a job by at
most one poll interval. After a reconnect the LISTENs are issued again (a new session has none) and
the daemon is woken once, because anything queued during the outage was never announced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from jobs.database import libpq_url
from worker.db_retry import backoff_delays

log = logging.getLogger(__name__)

QUEUED_CHANNEL = "pose_jobs_queued"
CANCEL_CHANNEL = "pose_jobs_cancel"


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
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {QUEUED_CHANNEL}")
                    conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    log.info("listening for jobs and cancel requests%s",
                             " again after reconnecting" if self._ever_connected else "")
                    self._ever_connected = True
                    self.connected.set()
                    delays = backoff_delays()
                    self.on_queued()  # anything queued while we were not listening
                    while not self.stop_event.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._dispatch(note.channel, note.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                delay = next(delays)
                log.warning("listen connection lost (%s); reconnecting in %.1fs", exc.__class__.__name__, delay)
                self.stop_event.wait(delay)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == QUEUED_CHANNEL:
            self.on_queued()
        elif channel == CANCEL_CHANNEL:
            try:
                self.on_cancel(int(payload))
            except ValueError:
                log.warning("ignoring malformed cancel notification %r", payload)
