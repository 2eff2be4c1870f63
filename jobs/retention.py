"""The retention duty (DESIGN.md section 3, ``POSE_RETENTION_DAYS``): per-frame rows and uploads of
jobs that ended long ago are removed in the background, without slowing claims.

Every web and worker process runs it (``pose-service web``, ``worker``, ``serve``), a pass every
``RETENTION_INTERVAL_S``; a session-level advisory lock lets one pass run at a time, and a process
that finds it held skips its turn. A pass (``run_once``):

1. keeps partitions of ``pose_frame_rows`` ahead of the job ids, retention set or not: while less
   than a day's worth of job ids lies above the highest job id, a partition of about a day's jobs
   (jobs created yesterday or today, whichever is more; at least ``MIN_PARTITION_JOBS``) is added;
2. with ``POSE_RETENTION_DAYS`` set, drops each partition whose jobs all ended more than that long
   ago (its id range used up), marking its succeeded jobs' results ``frames_deleted_at`` in the same
   transaction; dropping a partition costs a catalog change, not a write per row;
3. deletes, a job at a time in batches of ``DELETE_BATCH_ROWS``, the rows that no drop will take
   soon: those of the DEFAULT partition (ids without a partition of their own) once their job ended
   more than the retention ago, and those of a partition held back by a job still running or ended
   later, once their job ended more than the retention plus ``GRACE`` ago (within the grace the
   partition usually goes whole);
4. deletes the series of analyses whose analysis job ended that long ago (``pose_analysis_series`` and
   ``pose_analysis_tracks``, JOB_PAGE analyses a transaction); ``pose_analyses`` keeps each one's
   params, provenance and summary, marked ``series_deleted_at`` (migration 0011);
5. deletes the expired uploads (``JobStore.delete_expired_uploads``, as before this duty).

Only ended jobs lose anything: a queued, running or waiting job, a segment whose parent has not ended
and a job that ended recently keep their rows (``pose_job_ended_before``, migration 0008), checked
again in the transaction that deletes. The two statements that take ``pose_frame_rows`` exclusively
(adding and dropping a partition) give up after ``LOCK_TIMEOUT`` rather than queue the frame writers
behind them; the next pass tries again. None of them touches ``pose_jobs``' locks, so claims never wait
for retention (README, Benchmarks: bench/retention_claims.py).

``clock`` is injectable (tests pass days forward); by default the database's ``now()`` is the time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from jobs.store import JobStore, Session

log = logging.getLogger(__name__)

#: How often a process runs a pass.
RETENTION_INTERVAL_S = 3600.0
#: The advisory lock key of a pass (any fixed bigint no other code uses: "pose ret").
LOCK_KEY = 0x706F_7365_2072_6574
#: The smallest partition, in job ids (a quiet service's partitions span several days).
MIN_PARTITION_JOBS = 100
#: With rows in the DEFAULT partition, a new partition starts this many ids above the highest job id,
#: so that no job can write into its range between fencing the DEFAULT partition and creating it.
FENCE_MARGIN_JOBS = 1000
#: At most this many partitions are added in one pass (one normally; more after a burst).
MAX_NEW_PARTITIONS = 4
#: How long a pass waits for pose_frame_rows' exclusive lock before leaving it to the next pass.
LOCK_TIMEOUT = "200ms"
#: Rows of a partition that a later or unfinished job holds back are deleted this long after the
#: retention (the partition usually goes whole within it).
GRACE = timedelta(days=1)
#: Rows deleted per statement (and transaction): about 7 MB of pose rows.
DELETE_BATCH_ROWS = 5000
#: Jobs looked up per statement when searching a partition for rows to delete.
JOB_PAGE = 100
#: SQLSTATE lock_not_available: LOCK_TIMEOUT ran out.
LOCK_NOT_AVAILABLE = "55P03"


@dataclass
class RetentionPass:
    """What one pass did."""

    skipped: bool = False  # another process was running a pass
    partitions_added: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    jobs_deleted: int = 0  # jobs whose rows were deleted (not dropped)
    rows_deleted: int = 0
    uploads_deleted: int = 0
    analyses_deleted: int = 0  # analyses whose series (pose_analysis_series, _tracks) were deleted

    @property
    def did_something(self) -> bool:
        return bool(self.partitions_added or self.partitions_dropped or self.rows_deleted or self.uploads_deleted
                    or self.analyses_deleted)


class RetentionDuty(threading.Thread):
    """Runs a pass now and then every ``interval_s`` until :meth:`stop`; ``run_once`` is one pass."""

    def __init__(
        self,
        store: JobStore,
        retention_days: float | None,
        *,
        interval_s: float = RETENTION_INTERVAL_S,
        clock: Callable[[], datetime] | None = None,
        min_partition_jobs: int = MIN_PARTITION_JOBS,
        delete_batch_rows: int = DELETE_BATCH_ROWS,
    ) -> None:
        super().__init__(daemon=True, name="retention")
        self.store = store
        self.retention = None if retention_days is None else timedelta(days=retention_days)
        self.retention_days = retention_days
        self.interval_s = interval_s
        self.clock = clock
        self.min_partition_jobs = min_partition_jobs
        self.delete_batch_rows = delete_batch_rows
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.run_once()
            except DBAPIError as exc:  # the database is away or refused: the next pass tries again
                log.warning("retention: pass failed: %s", str(exc.orig or exc).strip().splitlines()[0])
            except Exception:  # noqa: BLE001 - a dead duty would silently stop retention
                log.exception("retention: pass failed")
            if self.stopping.wait(self.interval_s):
                return

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout_s)

    # ---- one pass ------------------------------------------------------------------------------
    def run_once(self) -> RetentionPass:
        done = RetentionPass()
        with self.store.session() as s:
            if not s.one("retention_try_lock", key=LOCK_KEY).locked:
                done.skipped = True
                return done
            # an error leaves the block and closes the session's connection, which releases the lock
            now = self.clock() if self.clock is not None else s.one("database_now").now
            done.partitions_added = self._add_partitions(s, now)
            if self.retention is not None:
                before = now - self.retention
                done.partitions_dropped = self._drop_partitions(s, before, now)
                done.jobs_deleted, done.rows_deleted = self._delete_rows(s, before, now)
                done.analyses_deleted = self._delete_analyses(s, before, now)
            s.one("retention_unlock", key=LOCK_KEY)
        if self.retention_days is not None:
            done.uploads_deleted = self.store.delete_expired_uploads(self.retention_days)
        if done.did_something:
            log.info("retention: added partitions %s, dropped partitions %s, deleted %d rows of %d jobs, "
                     "the series of %d analyses and %d uploads (POSE_RETENTION_DAYS=%s)",
                     done.partitions_added or "none", done.partitions_dropped or "none", done.rows_deleted,
                     done.jobs_deleted, done.analyses_deleted,
                     done.uploads_deleted,
                     "unset" if self.retention_days is None else f"{self.retention_days:g}")
        return done

    def _add_partitions(self, s: Session, now: datetime) -> list[str]:
        added: list[str] = []
        for _ in range(MAX_NEW_PARTITIONS):
            facts = s.one("frame_partition_facts", today=now.astimezone(UTC).date())
            if facts.default_fenced:  # left by a pass that was interrupted between fencing and creating
                with s.transaction():
                    s.one("retention_lock_timeout", timeout=LOCK_TIMEOUT)
                    s.exec("unfence_default_frames")
            width = max(self.min_partition_jobs, int(facts.jobs_per_day))
            tops = [p.hi for p in s.all("frame_partitions") if not p.is_default and p.hi is not None]
            top = max(tops) if tops else facts.max_job_id + 1
            if top > facts.max_job_id + width:  # a day's job ids (at least) still have a partition
                return added
            # rows in the DEFAULT partition: fence it first, so that the creation need not scan it (else
            # the creation checks the empty DEFAULT partition itself)
            fenced = facts.default_max_job_id is not None
            lo = max(top, facts.default_max_job_id + 1, facts.max_job_id + 1 + FENCE_MARGIN_JOBS) if fenced else top
            hi = lo + width
            try:
                if fenced:
                    with s.transaction():
                        s.one("retention_lock_timeout", timeout=LOCK_TIMEOUT)
                        s.one("fence_default_frames", lo=lo, hi=hi)
                with s.transaction():
                    s.one("retention_lock_timeout", timeout=LOCK_TIMEOUT)
                    added.append(s.one("add_frame_partition", lo=lo, hi=hi).name)
                    if fenced:
                        s.exec("unfence_default_frames")
            except DBAPIError as exc:
                if fenced:  # never leave the fence: it would refuse the range's rows until the next pass
                    with s.transaction():
                        s.exec("unfence_default_frames")
                if _busy(exc):
                    log.info("retention: pose_frame_rows busy; the partition for job ids %d-%d waits for the "
                             "next pass", lo, hi - 1)
                    return added
                raise
            log.info("retention: added partition %s for job ids %d-%d", added[-1], lo, hi - 1)
        return added

    def _drop_partitions(self, s: Session, before: datetime, now: datetime) -> list[str]:
        dropped: list[str] = []
        for part in s.all("ended_frame_partitions", name=None, before=before):
            try:
                with s.transaction():
                    s.one("retention_lock_timeout", timeout=LOCK_TIMEOUT)
                    s.exec("lock_frame_rows")
                    if s.one("ended_frame_partitions", name=part.name, before=before) is None:
                        continue  # a job in it was retried meanwhile
                    marked = s.exec("mark_frames_deleted_in_range", lo=_lo(part.lo), hi=part.hi, now=now)
                    s.one("drop_frame_partition", name=part.name)
            except DBAPIError as exc:
                if _busy(exc):
                    log.info("retention: pose_frame_rows busy; dropping %s waits for the next pass", part.name)
                    break
                raise
            dropped.append(part.name)
            log.info("retention: dropped partition %s (job ids %s-%d, every job ended before %s; %d results "
                     "marked frames_deleted_at)", part.name, "" if part.lo is None else part.lo, part.hi - 1,
                     f"{before:%Y-%m-%d %H:%M}", marked)
        return dropped

    def _delete_rows(self, s: Session, before: datetime, now: datetime) -> tuple[int, int]:
        jobs = rows = 0
        held_before = before - GRACE
        for part in s.all("frame_partitions_with_ended_jobs", before=held_before):
            cutoff = before if part.is_default else held_before
            after = 0
            while not self.stopping.is_set():
                if part.is_default:
                    found = s.all("ended_jobs_with_default_frames", after=after, before=cutoff, limit=JOB_PAGE)
                else:
                    found = s.all("ended_jobs_with_frames", lo=_lo(part.lo), hi=_hi(part.hi), after=after,
                                  before=cutoff, limit=JOB_PAGE)
                for row in found:
                    deleted = self._delete_job(s, row.job_id, cutoff, now)
                    if deleted:
                        jobs, rows = jobs + 1, rows + deleted
                if len(found) < JOB_PAGE:
                    break
                after = found[-1].job_id
        return jobs, rows

    def _delete_analyses(self, s: Session, before: datetime, now: datetime) -> int:
        """The series of analyses whose analysis job ended before ``before``, JOB_PAGE analyses per
        transaction; their pose_analyses rows (params, provenance, summary) stay."""
        total = 0
        while not self.stopping.is_set():
            deleted = int(s.one("delete_expired_analysis_series", before=before, now=now, batch=JOB_PAGE).analyses)
            total += deleted
            if deleted < JOB_PAGE:
                break
        return total

    def _delete_job(self, s: Session, job_id: int, before: datetime, now: datetime) -> int:
        """The rows of one ended job, batch by batch (each its own short transaction)."""
        total = 0
        while not self.stopping.is_set():
            row: Any = s.one("delete_ended_job_frames", id=job_id, before=before, now=now,
                             batch=self.delete_batch_rows)
            total += int(row.deleted)
            if not row.ended or row.deleted < self.delete_batch_rows:
                break
        return total


def _busy(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def _lo(lo: int | None) -> int:
    return 0 if lo is None else lo  # the partition of the ids before migration 0008 starts at MINVALUE


def _hi(hi: int | None) -> int:
    return 2**63 - 1 if hi is None else hi
