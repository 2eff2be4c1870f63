"""JobStore: the one module that reads and writes the job tables.

Every method runs one named statement from jobs/sql/queries.sql in its own short transaction. Worker
methods that finish or extend an attempt are guarded by (job id, worker id, attempt), so a worker
whose lease was rescued can never overwrite the job's newer life.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.abc import Buffer
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from jobs.database import make_engine
from jobs.db_deadline import Cutoff, deadline
from jobs.job import Job
from jobs.queries import driver_sql, runs_once
from jobs.states import RETRYABLE, ErrorKind, JobState

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
#: How often a client may re-queue one job through the API (POST /v1/jobs/{id}/retry). Each retry
#: grants a fresh set of attempts, so without a cap a poison video could be retried for ever.
MAX_RETRIES = 5
#: Uploads examined per retention statement: short transactions, whatever the backlog.
RETENTION_BATCH = 100
UPLOAD_CHUNK_BYTES = 1 << 20
T = TypeVar("T")


class IdempotencyConflict(Exception):
    """The idempotency key exists already, for a different request."""

    def __init__(self, existing: Job) -> None:
        super().__init__(f"idempotency key {existing.idempotency_key!r} is already used by job {existing.id}")
        self.existing = existing


@dataclass(frozen=True)
class Outcome:
    """What a finish call did: the job's new state, or None if the worker no longer owned it."""

    state: JobState | None

    @property
    def owned(self) -> bool:
        return self.state is not None


def _execute(
    conn: psycopg.Connection[Any],
    name: str,
    params: dict[str, Any],
    fetch: Callable[[psycopg.Cursor[Any]], T],
    limit: float | None,
) -> T:
    """The one place a named statement meets the driver: run it within ``limit`` seconds and fetch
    (errors as _driver_call says)."""
    sql = driver_sql(name)
    with _driver_call(conn, name, sql, params, limit), conn.cursor(row_factory=namedtuple_row) as cur:
        cur.execute(sql, params)
        return fetch(cur)


@contextlib.contextmanager
def _driver_call(
    conn: psycopg.Connection[Any], name: str, sql: str, params: dict[str, Any], limit: float | None
) -> Iterator[None]:
    """Whatever the block does with ``conn`` (a statement, a COPY) within ``limit`` seconds, its driver
    errors turned into SQLAlchemy's DBAPIError family (``connection_invalidated`` when the connection
    is dead or was cut off by the deadline)."""
    cutoff = Cutoff()
    try:
        with deadline(_socket_of(conn), limit) as cutoff:
            yield
    except psycopg.Error as exc:
        dead = cutoff.fired or (isinstance(exc, psycopg.OperationalError) and conn.broken)
        if cutoff.fired:
            exc = psycopg.OperationalError(f"no reply from the database within {limit:g}s ({name})")
        raise DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=dead) from exc


def _copy(
    conn: psycopg.Connection[Any], name: str, types: list[str], rows: Iterable[tuple[Any, ...]], limit: float | None
) -> None:
    """COPY ``rows`` into the table of named statement ``name`` (binary, ``types`` per column) within
    ``limit`` seconds, with _execute's error translation."""
    sql = driver_sql(name)
    with _driver_call(conn, name, sql, {}, limit), conn.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


#: What frames a binary COPY's data: the signature, flags and header extension, and the end marker.
COPY_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_BINARY_TRAILER = b"\xff\xff"


def _copy_tuples(conn: psycopg.Connection[Any], name: str, tuples: Iterable[Buffer], limit: float | None) -> None:
    """COPY data that is already binary COPY tuples (named statement ``name``, FORMAT BINARY) within
    ``limit`` seconds, with _execute's error translation: the pieces go to the server as they are."""
    sql = driver_sql(name)
    with _driver_call(conn, name, sql, {}, limit), conn.cursor() as cur, cur.copy(sql) as copy:
        copy.write(COPY_BINARY_HEADER)
        for piece in tuples:
            copy.write(memoryview(piece))  # the driver sends a large piece in slices: views, not copies
        copy.write(COPY_BINARY_TRAILER)


class Statements:
    """Named statements on one connection: what ``JobStore.transaction()`` hands its block."""

    def __init__(self, conn: psycopg.Connection[Any], limit: float | None) -> None:
        self._conn = conn
        self._limit = limit

    def one(self, name: str, /, **params: Any) -> Any:
        return _execute(self._conn, name, params, lambda cur: cur.fetchone(), self._limit)

    def all(self, name: str, /, **params: Any) -> list[Any]:
        return _execute(self._conn, name, params, lambda cur: cur.fetchall(), self._limit)

    def exec(self, name: str, /, **params: Any) -> int:
        return _execute(self._conn, name, params, lambda cur: cur.rowcount, self._limit)

    def copy(self, name: str, /, types: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
        _copy(self._conn, name, types, rows, self._limit)

    def copy_tuples(self, name: str, /, tuples: Iterable[Buffer]) -> None:
        _copy_tuples(self._conn, name, tuples, self._limit)


class Session(Statements):
    """Named statements on one autocommit connection (``JobStore.session()``): each runs alone, or
    several in one ``transaction()``."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """The block's statements in one transaction, committed when it ends normally."""
        try:
            with self._conn.transaction():
                yield self
        except psycopg.Error as exc:  # the commit or rollback itself failed
            dead = self._conn.broken
            raise DBAPIError.instance("COMMIT", {}, exc, psycopg.Error, connection_invalidated=dead) from exc


class _Default:
    """Marks "no per-call timeout given": use the store's own."""


DEFAULT = _Default()

#: How long one ordinary statement may wait for its reply (a claim, a status read, a lease
#: extension): generous for a loaded server, short next to a job's lease.
CALL_TIMEOUT_S = 15.0
#: Statements that move a result document get this much more per MiB they carry.
CALL_SECONDS_PER_MIB = 0.5


class JobStore:
    def __init__(self, engine: Engine, *, call_timeout_s: float | None = CALL_TIMEOUT_S) -> None:
        self.engine = engine
        self.call_timeout_s = call_timeout_s

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 5, call_timeout_s: float | None = CALL_TIMEOUT_S) -> JobStore:
        return cls(make_engine(url, pool_size=pool_size), call_timeout_s=call_timeout_s)

    def _bulk_timeout(self, payload_chars: int) -> float | None:
        """The deadline of a statement that carries ``payload_chars`` of document."""
        if self.call_timeout_s is None:
            return None
        return self.call_timeout_s + CALL_SECONDS_PER_MIB * payload_chars / (1 << 20)

    def close(self) -> None:
        self.engine.dispose()

    # ---- helpers -------------------------------------------------------------------------------
    def _run(
        self,
        name: str,
        params: dict[str, Any],
        fetch: Callable[[psycopg.Cursor[Any]], T],
        *,
        timeout_s: float | None | _Default = DEFAULT,
    ) -> T:
        """Run one named statement (autocommit: one round trip) and ``fetch`` from its cursor.

        Statements go straight to a pooled psycopg connection: the hot paths (claim, finish, status
        reads) are single statements whose cost is mostly the round trip, and SQLAlchemy's execution
        layer cost as much CPU as psycopg itself. Rows are named tuples. Errors surface as SQLAlchemy's
        DBAPIError family, like everywhere else in the code.

        Every call has a client-side deadline (``call_timeout_s`` unless ``timeout_s`` says otherwise;
        None: none), so a connection that silently stopped answering fails like a dropped one
        instead of blocking its thread forever (jobs/db_deadline.py).

        A connection that died under us (database restarted) is discarded, and the call is repeated
        once on a fresh one, unless the statement is marked ``-- once:`` in its SQL: the first
        execution may have committed before the reply was lost, and repeating a claim would claim a
        second job. Those raise the connection error (with ``connection_invalidated`` set) for the
        caller to handle; a worker's heartbeat returns any job it claimed without knowing it.
        """
        limit = self.call_timeout_s if isinstance(timeout_s, _Default) else timeout_s
        for retry in (not runs_once(name), False):
            fairy = self._checkout(name, params)
            try:
                return _execute(fairy.driver_connection, name, params, fetch, limit)
            except DBAPIError as exc:
                if exc.connection_invalidated:  # its pooled siblings died with the same server: start afresh
                    fairy.invalidate()
                    self.engine.dispose(close=False)
                if not (retry and exc.connection_invalidated):
                    raise
                log.warning("database connection lost during %s; retrying once on a new one", name)
            finally:
                fairy.close()
        raise AssertionError("unreachable")

    def _checkout(self, name: str, params: dict[str, Any]) -> Any:
        """A pooled connection (SQLAlchemy's pool "fairy"), or the outage as a DBAPIError."""
        try:
            return self.engine.raw_connection()
        except psycopg.Error as exc:  # no connection at all: the server is down or unreachable
            raise DBAPIError.instance(f"-- {name}", params, exc, psycopg.Error, connection_invalidated=True) from exc

    @contextlib.contextmanager
    def transaction(self, *, timeout_s: float | None | _Default = DEFAULT) -> Iterator[Statements]:
        """Several named statements in one transaction (committed when the block ends normally),
        run by the same executor as single calls. Never repeated: a dropped connection raises."""
        fairy = self._checkout("transaction", {})
        try:
            conn = fairy.driver_connection
            with conn.transaction():
                yield Statements(conn, self.call_timeout_s if isinstance(timeout_s, _Default) else timeout_s)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                fairy.invalidate()
            raise
        except psycopg.Error as exc:  # the commit or rollback itself failed
            dead = fairy.driver_connection.broken
            if dead:
                fairy.invalidate()
            raise DBAPIError.instance("COMMIT", {}, exc, psycopg.Error, connection_invalidated=dead) from exc
        finally:
            fairy.close()

    @contextlib.contextmanager
    def session(self, *, timeout_s: float | None | _Default = DEFAULT) -> Iterator[Session]:
        """One connection for a sequence of named statements, each its own transaction unless grouped
        with ``Session.transaction()``: for a duty that holds a session-level advisory lock across
        several short transactions (jobs/retention.py). A block that ends with an exception closes the
        connection instead of pooling it, so nothing the session held (a lock, a setting) outlives it."""
        fairy = self._checkout("session", {})
        limit = self.call_timeout_s if isinstance(timeout_s, _Default) else timeout_s
        try:
            yield Session(fairy.driver_connection, limit)
        except BaseException:
            fairy.invalidate()
            raise
        finally:
            fairy.close()

    def _one(self, name: str, /, call_timeout: float | None | _Default = DEFAULT, **params: Any) -> Any:
        return self._run(name, params, lambda cur: cur.fetchone(), timeout_s=call_timeout)

    def _exec(self, name: str, /, **params: Any) -> int:
        """A statement that returns no rows; the number of rows it touched."""
        return self._run(name, params, lambda cur: cur.rowcount)

    def _all(self, name: str, /, **params: Any) -> list[Any]:
        return self._run(name, params, lambda cur: cur.fetchall())

    def _job(self, name: str, /, **params: Any) -> Job | None:
        row = self._one(name, **params)
        return Job.from_row(row) if row is not None else None

    # ---- submitting and reading ----------------------------------------------------------------
    def submit(
        self,
        video_path: str | None = None,
        *,
        upload_id: int | None = None,
        priority: int = 0,
        params: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        run_after: datetime | None = None,
        idempotency_key: str | None = None,
        owner_token_id: int | None = None,
    ) -> tuple[Job, bool]:
        """Insert a job; returns (job, created). A repeated idempotency key returns the existing job
        when the request is the same and raises IdempotencyConflict when it differs. Keys are scoped
        to ``owner_token_id`` (the submitting API token; None for ownerless jobs), so one tenant's
        key never meets another's."""
        if (video_path is None) == (upload_id is None):
            raise ValueError("a job needs exactly one of video_path and upload_id")
        params = params or {}
        job = self._job(
            "submit_job",
            video_path=video_path,
            upload_id=upload_id,
            priority=priority,
            params=json.dumps(params),
            max_attempts=max_attempts or DEFAULT_MAX_ATTEMPTS,
            timeout_s=timeout_s,
            run_after=run_after,
            idempotency_key=idempotency_key,
            owner_token_id=owner_token_id,
        )
        if job is not None:
            return job, True
        existing = self._job(
            "get_job_by_idempotency_key", idempotency_key=idempotency_key, owner_token_id=owner_token_id
        )
        if existing is None:  # deleted between the two statements: try once more
            return self.submit(
                video_path,
                upload_id=upload_id,
                priority=priority,
                params=params,
                max_attempts=max_attempts,
                timeout_s=timeout_s,
                run_after=run_after,
                idempotency_key=idempotency_key,
                owner_token_id=owner_token_id,
            )
        same = (
            existing.video_path == video_path
            and (upload_id is None or existing.upload_id is not None)
            and existing.priority == priority
            and existing.params == params
        )
        if not same:
            raise IdempotencyConflict(existing)
        return existing, False

    def get(self, job_id: int, *, visible_to: int | None = None) -> Job | None:
        """The job, or None. ``visible_to`` (a token id) limits the answer to that token's own jobs:
        another's job is None, exactly like a missing one, so ids reveal nothing across tenants."""
        return self._job("get_visible_job", id=job_id, visible_to=visible_to)

    def list_jobs(
        self,
        *,
        state: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
        visible_to: int | None = None,
        parent_id: int | None = None,
    ) -> list[Job]:
        """Newest first: the jobs clients submitted, or with ``parent_id`` that split job's segments."""
        rows = self._all("list_jobs", state=state, since=since, before_id=before_id, limit=limit,
                         visible_to=visible_to, parent_id=parent_id)
        return [Job.from_row(r) for r in rows]

    def result(self, job_id: int) -> dict[str, Any] | None:
        """The whole result document of a succeeded job, frames included, read the one way results
        are read (jobs/result_stream.py); for small results (a still image, tests)."""
        from jobs.result_stream import open_result  # it builds on this module

        pieces = open_result(self, job_id)
        return None if pieces is None else dict(json.loads("".join(pieces)))

    def result_head(self, job_id: int, *, visible_to: int | None = None) -> ResultHead | None:
        """A succeeded job's result without its frames (JSON text), and where its frames are; None
        when there is none (or the job is not ``visible_to`` the caller, as in get())."""
        row = self._one("get_result_head", id=job_id, visible_to=visible_to)
        if row is None:
            return None
        return ResultHead(row.document, int(row.attempt), bool(row.has_frames), row.frames_deleted_at)

    def frame_bounds(self, job_id: int, attempt: int) -> tuple[int, int] | None:
        """The first and last frame index stored for the attempt; None when it stored none."""
        row = self._one("frame_bounds", id=job_id, attempt=attempt)
        return None if row.first is None else (int(row.first), int(row.last))

    def result_people(self, job_id: int, attempt: int, first: int, stop: int) -> list[Any]:
        """Frames [first, stop) of the attempt: a row per person, each a result@1 person as JSON text
        (person None: a frame without people; result_people_page)."""
        return self._all("result_people_page", id=job_id, attempt=attempt, first=first, stop=stop)

    def result_rows(self, job_id: int, attempt: int, first: int, stop: int) -> list[Any]:
        """Frames [first, stop) of the attempt: a row per person (track_id None: a frame without
        people) with its numbers as text (result_rows_page)."""
        return self._all("result_rows_page", id=job_id, attempt=attempt, first=first, stop=stop)

    def events(self, job_id: int) -> list[dict[str, Any]]:
        return [r._asdict() for r in self._all("job_events", id=job_id)]

    # ---- control -------------------------------------------------------------------------------
    def cancel(self, job_id: int, *, visible_to: int | None = None) -> Job | None:
        """Cancel a queued job now, or ask the worker of a running one to kill it. None if the job
        does not exist, is not ``visible_to`` the caller (as in get()) or has already finished."""
        return self._job("cancel_job", id=job_id, visible_to=visible_to)

    def retry(self, job_id: int, *, visible_to: int | None = None, max_retries: int = MAX_RETRIES) -> Job | None:
        """Re-queue a failed or cancelled job with fresh attempts, counting the retry. None if it is
        in another state, was retried ``max_retries`` times already, lost its upload to retention,
        or is not ``visible_to`` the caller (see get() for which)."""
        return self._job("retry_job", id=job_id, visible_to=visible_to, max_retries=max_retries)

    # ---- the worker's side ---------------------------------------------------------------------
    def claim(self, worker_id: str, lease_s: float) -> Job | None:
        return self._job("claim_job", worker_id=worker_id, lease_s=lease_s)

    def record_progress(
        self, job: Job, worker_id: str, frames_done: int, frames_total: int | None, lease_s: float
    ) -> bool | None:
        """Store progress and extend the lease. Returns cancel_requested, or None if not owned."""
        row = self._one(
            "record_progress",
            id=job.id,
            worker_id=worker_id,
            attempt=job.attempt,
            frames_done=frames_done,
            frames_total=frames_total,
            lease_s=lease_s,
        )
        return None if row is None else bool(row.cancel_requested)

    def extend_lease(self, job: Job, worker_id: str, lease_s: float) -> bool | None:
        """Returns cancel_requested, or None if the worker no longer owns the job."""
        row = self._one("extend_lease", id=job.id, worker_id=worker_id, attempt=job.attempt, lease_s=lease_s)
        return None if row is None else bool(row.cancel_requested)

    def store_frames(self, job: Job, worker_id: str, frames: list[dict[str, Any]], *, first_batch: bool) -> bool:
        """COPY result@1 frames of the running attempt into pose_frame_rows, fenced by (job, worker,
        attempt) in the same transaction; False (nothing written) when the worker no longer owns it.
        ``first_batch`` clears the job's older rows first; any batch replaces rows of its own
        frames, so a batch repeated after a lost reply is stored once."""
        if not frames and not first_batch:
            return True
        payload = sum(len(f.get("people") or ()) + 1 for f in frames) * 2048  # about a row's bytes
        with self.transaction(timeout_s=self._bulk_timeout(payload)) as tx:
            if tx.one("fence_attempt", id=job.id, worker_id=worker_id, attempt=job.attempt) is None:
                return False
            if first_batch:
                tx.exec("clear_job_frames", id=job.id)
            if not frames:
                return True
            if not first_batch:
                indexes = [int(f["index"]) for f in frames]
                tx.exec("clear_frame_range", id=job.id, attempt=job.attempt, first=min(indexes), last=max(indexes))
            tx.copy("copy_frame_rows", FRAME_ROW_TYPES, frame_rows(job.id, job.attempt, frames))
        return True

    def store_frame_tuples(
        self,
        job: Job,
        worker_id: str,
        tuples: Sequence[Buffer],
        first: int,
        last: int,
        *,
        first_batch: bool,
        repeat: bool = False,
    ) -> bool:
        """store_frames for rows that are binary COPY tuples already (copy_frame_rows' columns, this job's
        id and attempt in every row: worker/frame_spool.py), of frames ``first`` to ``last``. Fenced by
        (job, worker, attempt) in the same transaction; False (nothing written) when the worker no
        longer owns the attempt. ``first_batch`` clears the job's older rows first; ``repeat`` (the
        batch is sent again after an error) replaces the rows of its frames, so it is stored once.

        An ordinary batch is COPYed before the fence, which is its last statement: the job's row is
        then share-locked from the fence to the commit, not for the whole COPY, so the heartbeat's
        updates of the job never queue behind frames (nor starve behind two overlapping batches). A
        rescue that commits before the fence makes it find nothing and the batch is rolled back; one
        that comes after waits for the commit, and its successor's first batch deletes these rows."""
        size = sum(len(memoryview(t)) for t in tuples)
        try:
            with self.transaction(timeout_s=self._bulk_timeout(size)) as tx:
                if first_batch or repeat:
                    if tx.one("fence_attempt", id=job.id, worker_id=worker_id, attempt=job.attempt) is None:
                        return False
                    if first_batch:
                        tx.exec("clear_job_frames", id=job.id)
                    else:
                        tx.exec("clear_frame_range", id=job.id, attempt=job.attempt, first=first, last=last)
                    if tuples:
                        tx.copy_tuples("copy_frame_rows", tuples)
                    return True
                if tuples:
                    tx.copy_tuples("copy_frame_rows", tuples)
                if tx.one("fence_attempt", id=job.id, worker_id=worker_id, attempt=job.attempt) is None:
                    raise _FencedOut
        except _FencedOut:
            return False
        return True

    def _finish_succeeded(
        self, name: str, job: Job, worker_id: str, document_json: str, frames_stored: bool, **params: Any
    ) -> Any:
        """Run a finish_succeeded statement. A document that still has its frames (a pipeline that
        returned a whole document, or a test) has them stored as rows in the same transaction first,
        so every result is stored, and read, one way."""
        document = json.loads(document_json)
        frames = document.pop("frames", None) if isinstance(document, dict) else None
        head = json.dumps(document, separators=(",", ":")) if frames is not None else document_json
        params.update(id=job.id, worker_id=worker_id, attempt=job.attempt, document=head,
                      has_frames=frames_stored or frames is not None)
        if frames is None:  # the worker's way: the frames are stored; one statement, one round trip
            return self._one(name, call_timeout=self._bulk_timeout(len(document_json)), **params)
        with self.transaction(timeout_s=self._bulk_timeout(len(document_json))) as tx:
            if tx.one("fence_attempt", id=job.id, worker_id=worker_id, attempt=job.attempt) is None:
                return None
            tx.exec("clear_job_frames", id=job.id)
            tx.copy("copy_frame_rows", FRAME_ROW_TYPES, frame_rows(job.id, job.attempt, frames))
            return tx.one(name, **params)

    def succeed(
        self,
        job: Job,
        worker_id: str,
        document_json: str,
        frames_done: int,
        frames_total: int | None,
        *,
        frames_stored: bool = False,
    ) -> Outcome:
        """Record success with the result document. ``frames_stored``: the document has no frames
        because the attempt stored them already (store_frames)."""
        row = self._finish_succeeded("finish_succeeded", job, worker_id, document_json, frames_stored,
                                     frames_done=frames_done, frames_total=frames_total)
        return Outcome(JobState.SUCCEEDED if row is not None else None)

    def succeed_and_claim_next(
        self,
        job: Job,
        worker_id: str,
        document_json: str,
        frames_done: int,
        frames_total: int | None,
        lease_s: float,
        *,
        frames_stored: bool = False,
    ) -> tuple[Outcome, Job | None]:
        """succeed() and claim() in one statement and one commit."""
        row = self._finish_succeeded("finish_succeeded_and_claim", job, worker_id, document_json, frames_stored,
                                     frames_done=frames_done, frames_total=frames_total, lease_s=lease_s)
        if row is None:
            return Outcome(None), None
        outcome = Outcome(JobState.SUCCEEDED if row.finished else None)
        return outcome, (Job.from_row(row) if row.id is not None else None)

    def fail(
        self,
        job: Job,
        worker_id: str,
        kind: ErrorKind,
        message: str,
        *,
        retry_base_s: float,
        retry_cap_s: float,
    ) -> Outcome:
        row = self._one(
            "finish_failed",
            id=job.id,
            worker_id=worker_id,
            attempt=job.attempt,
            retryable=kind in RETRYABLE,
            error_kind=str(kind),
            error_message=message,
            retry_base_s=retry_base_s,
            retry_cap_s=retry_cap_s,
        )
        return Outcome(JobState(row.state) if row is not None else None)

    def finish_cancelled(self, job: Job, worker_id: str) -> Outcome:
        row = self._one("finish_cancelled", id=job.id, worker_id=worker_id, attempt=job.attempt)
        return Outcome(JobState(row.state) if row is not None else None)

    def release(self, job: Job, worker_id: str) -> Outcome:
        row = self._one("release_job", id=job.id, worker_id=worker_id, attempt=job.attempt)
        return Outcome(JobState(row.state) if row is not None else None)

    def rescue_expired(
        self, *, retry_base_s: float, retry_cap_s: float, rescuer_id: str | None = None
    ) -> list[tuple[int, str, int]]:
        rows = self._all("rescue_expired", retry_base_s=retry_base_s, retry_cap_s=retry_cap_s,
                         rescuer_id=rescuer_id)
        return [(r.id, r.state, r.attempt) for r in rows]

    # ---- segments: one long video, many workers (jobs/sql/segments.sql) -------------------------
    def split(self, job: Job, worker_id: str, frames_total: int, cuts: Sequence[tuple[int, int | None]]) -> Outcome:
        """Make the claimed ``job`` a waiting parent of one queued segment job per ``(first, stop)``."""
        row = self._one("split_job", id=job.id, worker_id=worker_id, attempt=job.attempt, frames_total=frames_total,
                        firsts=[c[0] for c in cuts], stops=[c[1] for c in cuts])
        return Outcome(JobState(row.state) if row is not None else None)

    def segments(self, parent_id: int) -> list[Any]:
        """A parent's segments in order: id, segment_index, segment_first, segment_stop, attempt, state,
        frames_done, frames_total, document (text, or None), tracks (the summary, or None)."""
        return self._all("job_segments", id=parent_id)

    def segment_boxes(self, job_id: int, attempt: int, first: int, stop: int) -> dict[int, dict[int, list[float]]]:
        """{track id: {frame: bbox}} of a segment's frames [first, stop)."""
        boxes: dict[int, dict[int, list[float]]] = {}
        for row in self._all("segment_boxes", id=job_id, attempt=attempt, first=first, stop=stop):
            boxes.setdefault(row.track_id, {})[row.frame_index] = list(row.bbox)
        return boxes

    def stitch(self, parent: Job, worker_id: str, parts: Sequence[StitchPart], document_json: str,
               frames_done: int) -> Outcome:
        """The parent's frames from its segments' (each part's frames [first, stop), its track ids
        mapped to the parent's) and its success, in one transaction: the segments' rows go only with
        the parent's success, so a stitch interrupted anywhere can simply run again. No row lock is
        held on the parent until its success (its heartbeat keeps extending the lease meanwhile); the
        success statement is the fence, and without it nothing of the stitch is committed."""
        rows = sum(p.rows for p in parts)
        with self.transaction(timeout_s=self._bulk_timeout(rows * 2048)) as tx:
            tx.exec("clear_job_frames", id=parent.id)
            for part in parts:
                tx.exec("stitch_segment", parent_id=parent.id, parent_attempt=parent.attempt, segment_id=part.job_id,
                        segment_attempt=part.attempt, first=part.first, stop=part.stop,
                        local_ids=list(part.track_ids), parent_ids=list(part.track_ids.values()))
            done = tx.one("finish_succeeded", id=parent.id, worker_id=worker_id, attempt=parent.attempt,
                          document=document_json, has_frames=True, frames_done=frames_done, frames_total=frames_done)
            if done is None:
                raise NotOwned(parent.id)
            for part in parts:
                tx.exec("clear_segment_frames", id=part.job_id)
        return Outcome(JobState.SUCCEEDED)

    # ---- workers registry ----------------------------------------------------------------------
    def register_worker(
        self, worker_id: str, *, host: str, pid: int, gpu: str | None, mode: str, backends: list[str] | None = None
    ) -> None:
        """Register (or revive) a worker; ``backends`` are the ones it can run, which the claim statements
        read from its row (None: only jobs that leave the backend to the worker)."""
        self._exec("register_worker", id=worker_id, host=host, pid=pid, gpu=gpu, mode=mode, backends=backends)

    def worker_heartbeat(self, worker_id: str, current_job_id: int | None) -> list[tuple[int, int]]:
        """Mark the worker alive, running ``current_job_id``; returns (job id, attempt) of each job
        that ran under its id without it knowing, now back in the queue (a lost claim reply)."""
        return [(r.id, r.attempt) for r in self._all("worker_heartbeat", id=worker_id, current_job_id=current_job_id)]

    def set_worker_problem(self, worker_id: str, problem: str | None) -> None:
        """Record why the worker cannot run jobs (None: it can again)."""
        self._exec("set_worker_problem", id=worker_id, problem=problem)

    def worker_stopped(self, worker_id: str) -> None:
        self._exec("worker_stopped", id=worker_id)

    def forget_dead_workers(self) -> None:
        self._exec("forget_dead_workers")

    def live_workers(self, lease_s: float) -> list[dict[str, Any]]:
        return [r._asdict() for r in self._all("live_workers", lease_s=lease_s)]

    # ---- queue and history ---------------------------------------------------------------------
    def queue_depth(self) -> dict[str, int]:
        row = self._one("queue_depth")
        return {"ready": int(row.ready), "queued": int(row.queued)}

    def count_by_state(self) -> dict[str, int]:
        counts = {state.value: 0 for state in JobState}
        counts.update({r.state: int(r.n) for r in self._all("count_by_state")})
        return counts

    def recent_mean_run_s(self) -> float | None:
        row = self._one("recent_run_seconds")
        return float(row.mean_run_s) if row.mean_run_s is not None else None

    def recent_job_durations(self) -> list[tuple[float | None, float | None]]:
        """(wait_s, run_s) of the jobs that succeeded within the last hour, for /metrics' histograms."""
        return [
            (None if r.wait_s is None else float(r.wait_s), None if r.run_s is None else float(r.run_s))
            for r in self._all("recent_job_durations")
        ]

    def daily_stats(self, days: int, *, owner_token_id: int | None = None) -> list[dict[str, Any]]:
        """pose_job_daily_stats; with ``owner_token_id``, the same figures over that token's jobs."""
        return [r._asdict() for r in self._all("daily_stats", days=days, owner_token_id=owner_token_id)]

    def failure_stats(self, days: int, *, owner_token_id: int | None = None) -> list[dict[str, Any]]:
        """pose_job_failures; with ``owner_token_id``, over that token's jobs only."""
        return [r._asdict() for r in self._all("failure_stats", days=days, owner_token_id=owner_token_id)]

    # ---- uploads -------------------------------------------------------------------------------
    def store_upload(
        self, chunks: Iterable[bytes], *, filename: str | None, content_type: str | None, max_bytes: int
    ) -> int:
        """Stream ``chunks`` into PostgreSQL in one transaction; raises UploadTooLarge past max_bytes
        (nothing is kept then). Returns the upload id."""
        digest, size, seq = hashlib.sha256(), 0, 0
        with self.transaction() as tx:
            upload_id = tx.one("create_upload", filename=filename, content_type=content_type).id
            for chunk in _rechunk(chunks, UPLOAD_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                digest.update(chunk)
                tx.exec("add_upload_chunk", upload_id=upload_id, seq=seq, data=chunk)
                seq += 1
            tx.exec("complete_upload", upload_id=upload_id, size_bytes=size, sha256=digest.hexdigest())
        return int(upload_id)

    def upload_info(self, upload_id: int) -> dict[str, Any] | None:
        row = self._one("get_upload", upload_id=upload_id)
        return row._asdict() if row is not None else None

    def iter_upload(self, upload_id: int) -> Iterator[bytes]:
        """The upload's bytes chunk by chunk, one short query each, so memory stays at one chunk."""
        return self.iter_upload_range(upload_id, 0, sys.maxsize)

    def iter_upload_range(self, upload_id: int, start: int, stop: int) -> Iterator[bytes]:
        """Bytes [start, stop) of an upload, for HTTP range requests (seeking in the viewer). Every
        chunk but the last holds UPLOAD_CHUNK_BYTES (store_upload rechunks), so the chunk holding an
        offset is offset // UPLOAD_CHUNK_BYTES: a seek near the end of a long video reads one chunk,
        not all the ones before it. One short query per chunk, memory one chunk."""
        seq = start // UPLOAD_CHUNK_BYTES
        offset = seq * UPLOAD_CHUNK_BYTES
        while offset < stop:
            row = self._one("upload_chunk", upload_id=upload_id, seq=seq)
            if row is None:
                return
            data = bytes(row.data)
            lo, hi = max(start - offset, 0), min(stop - offset, len(data))
            if lo < hi:
                yield data[lo:hi]
            offset += len(data)
            seq += 1

    def delete_upload(self, upload_id: int) -> None:
        self._exec("delete_upload", upload_id=upload_id)

    def delete_expired_uploads(self, retention_days: float, *, batch: int = RETENTION_BATCH) -> int:
        """Retention (DESIGN.md section 3): delete the bytes of uploads whose jobs all ended more than
        ``retention_days`` ago, and uploads no job refers to that are that old. Runs batch after
        batch until none is left; returns how many uploads it emptied or removed. Safe to run from
        several processes at once."""
        total = 0
        while True:
            row = self._one("delete_expired_uploads", retention_s=retention_days * 86400.0, batch=batch)
            done = int(row.emptied) + int(row.removed)
            total += done
            if done < batch:
                return total


def _socket_of(conn: psycopg.Connection[Any]) -> int:
    """The connection's socket, or -1 when it has none any more (the call will fail by itself)."""
    try:
        return conn.pgconn.socket
    except psycopg.Error:
        return -1


class NotOwned(Exception):
    """The worker no longer owns the job it was finishing (rescued, released): nothing was written."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} no longer belongs to this worker")
        self.job_id = job_id


@dataclass(frozen=True)
class StitchPart:
    """What a parent takes from one segment: frames [first, stop) (stop None: all the rest) of the
    segment's ``attempt``, its track ids mapped by ``track_ids`` (segment's -> parent's); ``rows``
    about how many rows that is (for the statement's deadline)."""

    job_id: int
    attempt: int
    first: int
    stop: int | None
    track_ids: Mapping[int, int]
    rows: int


class _FencedOut(Exception):
    """Rolls back a frame batch whose fence found the attempt gone."""


class UploadTooLarge(Exception):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"upload exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup arbitrary pieces into rows of ``size`` bytes (the last may be shorter)."""
    buf = bytearray()
    for piece in chunks:
        buf += piece
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


@dataclass(frozen=True)
class ResultHead:
    """A succeeded job's result document without its frames (JSON text), the attempt whose rows hold
    the frames, and whether it has frames at all."""

    document: str
    attempt: int
    has_frames: bool
    #: when retention deleted the frames (jobs/retention.py); None while they are kept
    frames_deleted_at: datetime | None = None


#: pose_frame_rows' columns as COPY sends them (the copy_frame_rows statement).
FRAME_ROW_TYPES = ["int8", "int4", "int4", "float8", "int4", "float4", "float4[]", "float4[]", "float4[]", "jsonb"]
PERSON_FIELDS = frozenset({"track_id", "score", "bbox", "keypoints", "world"})


def frame_rows(job_id: int, attempt: int, frames: Iterable[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """pose_frame_rows rows of result@1 frames: one per person, or one with track_id NULL for a frame
    without people; keypoints and world flattened; fields a backend adds under a person in ``extra``."""
    for frame in frames:
        index, time_s = int(frame["index"]), float(frame["time_s"])
        people = frame.get("people") or []
        if not people:
            yield (job_id, attempt, index, time_s, None, None, None, None, None, None)
        for person in people:
            extra = {k: v for k, v in person.items() if k not in PERSON_FIELDS}
            yield (
                job_id, attempt, index, time_s, int(person["track_id"]),
                None if person.get("score") is None else float(person["score"]),
                [float(v) for v in person["bbox"]],
                [float(v) for point in person["keypoints"] for v in point],
                [float(v) for point in person.get("world") or () for v in point],
                Jsonb(extra) if extra else None,
            )
