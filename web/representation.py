"""What the API answers with: jobs, events, workers, the pool and statistics, as pydantic models.

These models are the single statement of every response body: the routes build them, /openapi.json
publishes their JSON Schema (web/openapi.py), and the CLI (jobs/cli/client.py) prints the very same
JSON, so `pose-service status` shows exactly what `GET /v1/jobs/{id}` returns. Nothing here imports
Starlette, so the CLI does not load the web stack. Times are ISO 8601 strings in UTC ("...Z"), written
by ``iso`` rather than by pydantic, so the JSON stays byte-for-byte what clients already parse.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from jobs.job import Job
from jobs.states import JobState
from web.error_codes import ErrorCode
from web.result_document import Keypoint, Person, ResultModel

#: A time as the API writes it: ISO 8601, UTC, with a Z.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
#: A calendar day, YYYY-MM-DD.
Day = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _iso(value: datetime | date) -> str:
    text = iso(value)
    assert text is not None
    return text


def _num(value: Any) -> float | None:
    if value is None:
        return None
    return round(float(value), 3)


class _Answer(BaseModel):
    """A response body: exactly these fields (additionalProperties false in the document), so a
    field added to the code and not to the model fails the schemathesis run."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The JSON a route sends."""
        return self.model_dump(mode="json", by_alias=True)


class ErrorDetail(_Answer):
    code: ErrorCode = Field(description="stable and machine-readable")
    message: str = Field(description="for humans; may change")


class ErrorBody(_Answer):
    """Every failure: a status code and this body."""

    error: ErrorDetail


# ---- jobs -------------------------------------------------------------------------------------------
class VideoFromPath(_Answer):
    source: Literal["path"]
    path: str | None


class VideoFromUpload(_Answer):
    source: Literal["upload"]
    upload_id: int


class Progress(_Answer):
    frames_done: int
    frames_total: int | None
    percent: float | None


class Attempts(_Answer):
    attempt: int
    max_attempts: int
    retries: int = Field(description="times the API re-queued it (capped)")


class Timings(_Answer):
    created_at: Timestamp
    run_after: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    wait_s: float | None = Field(description="queued until first claimed; counted up to now while queued")
    run_s: float | None = Field(description="the latest attempt; counted up to now while running")


class JobError(_Answer):
    kind: str | None
    message: str | None


class SegmentOf(_Answer):
    """A segment job's place: frames [first_frame, stop_frame) of its parent's video."""

    parent_id: int
    index: int
    first_frame: int
    stop_frame: int | None = Field(description="exclusive; null: to the end of the video")


class Segments(_Answer):
    """A split job's segments (GET /v1/jobs?parent_id= lists them); progress counts their frames."""

    count: int
    succeeded: int | None = Field(description="while the job waits for them")
    running: int | None = Field(description="while the job waits for them")
    list: str = Field(description="where to list them")


class Links(_Answer):
    self: str
    result: str
    events: str
    analysis: str


class JobView(_Answer):
    """A job: GET /v1/jobs/{job_id}, and each item of a list."""

    id: int
    state: JobState
    priority: int
    params: dict[str, Any]
    video: VideoFromPath | VideoFromUpload = Field(discriminator="source")
    progress: Progress
    attempts: Attempts
    timings: Timings
    error: JobError | None
    worker_id: str | None
    cancel_requested: bool
    timeout_s: float | None
    idempotency_key: str | None
    owner_token_id: int | None = Field(description="the API token that submitted it; null: SQL, env token, open API")
    segment_of: SegmentOf | None = Field(description="set on a segment job (a stretch of a split job's video)")
    segments: Segments | None = Field(description="set on a job split into segment jobs")
    kind: Literal["pose", "analysis"] = Field(
        description="pose: a video through the pose pipeline; analysis: the sport analysis of a pose job's "
                    "keypoints (source_job_id) or of an uploaded keypoints file (video.upload_id)")
    source_job_id: int | None = Field(description="an analysis job's pose job (null: an uploaded file, or a pose job)")
    links: Links

    @classmethod
    def of(cls, job: Job, *, now: datetime | None = None) -> JobView:
        """The job as the API returns it. Wait and run times of unfinished jobs are counted up to now."""
        now = now or datetime.now(UTC)
        wait_s = job.wait_s
        if wait_s is None and job.state == JobState.QUEUED:
            wait_s = max(0.0, (now - job.created_at).total_seconds())
        run_s = job.run_s
        if run_s is None and job.state == JobState.RUNNING and job.attempt_started_at is not None:
            run_s = max(0.0, (now - job.attempt_started_at).total_seconds())
        error = None
        if job.error_kind is not None or job.error_message is not None:
            error = JobError(kind=job.error_kind, message=job.error_message)
        video: VideoFromPath | VideoFromUpload
        if job.upload_id is not None:
            video = VideoFromUpload(source="upload", upload_id=job.upload_id)
        else:
            video = VideoFromPath(source="path", path=job.video_path)
        return cls(
            id=job.id,
            state=job.state,
            priority=job.priority,
            params=job.params,
            video=video,
            progress=Progress(
                frames_done=job.frames_progress, frames_total=job.frames_total, percent=job.progress_percent
            ),
            attempts=Attempts(attempt=job.attempt, max_attempts=job.max_attempts, retries=job.retries),
            timings=Timings(
                created_at=_iso(job.created_at),
                run_after=_iso(job.run_after),
                started_at=iso(job.started_at),
                finished_at=iso(job.finished_at),
                wait_s=_num(wait_s),
                run_s=_num(run_s),
            ),
            error=error,
            worker_id=job.worker_id,
            cancel_requested=job.cancel_requested,
            timeout_s=job.timeout_s,
            idempotency_key=job.idempotency_key,
            owner_token_id=job.owner_token_id,
            segment_of=None if job.parent_id is None or job.segment_index is None else SegmentOf(
                parent_id=job.parent_id, index=job.segment_index, first_frame=job.segment_first or 0,
                stop_frame=job.segment_stop),
            segments=None if job.segment_count is None else Segments(
                count=job.segment_count, succeeded=job.segments_succeeded, running=job.segments_running,
                list=f"/v1/jobs?parent_id={job.id}"),
            kind="analysis" if job.kind == "analysis" else "pose",
            source_job_id=job.source_job_id,
            links=Links(
                self=f"/v1/jobs/{job.id}", result=f"/v1/jobs/{job.id}/result", events=f"/v1/jobs/{job.id}/events",
                analysis=f"/v1/jobs/{job.id}/analysis",
            ),
        )


def job_to_dict(job: Job, *, now: datetime | None = None) -> dict[str, Any]:
    """The job's JSON (JobView), for the CLI and the tests."""
    return JobView.of(job, now=now).to_json()


class JobList(_Answer):
    """GET /v1/jobs: a page, newest first."""

    jobs: list[JobView]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class EventView(_Answer):
    """One state transition (pose_job_events)."""

    id: int
    at: Timestamp
    from_state: JobState | None
    to_state: JobState
    attempt: int
    worker_id: str | None
    error_kind: str | None
    error_message: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> EventView:
        return cls(
            id=row["id"],
            at=_iso(row["at"]),
            from_state=row["from_state"],
            to_state=row["to_state"],
            attempt=row["attempt"],
            worker_id=row["worker_id"],
            error_kind=row["error_kind"],
            error_message=row["error_message"],
        )


class EventList(_Answer):
    """GET /v1/jobs/{job_id}/events, oldest first."""

    job_id: int
    events: list[EventView]


# ---- workers and the pool ---------------------------------------------------------------------------
class CurrentJob(_Answer):
    job_id: int
    frames_done: int | None
    frames_total: int | None
    percent: float | None
    started_at: Timestamp | None


class WorkerView(_Answer):
    id: str
    host: str
    pid: int
    gpu: str | None
    mode: str
    problem: str | None = Field(description="why it cannot run jobs (its pipeline cannot load); null when it can")
    started_at: Timestamp
    heartbeat_at: Timestamp
    current_job: CurrentJob | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> WorkerView:
        job_id = row.get("current_job_id")
        current = None
        if job_id is not None:
            done, total = row.get("frames_done"), row.get("frames_total")
            percent = round(100.0 * min(done, total) / total, 1) if done is not None and total else None
            current = CurrentJob(
                job_id=job_id,
                frames_done=done,
                frames_total=total,
                percent=percent,
                started_at=iso(row.get("job_started_at")),
            )
        return cls(
            id=row["id"],
            host=row["host"],
            pid=row["pid"],
            gpu=row["gpu"],
            mode=row["mode"],
            problem=row.get("problem"),
            started_at=_iso(row["started_at"]),
            heartbeat_at=_iso(row["heartbeat_at"]),
            current_job=current,
        )


class QueueView(_Answer):
    ready: int = Field(description="queued jobs that may run now")
    queued: int = Field(description="all queued jobs, delayed retries included")


class PoolView(_Answer):
    """GET /v1/pool: live workers, the queue, and the estimated wait for a job submitted now."""

    workers: list[WorkerView]
    live_workers: int
    busy_workers: int
    queue: QueueView
    mean_run_s: float | None
    estimated_wait_s: float | None = Field(description="ready jobs × mean recent run time / live workers")

    @classmethod
    def of(cls, workers: list[dict[str, Any]], queue: dict[str, int], mean_run_s: float | None) -> PoolView:
        """ready jobs × mean recent run time / live workers (null when it cannot be estimated)."""
        live = len(workers)
        busy = sum(1 for w in workers if w.get("current_job_id") is not None)
        estimate = None
        if live and mean_run_s is not None:
            estimate = round(queue["ready"] * mean_run_s / live, 1)
        return cls(
            workers=[WorkerView.of(w) for w in workers],
            live_workers=live,
            busy_workers=busy,
            queue=QueueView(ready=queue["ready"], queued=queue["queued"]),
            mean_run_s=_num(mean_run_s),
            estimated_wait_s=estimate,
        )


# ---- statistics -------------------------------------------------------------------------------------
class DailyStats(_Answer):
    day: Day
    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    pending: int
    wait_p50_s: float | None
    wait_p95_s: float | None
    run_p50_s: float | None
    run_p95_s: float | None
    frames_processed: int
    run_seconds: float | None
    frames_per_s: float | None


class FailureStats(_Answer):
    day: Day
    error_kind: str
    failures: int
    jobs: int
    final_failures: int
    last_at: Timestamp | None
    last_message: str | None


class StatsTotals(_Answer):
    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    frames_processed: int
    frames_per_s: float | None


class StatsView(_Answer):
    """GET /v1/stats: the history views per day, totals over the window, and failures by kind."""

    days: int
    daily: list[DailyStats]
    failures: list[FailureStats]
    failures_by_kind: dict[str, int] = Field(description="failures per error kind, most frequent first")
    totals: StatsTotals

    @classmethod
    def of(cls, days: int, daily: list[dict[str, Any]], failures: list[dict[str, Any]]) -> StatsView:
        rows = []
        for r in daily:
            run_seconds = float(r["run_seconds"]) if r["run_seconds"] is not None else None
            frames = int(r["frames_processed"] or 0)
            rows.append(
                DailyStats(
                    day=_iso(r["day"]),
                    submitted=int(r["submitted"]),
                    succeeded=int(r["succeeded"]),
                    failed=int(r["failed"]),
                    cancelled=int(r["cancelled"]),
                    pending=int(r["pending"]),
                    wait_p50_s=_num(r["wait_p50_s"]),
                    wait_p95_s=_num(r["wait_p95_s"]),
                    run_p50_s=_num(r["run_p50_s"]),
                    run_p95_s=_num(r["run_p95_s"]),
                    frames_processed=frames,
                    run_seconds=_num(run_seconds),
                    frames_per_s=round(frames / run_seconds, 2) if run_seconds else None,
                )
            )
        by_kind: dict[str, int] = {}
        for f in failures:
            kind = f["error_kind"]
            by_kind[kind] = by_kind.get(kind, 0) + int(f["failures"])
        total_frames = sum(r.frames_processed for r in rows)
        total_run = sum(r.run_seconds or 0.0 for r in rows)
        return cls(
            days=days,
            daily=rows,
            failures=[
                FailureStats(
                    day=_iso(f["day"]),
                    error_kind=f["error_kind"],
                    failures=int(f["failures"]),
                    jobs=int(f["jobs"]),
                    final_failures=int(f["final_failures"]),
                    last_at=iso(f["last_at"]),
                    last_message=f["last_message"],
                )
                for f in failures
            ],
            failures_by_kind=dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
            totals=StatsTotals(
                submitted=sum(r.submitted for r in rows),
                succeeded=sum(r.succeeded for r in rows),
                failed=sum(r.failed for r in rows),
                cancelled=sum(r.cancelled for r in rows),
                frames_processed=total_frames,
                frames_per_s=round(total_frames / total_run, 2) if total_run else None,
            ),
        )


def stats_to_dict(days: int, daily: list[dict[str, Any]], failures: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics' JSON (StatsView), for the CLI."""
    return StatsView.of(days, daily, failures).to_json()


# ---- health and readiness ---------------------------------------------------------------------------
class StatusView(_Answer):
    """Liveness: the process answers."""

    status: str


class ReadinessChecks(_Answer):
    database: str = Field(description="ok or unreachable")
    schema_: str = Field(alias="schema", description="ok, out of date, or unreachable")
    live_workers: int | None = Field(description="null when the worker registry could not be read")
    able_workers: int | None = Field(default=None, description="live workers whose pipeline loads; absent when unknown")


class Readiness(_Answer):
    """Readiness: 200 when ready, else 503 with the reasons (and the usual error object)."""

    ready: bool
    reasons: list[str]
    checks: ReadinessChecks
    status: str | None = Field(default=None, description="the old service's healthy/unhealthy (/api/pose/health only)")
    error: ErrorDetail | None = Field(default=None, description="when not ready: code not_ready, the reasons joined")

    def to_json(self) -> dict[str, Any]:
        """Fields left unset (able_workers, status, error) are absent, not null."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# ---- the old Flask service's answers ----------------------------------------------------------------
class LegacyWorkers(_Answer):
    total: int
    busy: int
    idle: int


class LegacyPoolStatus(_Answer):
    """GET /api/pose/pool-status."""

    status: str
    workers: LegacyWorkers
    queue_length: int
    estimated_wait_s: float | None
    pool: PoolView

    @classmethod
    def of(cls, pool: PoolView) -> LegacyPoolStatus:
        return cls(
            status="ok",
            workers=LegacyWorkers(
                total=pool.live_workers, busy=pool.busy_workers, idle=pool.live_workers - pool.busy_workers
            ),
            queue_length=pool.queue.ready,
            estimated_wait_s=pool.estimated_wait_s,
            pool=pool,
        )


class LegacySubmitted(_Answer):
    """POST /pose/video."""

    job_id: int
    status: JobState


class LegacyVideoStatus(_Answer):
    """GET /pose/video/status/{job_id}."""

    job_id: int
    status: JobState
    progress: float = Field(description="percent")
    frames_done: int
    frames_total: int | None
    error: str | None
    result_url: str | None = Field(description="set once the job succeeded")

    @classmethod
    def of(cls, job: Job) -> LegacyVideoStatus:
        return cls(
            job_id=job.id,
            status=job.state,
            progress=job.progress_percent or 0.0,
            frames_done=job.frames_done,
            frames_total=job.frames_total,
            error=job.error_message,
            result_url=f"/v1/jobs/{job.id}/result" if job.state == JobState.SUCCEEDED else None,
        )


class HybridAnswer(_Answer):
    """POST /pose/hybrid: the people found in one image (the one frame of its result document)."""

    success: bool
    job_id: int
    width: int
    height: int
    keypoint_names: list[str]
    people: list[Person]
    keypoints: list[Keypoint] = Field(description="the first person's keypoints; empty when nobody was found")
    model: ResultModel | None


# ---- opaque cursors ---------------------------------------------------------------------------------
def encode_cursor(before_id: int) -> str:
    """Keyset cursor: the last id seen. Opaque (base64) so clients do not build it themselves and the
    server may change what it holds."""
    return base64.urlsafe_b64encode(f"v1:{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The id encoded in ``cursor``; None if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = raw.partition(":")
    if prefix != "v1" or not number.isdigit() or len(number) > 19:
        return None
    value = int(number)
    return value if 0 < value < 2**63 else None
