"""The worker's pulse: keep its registry row fresh and extend the lease of the job it runs.

A lease, not a fixed timeout, is what tells the rest of the system this worker is alive: stop
heartbeating (kill -9, host gone, hung process) and within ``lease_s`` any other worker rescues the
job. The heartbeat also notices a cancel request that a lost NOTIFY did not deliver.
"""

from __future__ import annotations

import logging
import threading

from jobs.log_setup import log_context
from jobs.store import JobStore
from worker.current_job import CurrentJob
from worker.db_retry import is_transient

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        current: CurrentJob,
        *,
        interval_s: float,
        lease_s: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self.store = store
        self.worker_id = worker_id
        self.current = current
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.stop_event = stop

    def beat(self) -> None:
        job = self.current.job
        self.store.worker_heartbeat(self.worker_id, job.id if job else None)
        if job is None:
            return
        with log_context(job_id=job.id, attempt=job.attempt):
            cancel = self.store.extend_lease(job, self.worker_id, self.lease_s)
            if cancel is None:
                log.error("lost the lease of the running job (rescued elsewhere); stopping it here")
                self.current.mark_lost(job.id)
            elif cancel:
                self.current.request_cancel(job.id)

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            try:
                self.beat()
            except Exception as exc:
                if is_transient(exc):
                    log.warning("heartbeat failed: database unavailable")
                else:
                    log.exception("heartbeat failed")
