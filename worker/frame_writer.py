"""Stores an attempt's frames in PostgreSQL while the job runs, from threads of its own.

The pipeline child appends frames to the job's spool file in blocks of binary COPY tuples
(worker/frame_spool.py) and says, on its channel, how far the file is complete; the attempt loop passes
that on with ``announce()``, which never blocks. A reader thread takes the announced blocks, checks
each and stamps its rows with this job's id and attempt (``read_block``: no frame is parsed), and groups
them into batches of up to ``BATCH_FRAMES`` frames; ``COPY_STREAMS`` copier threads COPY the batches
(JobStore.store_frame_tuples), each batch in a transaction fenced by (job, worker, attempt): once
another worker has rescued the job, nothing more is written and ``lost`` says so. Two streams because
PostgreSQL's reading of the arrays takes one core for about 50,000 person-frames/s: with one COPY at
a time it, not the service, is the limit.

The first batch of an attempt (or, for a second or later attempt, an empty one before any frame) is
stored alone and clears the job's older rows, so a retried attempt starts clean; only then do the
streams run side by side, on disjoint frames. A batch sent again after an error replaces its own
frames. Outages are waited out like every other write of the worker; a refusal (or a spool that is
not what the child writes) ends the writer with ``error`` set.

Only these threads wait on the database for frames: the supervision loop keeps its deadlines whatever
the database does, and a database that is slow to take frames costs spool disk, not memory: the
threads hold at most ``2 × COPY_STREAMS + 1`` batches.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from jobs.job import Job
from jobs.store import JobStore
from worker.db_retry import with_db_retry
from worker.frame_spool import Block, read_block

log = logging.getLogger(__name__)

#: Frames per COPY at most (a block, at most FRAMES_PER_MESSAGE frames, is never cut) ...
BATCH_FRAMES = 128
#: ... and bytes, for frames with many people.
BATCH_BYTES = 4 << 20
#: Batches COPYed at the same time, each on a connection of its own.
COPY_STREAMS = 2


@dataclass
class _Batch:
    blocks: list[Block] = field(default_factory=list)
    frames: int = 0
    size: int = 0

    def add(self, block: Block) -> None:
        self.blocks.append(block)
        self.frames += block.frames
        self.size += len(block.payload)


class FrameWriter:
    def __init__(
        self,
        store: JobStore,
        job: Job,
        worker_id: str,
        spool_path: Path,
        *,
        give_up: Callable[[], bool],
        streams: int = COPY_STREAMS,
    ) -> None:
        self.store, self.job, self.worker_id, self.spool_path = store, job, worker_id, spool_path
        self._give_up = give_up
        self._streams = max(1, streams)
        self._cond = threading.Condition()
        self._announced = 0  # bytes of the spool the child has flushed
        self._closing = False  # no more announcements: drain and end
        self._abandoned = False  # end now
        self._ended = threading.Event()  # a copier was fenced out or failed: everyone stops
        self._batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=self._streams)
        self._copiers: list[threading.Thread] = []
        self._stored_lock = threading.Lock()
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

    def _stopping(self) -> bool:
        return self._abandoned or self._ended.is_set()

    def _stop_retrying(self) -> bool:
        return self._stopping() or self._give_up()

    def _store(self, batch: _Batch, first: bool) -> bool:
        """Store one batch, waiting out outages; False when fenced out."""
        repeat = False

        def sent_again(_exc: BaseException) -> None:
            nonlocal repeat
            repeat = True  # the failed try may have committed: the next one replaces its frames

        blocks = batch.blocks
        stored = with_db_retry(
            lambda: self.store.store_frame_tuples(
                self.job, self.worker_id, [b.payload for b in blocks], blocks[0].first if blocks else 0,
                blocks[-1].last if blocks else 0, first_batch=first, repeat=repeat),
            "store frames",
            give_up=self._stop_retrying,
            on_retry=sent_again,
        )
        if stored:
            with self._stored_lock:
                self.stored += batch.frames
        return stored

    def _fail(self, exc: BaseException | None) -> None:
        """End the writer: ``exc`` None when fenced out, else what went wrong (kept unless abandoned)."""
        with self._stored_lock:
            if exc is None:
                self.lost = True
            elif not self._abandoned and self.error is None and not self.lost:
                self.error = exc
                log.warning("storing frames stopped after %d frames: %s", self.stored, exc)
        self._ended.set()
        with self._cond:
            self._cond.notify()

    # ---- threads -------------------------------------------------------------------------------
    def _run(self) -> None:
        """The reader: blocks from the spool into batches, the first stored here, the rest handed on."""
        spool: IO[bytes] | None = None
        position, last_index = 0, -1
        try:
            # a later attempt starts clean at once, before any frame, so no earlier rows linger meanwhile
            # (attempt 1 has none: retry_job deletes them with the attempts it resets)
            first = True
            if self.job.attempt > 1:
                if not self._store(_Batch(), True):
                    self._fail(None)
                    return
                first = False
            while True:
                with self._cond:
                    while not (self._stopping() or self._closing or self._announced > position):
                        self._cond.wait()
                    if self._stopping() or self._announced <= position:
                        return
                    end = self._announced
                if spool is None:
                    spool = open(self.spool_path, "rb")  # noqa: SIM115 - closed in finally
                    spool.seek(position)
                while position < end and not self._stopping():
                    batch = _Batch()
                    while position < end and batch.frames < BATCH_FRAMES and batch.size < BATCH_BYTES:
                        block = read_block(spool, end - position, self.job.id, self.job.attempt)
                        position += block.size
                        if not block.rows:
                            continue
                        if block.first <= last_index:
                            raise ValueError(f"frame spool: frame {block.first} comes after frame {last_index}")
                        last_index = block.last
                        batch.add(block)
                    if not batch.blocks:
                        continue
                    # the first batch also clears the job's rows (an attempt given back, by a graceful
                    # release or a lost claim reply, leaves its number to the next one): stored alone
                    if first:
                        if not self._store(batch, True):
                            self._fail(None)
                            return
                        first = False
                    else:
                        self._hand_on(batch)
        except Exception as exc:  # noqa: BLE001 - the daemon reads it from ``error`` when it records
            self._fail(exc)
        finally:
            if spool is not None:
                spool.close()
            for _ in self._copiers:  # after the batches: a copier skips them once the writer is ending
                self._batches.put(None)
            for copier in self._copiers:
                copier.join()

    def _hand_on(self, batch: _Batch) -> None:
        if len(self._copiers) < self._streams and (not self._copiers or self._batches.full()):
            copier = threading.Thread(target=self._copy, name=f"frames-{self.job.id}-copy{len(self._copiers)}",
                                      daemon=True)
            self._copiers.append(copier)
            copier.start()
        self._put(batch)

    def _put(self, batch: _Batch) -> None:
        """Queue a batch for the copiers, waiting while they are busy (bounded memory), unless the
        writer is ending (it is then dropped)."""
        while not self._stopping():
            try:
                self._batches.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def _copy(self) -> None:
        """A copier: stores batches until the end marker."""
        while (batch := self._batches.get()) is not None:
            if self._stopping():
                continue
            try:
                if not self._store(batch, False):
                    self._fail(None)
            except Exception as exc:  # noqa: BLE001 - the daemon reads it from ``error``
                self._fail(exc)
