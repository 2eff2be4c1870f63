"""Stores an attempt's frames in PostgreSQL while the job runs, from a thread of its own.

The pipeline child appends frames to the job's spool file (worker/child_protocol.py) and says, on its
channel, how far the file is complete; the attempt loop passes that on with ``announce()``, which
never blocks. This thread reads the announced lines ``BATCH_FRAMES`` at a time and COPYs them
(JobStore.store_frames), each batch in a transaction fenced by (job, worker, attempt): once another
worker has rescued the job, nothing more is written and ``lost`` says so. A second or later attempt
first clears the job's older rows, so a retried attempt starts clean. Outages are waited out like every
other write of the worker; a refusal ends the writer with ``error`` set.

Only this thread waits on the database for frames: the supervision loop keeps its deadlines whatever
the database does, and a database that is slow to take frames costs spool disk, not memory.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from jobs.job import Job
from jobs.store import JobStore
from worker.db_retry import with_db_retry

log = logging.getLogger(__name__)

#: Frames per COPY: what this side holds at a time (parsed, about 4 MB for two people).
BATCH_FRAMES = 128


class FrameWriter:
    def __init__(
        self, store: JobStore, job: Job, worker_id: str, spool_path: Path, *, give_up: Callable[[], bool]
    ) -> None:
        self.store, self.job, self.worker_id, self.spool_path = store, job, worker_id, spool_path
        self._give_up = give_up
        self._cond = threading.Condition()
        self._announced = 0  # bytes of the spool the child has flushed
        self._closing = False  # no more announcements: drain and end
        self._abandoned = False  # end now
        self.stored = 0  # frames committed
        self.lost = False  # the attempt was no longer this worker's
        self.error: BaseException | None = None  # what ended the writer early (a refusal, or a give-up)
        # started by the first frames, or at once for a later attempt (it clears the earlier rows): a job
        # without frames costs no thread and no statement
        self._thread: threading.Thread | None = None
        if job.attempt > 1:
            self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"frames-{self.job.id}", daemon=True)
        self._thread.start()

    def announce(self, end: int) -> None:
        """The spool is complete up to byte ``end`` (never blocks)."""
        with self._cond:
            self._announced = max(self._announced, end)
            self._cond.notify()
        if self._thread is None:
            self._start()

    def finish(self) -> None:
        """Store what was announced, then end; blocks until done (or until the writer failed, was
        fenced out, or gave up: see ``lost`` and ``error``)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def abandon(self) -> None:
        """Stop without storing the rest (the attempt did not succeed); never blocks."""
        with self._cond:
            self._abandoned = True
            self._cond.notify()

    def _stop_retrying(self) -> bool:
        return self._abandoned or self._give_up()

    def _store(self, frames: list[dict[str, Any]], first: bool) -> bool:
        return with_db_retry(
            lambda: self.store.store_frames(self.job, self.worker_id, frames, first_batch=first),
            "store frames",
            give_up=self._stop_retrying,
        )

    def _run(self) -> None:
        spool: IO[bytes] | None = None
        position = 0
        try:
            # a later attempt starts clean at once, before any frame, so no earlier rows linger meanwhile
            # (attempt 1 has none: retry_job deletes them with the attempts it resets)
            first = True
            if self.job.attempt > 1:
                if not self._store([], True):
                    self.lost = True
                    return
                first = False
            while True:
                with self._cond:
                    while not (self._abandoned or self._closing or self._announced > position):
                        self._cond.wait()
                    if self._abandoned or self._announced <= position:
                        return
                    end = self._announced
                if spool is None:
                    spool = open(self.spool_path, "rb")  # noqa: SIM115 - closed in finally
                    spool.seek(position)
                while position < end and not self._abandoned:
                    frames: list[dict[str, Any]] = []
                    while position < end and len(frames) < BATCH_FRAMES:
                        line = spool.readline()
                        if not line.endswith(b"\n"):
                            raise ValueError(f"frame spool {self.spool_path} ends inside a line at {position}")
                        position += len(line)
                        frames.append(json.loads(line))
                    # the first batch also clears the job's rows: an attempt given back (graceful
                    # release, a lost claim reply) leaves its number to the next one
                    if not self._store(frames, first):
                        self.lost = True
                        return
                    first = False
                    self.stored += len(frames)
        except Exception as exc:  # noqa: BLE001 - the daemon reads it from ``error`` when it records
            if not self._abandoned:
                self.error = exc
                log.warning("storing frames stopped after %d frames: %s", self.stored, exc)
        finally:
            if spool is not None:
                spool.close()
