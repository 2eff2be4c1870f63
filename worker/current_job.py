"""The job a worker is running right now, shared by its threads.

The main thread sets it and supervises the child; it never waits on the database while a child runs.
The heartbeat thread does the database work for it: it writes the latest progress (which extends the
lease), learns of cancel requests and of a lost lease, and flags them here; the attempt loop polls
those flags. The listener thread flags cancel requests too.

``ownership`` is held while the worker changes which jobs it owns in the database (claim, finish)
and while the heartbeat tells the database what it runs, so the heartbeat never sees a job half
claimed or half finished: a job claimed but not yet started here is never mistaken for one claimed
without knowing (and returned to the queue), and a lease extension racing a finish is not mistaken
for a lost lease.
"""

from __future__ import annotations

import threading
import time

from jobs.job import Job


class CurrentJob:
    def __init__(self) -> None:
        self.ownership = threading.Lock()
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._cancel = False
        self._lost = False
        self._progress: tuple[int, int | None] | None = None  # written with the next heartbeat
        self._lease_confirmed_at = 0.0

    def start(self, job: Job) -> None:
        with self._lock:
            self._job, self._cancel, self._lost = job, job.cancel_requested, False
            self._progress = None
            self._lease_confirmed_at = time.monotonic()  # the claim itself granted a full lease

    def clear(self) -> None:
        with self._lock:
            self._job = None
            self._progress = None

    @property
    def job(self) -> Job | None:
        with self._lock:
            return self._job

    def _is(self, job_id: int, attempt: int | None = None) -> bool:
        job = self._job
        return job is not None and job.id == job_id and (attempt is None or job.attempt == attempt)

    # ---- flags set by the other threads --------------------------------------------------------
    def request_cancel(self, job_id: int) -> bool:
        with self._lock:
            if self._is(job_id):
                self._cancel = True
                return True
            return False

    def mark_lost(self, job_id: int, attempt: int) -> bool:
        """This attempt of the job is no longer ours (rescued elsewhere); False if it is not the
        attempt running here (already finished, or a newer one)."""
        with self._lock:
            if self._is(job_id, attempt):
                self._lost = True
                return True
            return False

    def lease_confirmed(self, job_id: int, attempt: int) -> None:
        with self._lock:
            if self._is(job_id, attempt):
                self._lease_confirmed_at = time.monotonic()

    def lease_unconfirmed_for(self) -> float:
        """Seconds since the database last confirmed this worker holds the running job's lease."""
        with self._lock:
            return time.monotonic() - self._lease_confirmed_at if self._job is not None else 0.0

    @property
    def cancel_requested(self) -> bool:
        """Cancelled by a user, or no longer ours (lease rescued): either way, stop the child."""
        with self._lock:
            return self._cancel or self._lost

    @property
    def lost(self) -> bool:
        with self._lock:
            return self._lost

    # ---- progress: set by the attempt loop, written by the heartbeat ---------------------------
    def set_progress(self, done: int, total: int | None) -> None:
        with self._lock:
            self._progress = (done, total)

    def take_progress(self) -> tuple[int, int | None] | None:
        """The progress not yet written, if any (and forget it: it is being written now)."""
        with self._lock:
            progress, self._progress = self._progress, None
            return progress

    def put_back_progress(self, progress: tuple[int, int | None]) -> None:
        """A write failed: keep ``progress`` for the next try unless newer progress arrived."""
        with self._lock:
            if self._progress is None and self._job is not None:
                self._progress = progress
