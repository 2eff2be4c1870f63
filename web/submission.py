"""Submitting and finding jobs: what the /v1 routes and the old Flask routes share.

A module of its own so that route modules need not import each other (web/routes_jobs.py and
web/routes_legacy.py both submit and read jobs through these).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from jobs.job import Job
from jobs.store import IdempotencyConflict
from web.auth import principal_of
from web.context import AppContext, ctx, db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.inputs import MAX_JOB_ID, SubmitOptions
from web.tokens import Principal
from worker.pipeline.params import InvalidParams, check_service_params, schema_for_job


@dataclass(frozen=True)
class Submission:
    """A job's options with the server's defaults in place of what the client left out."""

    priority: int = 0
    params: dict[str, Any] | None = None
    idempotency_key: str | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None

    @classmethod
    def of(cls, options: SubmitOptions, pipeline: str | None) -> Submission:
        """The validated options; ``params`` also against the schema of the ``pipeline`` factory the
        workers run, when it declares one."""
        if pipeline is not None and options.params is not None:
            check_pipeline_params(pipeline, options.params)
        return cls(
            priority=options.priority or 0,
            params=options.params,
            idempotency_key=options.idempotency_key,
            max_attempts=options.max_attempts,
            timeout_s=options.timeout_s,
        )


def check_pipeline_params(pipeline: str, params: dict[str, Any]) -> None:
    """422 now for params the configured pipeline would refuse later, on a worker, as a failed job
    (worker/pipeline/params.py); a pipeline that declares no schema takes any JSON object besides the
    service's own params (``segment_s``), which are checked for every pipeline."""
    schema = schema_for_job(pipeline, params)  # the phalp backend's own, when params name it
    try:
        if schema is None:
            check_service_params(params)
        else:
            schema.validate(params)
    except InvalidParams as exc:
        raise ApiError(422, ErrorCode.INVALID_PARAMS, f"params: {exc}") from None


def check_priority(principal: Principal, submission: Submission) -> None:
    """A client-chosen priority above the token's ceiling is refused (422), not clamped: the client
    learns that its job would not run as urgently as it asked. Ceilings stay below the priority of
    interactive /pose/hybrid jobs, so those always run first."""
    if submission.priority > principal.max_priority:
        raise ApiError(
            422,
            ErrorCode.PRIORITY_TOO_HIGH,
            f"priority {submission.priority} is above this token's ceiling of {principal.max_priority}",
        )


async def submit_job(
    app: AppContext,
    submission: Submission,
    *,
    principal: Principal,
    video_path: str | None = None,
    upload_id: int | None = None,
) -> tuple[Job, bool]:
    """Insert the job, owned by the principal's token; (job, created). A repeated idempotency key
    for another request is a 409 (keys are the owner's own: another tenant's never matches)."""
    try:
        return await db(
            app.store.submit,
            video_path,
            upload_id=upload_id,
            priority=submission.priority,
            params=submission.params,
            max_attempts=submission.max_attempts,
            timeout_s=submission.timeout_s,
            idempotency_key=submission.idempotency_key,
            owner_token_id=principal.token_id,
        )
    except IdempotencyConflict as exc:
        raise ApiError(
            409,
            ErrorCode.IDEMPOTENCY_CONFLICT,
            f"idempotency key already used by job {exc.existing.id} for a different request",
        ) from None


def job_id_of(request: Request) -> int:
    """The {job_id} path parameter; anything that cannot be a job id is simply not found."""
    raw = request.path_params["job_id"]
    if not (isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19):
        raise ApiError(404, ErrorCode.JOB_NOT_FOUND, "no such job")
    value = int(raw)
    if not 0 < value <= MAX_JOB_ID:
        raise ApiError(404, ErrorCode.JOB_NOT_FOUND, "no such job")
    return value


async def load_job(request: Request) -> Job:
    """The {job_id} job if the caller may see it: another tenant's job is a 404 like a missing one,
    so job ids tell a tenant nothing about other tenants."""
    job_id = job_id_of(request)
    job = await db(ctx(request).store.get, job_id, visible_to=principal_of(request).visible_to)
    if job is None:
        raise ApiError(404, ErrorCode.JOB_NOT_FOUND, f"no job {job_id}")
    return job
