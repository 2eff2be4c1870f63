"""The worker's pulse: its registry row, the running job's lease and progress, and reconciliation.

A lease, not a fixed timeout, is what tells the rest of the system this worker is alive: stop
heartbeating (kill -9, host gone, hung process) and within ``lease_s`` any other worker rescues the
job. This thread is also the only one that writes while a child runs (progress, which extends the
lease), so the supervising thread never waits on the database. Each full beat also returns to the
queue any job running under this worker's id that it is not running (claimed, but the reply to the
claim was lost), and notices cancel requests that a lost NOTIFY did not deliver.
"""

from __future__ import annotations

import logging
import threading

from jobs.job import Job
from jobs.log_setup import log_context
from jobs.store import JobStore
from worker.current_job import CurrentJob
from worker.db_retry import OutageLog, is_transient
from worker.periodic import Clock, PeriodicTask, Wait

log = logging.getLogger(__name__)

#: How often new progress is written (and the lease extended with it) while a job runs.
PROGRESS_WRITE_INTERVAL_S = 0.5


class Heartbeat(PeriodicTask):
    """Ticks every ``PROGRESS_WRITE_INTERVAL_S`` (or ``interval_s`` if shorter): each tick writes new
    progress, if any; every ``interval_s`` a full beat also renews the lease and the registry row."""

    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        current: CurrentJob,
        *,
        interval_s: float,
        lease_s: float,
        stop: threading.Event,
        clock: Clock | None = None,
        wait: Wait | None = None,
    ) -> None:
        super().__init__("heartbeat", period_s=min(interval_s, PROGRESS_WRITE_INTERVAL_S), stop=stop,
                         clock=clock, wait=wait)
        self.store = store
        self.worker_id = worker_id
        self.current = current
        self.interval_s = interval_s
        self.lease_s = lease_s
        self._next_full = 0.0
        self.finishing = threading.Event()  # set by the daemon while it records an outcome
        self._outage = OutageLog("the heartbeat")

    def beat(self, full: bool = True) -> None:
        """Write pending progress (a lease extension too); on a full beat also extend the lease,
        mark the worker alive and return jobs it holds without knowing."""
        orphans: list[tuple[int, int]] = []
        with self.current.ownership:
            job = self.current.job
            progress = self.current.take_progress() if job is not None else None
            try:
                if job is not None and (full or progress is not None):
                    self._renew(job, progress)
                if full:
                    orphans = self.store.worker_heartbeat(self.worker_id, job.id if job else None)
            except Exception:
                if progress is not None:
                    self.current.put_back_progress(progress)
                raise
        for job_id, attempt in orphans:
            with log_context(job_id=job_id, attempt=attempt + 1):
                log.warning("job was running under this worker's id but not here (the reply to its claim was "
                            "lost, or the attempt was stopped while the database was away); returned it to the queue")

    def _renew(self, job: Job, progress: tuple[int, int | None] | None) -> None:
        with log_context(job_id=job.id, attempt=job.attempt):
            if progress is None:
                cancel = self.store.extend_lease(job, self.worker_id, self.lease_s)
            else:
                cancel = self.store.record_progress(job, self.worker_id, progress[0], progress[1], self.lease_s)
            if cancel is None:
                # while an outcome is being recorded, "not running any more" is that outcome
                if not self.finishing.is_set() and self.current.mark_lost(job.id, job.attempt):
                    log.error("lost the lease of the running job (rescued elsewhere); stopping it here")
                return
            self.current.lease_confirmed(job.id, job.attempt)
            if cancel:
                self.current.request_cancel(job.id)

    def before_first(self) -> None:
        self._next_full = self.clock() + self.interval_s

    def run_once(self) -> None:
        """One tick: a full beat when ``interval_s`` has passed since the last one, else progress only.
        No failure ends the thread: an outage is logged once by its OutageLog, anything else with a
        traceback, and the next tick tries again."""
        full = self.clock() >= self._next_full
        try:
            self.beat(full)
        except Exception as exc:
            if is_transient(exc):
                self._outage.failed(exc)
            else:
                log.exception("heartbeat failed")
        else:
            self._outage.succeeded()
        if full:
            self._next_full = self.clock() + self.interval_s
