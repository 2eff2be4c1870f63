"""Rescue jobs whose worker died: any live worker returns expired leases to the queue.

There is no coordinator: every worker runs this, and ``FOR UPDATE SKIP LOCKED`` in the rescue query
keeps two rescuers from touching the same job. Jobs out of attempts end failed/worker_lost.
"""

from __future__ import annotations

import logging
import threading

from jobs.log_setup import log_context
from jobs.store import JobStore
from worker.db_retry import is_transient
from worker.periodic import Clock, PeriodicTask, Wait

log = logging.getLogger(__name__)

#: How often the registry drops rows of workers gone for a day (a cheap DELETE, not worth every pass).
FORGET_EVERY_S = 3600.0


class JobRescuer(PeriodicTask):
    """Runs a rescue pass every ``interval_s``, and forgets long-dead workers about once an hour."""

    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        *,
        interval_s: float,
        retry_base_s: float,
        retry_cap_s: float,
        stop: threading.Event,
        clock: Clock | None = None,
        wait: Wait | None = None,
    ) -> None:
        super().__init__("rescuer", period_s=interval_s, stop=stop, clock=clock, wait=wait)
        self.store = store
        self.worker_id = worker_id
        self.interval_s = interval_s
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._forgot_at = float("-inf")

    def rescue_once(self) -> list[tuple[int, str, int]]:
        rescued = self.store.rescue_expired(
            retry_base_s=self.retry_base_s, retry_cap_s=self.retry_cap_s, rescuer_id=self.worker_id
        )
        for job_id, state, attempt in rescued:
            with log_context(job_id=job_id, attempt=attempt):
                log.warning("rescued a job whose worker stopped heartbeating: now %s", state)
        return rescued

    def run_once(self) -> None:
        """One rescue pass (and, about hourly, forgetting long-dead workers); an outage is silent
        (the next pass retries), anything else is logged."""
        try:
            if self.clock() - self._forgot_at >= FORGET_EVERY_S:
                self.store.forget_dead_workers()
                self._forgot_at = self.clock()
            self.rescue_once()
        except Exception as exc:
            if not is_transient(exc):
                log.exception("rescue pass failed")
