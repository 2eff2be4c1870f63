"""The job a worker is running right now, shared by its threads.

The main thread sets it; the listener and heartbeat threads flag a cancel request or a lost lease on
it; the attempt loop polls those flags. One lock, no other shared state.
"""

from __future__ import annotations

import threading

from jobs.job import Job


class CurrentJob:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._cancel = False
        self._lost = False

    def start(self, job: Job) -> None:
        with self._lock:
            self._job, self._cancel, self._lost = job, job.cancel_requested, False

    def clear(self) -> None:
        with self._lock:
            self._job = None

    @property
    def job(self) -> Job | None:
        with self._lock:
            return self._job

    def request_cancel(self, job_id: int) -> bool:
        with self._lock:
            if self._job is not None and self._job.id == job_id:
                self._cancel = True
                return True
            return False

    def mark_lost(self, job_id: int) -> None:
        with self._lock:
            if self._job is not None and self._job.id == job_id:
                self._lost = True

    @property
    def cancel_requested(self) -> bool:
        """Cancelled by a user, or no longer ours (lease rescued): either way, stop the child."""
        with self._lock:
            return self._cancel or self._lost

    @property
    def lost(self) -> bool:
        with self._lock:
            return self._lost
