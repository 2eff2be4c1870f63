"""The /v1 job routes: submit (JSON path or streamed upload), read, list, result, events, control, stats.

Handlers are thin: validate, call one JobStore method in the thread pool, shape the answer with
web.representation. Submission logic shared with the old Flask routes lives in the ``submit_*``
functions below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs.job import Job
from jobs.states import JobState
from jobs.store import MAX_RETRIES, IdempotencyConflict, JobStore
from web.auth import principal_of
from web.context import AppContext, ctx, db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.representation import (
    decode_cursor,
    encode_cursor,
    event_to_dict,
    job_to_dict,
    stats_to_dict,
)
from web.tokens import Principal
from web.uploads import receive_upload
from web.validation import (
    check_fields,
    clean_int,
    clean_number,
    clean_params,
    clean_text,
    is_json_content_type,
    parse_int_text,
    parse_json,
    parse_number_text,
    parse_time,
    query_params,
    read_json_object,
)
from worker.pipeline.params import InvalidParams, schema_for

MAX_PRIORITY = 1_000_000
MAX_ATTEMPTS = 100
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_KEY_LEN = 200
MAX_PATH_LEN = 4096
LIST_DEFAULT, LIST_MAX = 50, 500
STATS_DEFAULT_DAYS, STATS_MAX_DAYS = 7, 366
MAX_JOB_ID = 2**63 - 1

SUBMIT_OPTIONS = frozenset({"priority", "params", "idempotency_key", "max_attempts", "timeout_s"})
SUBMIT_JSON_FIELDS = SUBMIT_OPTIONS | {"video_path"}


@dataclass(frozen=True)
class SubmitOptions:
    priority: int = 0
    params: dict[str, Any] | None = None
    idempotency_key: str | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None


#: How each optional submit field is validated, whether it came as JSON or as a form field.
_CLEANERS: dict[str, Callable[[Any, str], Any]] = {
    "priority": lambda v, name: clean_int(v, name, lo=-MAX_PRIORITY, hi=MAX_PRIORITY),
    "params": clean_params,
    "idempotency_key": lambda v, name: clean_text(v, name, max_len=MAX_KEY_LEN),
    "max_attempts": lambda v, name: clean_int(v, name, lo=1, hi=MAX_ATTEMPTS),
    "timeout_s": lambda v, name: clean_number(v, name, lo=0.0, hi=MAX_TIMEOUT_S, lo_exclusive=True),
}

#: Multipart fields are text: how each becomes the JSON value it stands for, before the same checks.
_FORM_DECODERS: dict[str, Callable[[str, str], Any]] = {
    "priority": lambda text, name: parse_int_text(text, name, lo=-(2**63), hi=2**63),
    "params": lambda text, name: parse_json(text.encode()),
    "idempotency_key": lambda text, name: text,
    "max_attempts": lambda text, name: parse_int_text(text, name, lo=-(2**63), hi=2**63),
    "timeout_s": lambda text, name: parse_number_text(text, name, lo=-math.inf, hi=math.inf),
}


def options_from_json(doc: dict[str, Any], pipeline: str | None = None) -> SubmitOptions:
    """The optional submit fields of a JSON body, validated (null means "not given"); ``params``
    also against the schema of the ``pipeline`` factory the workers run, when it declares one."""
    values = {name: clean(doc[name], name) for name, clean in _CLEANERS.items() if doc.get(name) is not None}
    if pipeline is not None and "params" in values:
        check_pipeline_params(pipeline, values["params"])
    return SubmitOptions(**values)


def options_from_form(fields: dict[str, str], pipeline: str | None = None) -> SubmitOptions:
    """The same options sent as multipart text fields (params as JSON text)."""
    check_fields(fields, SUBMIT_OPTIONS)
    return options_from_json({name: _FORM_DECODERS[name](text, name) for name, text in fields.items()}, pipeline)


def check_pipeline_params(pipeline: str, params: dict[str, Any]) -> None:
    """422 now for params the configured pipeline would refuse later, on a worker, as a failed job
    (worker/pipeline/params.py); a pipeline that declares no schema takes any JSON object."""
    schema = schema_for(pipeline)
    if schema is None:
        return
    try:
        schema.validate(params)
    except InvalidParams as exc:
        raise ApiError(422, ErrorCode.INVALID_PARAMS, f"params: {exc}") from None


def clean_video_path(app: AppContext, value: Any) -> str:
    """A client-named path, checked against the media roots (403) and for existence (422)."""
    path = clean_text(value, "video_path", max_len=MAX_PATH_LEN)
    return app.media.resolve(path)


def check_priority(principal: Principal, options: SubmitOptions) -> None:
    """A client-chosen priority above the token's ceiling is refused (422), not clamped: the client
    learns that its job would not run as urgently as it asked. Ceilings stay below the priority of
    interactive /pose/hybrid jobs, so those always run first."""
    if options.priority > principal.max_priority:
        raise ApiError(
            422,
            ErrorCode.PRIORITY_TOO_HIGH,
            f"priority {options.priority} is above this token's ceiling of {principal.max_priority}",
        )


async def submit_job(
    app: AppContext,
    options: SubmitOptions,
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
            priority=options.priority,
            params=options.params,
            max_attempts=options.max_attempts,
            timeout_s=options.timeout_s,
            idempotency_key=options.idempotency_key,
            owner_token_id=principal.token_id,
        )
    except IdempotencyConflict as exc:
        raise ApiError(
            409,
            ErrorCode.IDEMPOTENCY_CONFLICT,
            f"idempotency key already used by job {exc.existing.id} for a different request",
        ) from None


def job_response(job: Job, *, created: bool) -> JSONResponse:
    headers = {"Location": f"/v1/jobs/{job.id}"}
    return JSONResponse(job_to_dict(job), status_code=201 if created else 200, headers=headers)


async def submit(request: Request) -> Response:
    app = ctx(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        return await _submit_upload(request, app)
    if not is_json_content_type(media_type):
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send application/json or multipart/form-data")
    doc = await read_json_object(request)
    check_fields(doc, SUBMIT_JSON_FIELDS, frozenset({"video_path"}))
    options = options_from_json(doc, app.settings.pipeline)
    principal = principal_of(request)
    check_priority(principal, options)
    path = clean_video_path(app, doc["video_path"])
    job, created = await submit_job(app, options, principal=principal, video_path=path)
    return job_response(job, created=created)


async def _submit_upload(request: Request, app: AppContext) -> Response:
    upload = await receive_upload(request, app.store, max_bytes=app.max_upload_bytes, spool_dir=app.spool_dir)
    keep = False
    try:
        options = options_from_form(upload.fields, app.settings.pipeline)
        principal = principal_of(request)
        check_priority(principal, options)
        job, created = await submit_job(app, options, principal=principal, upload_id=upload.upload_id)
        keep = created  # a replayed idempotent request keeps the first upload, not this copy
    finally:
        if not keep:
            await db(app.store.delete_upload, upload.upload_id)
    return job_response(job, created=created)


# ---- reading -------------------------------------------------------------------------------------
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


async def get_job(request: Request) -> Response:
    return JSONResponse(job_to_dict(await load_job(request)))


async def get_result(request: Request) -> Response:
    """The result document as PostgreSQL serialised it (no Python round trip); gzip is applied by the
    route's GZipMiddleware when the client accepts it."""
    job_id = job_id_of(request)
    store = ctx(request).store
    visible_to = principal_of(request).visible_to
    document = await db(store.result_json, job_id, visible_to=visible_to)
    if document is not None:
        return Response(document, media_type="application/json")
    job = await db(store.get, job_id, visible_to=visible_to)
    if job is None:
        raise ApiError(404, ErrorCode.JOB_NOT_FOUND, f"no job {job_id}")
    raise ApiError(
        409, ErrorCode.RESULT_NOT_READY, f"job {job_id} is {job.state.value}; a result exists once it succeeded"
    )


async def job_events(request: Request) -> Response:
    job = await load_job(request)
    events = await db(ctx(request).store.events, job.id)
    return JSONResponse({"job_id": job.id, "events": [event_to_dict(e) for e in events]})


async def list_jobs(request: Request) -> Response:
    query = query_params(request, frozenset({"state", "since", "cursor", "limit"}))
    state = query.get("state")
    if state is not None and state not in {s.value for s in JobState}:
        raise ApiError(422, ErrorCode.INVALID_PARAMETER, f"state must be one of {', '.join(s.value for s in JobState)}")
    since = parse_time(query["since"], "since") if "since" in query else None
    limit = parse_int_text(query["limit"], "limit", lo=1, hi=LIST_MAX) if "limit" in query else LIST_DEFAULT
    before_id = None
    if "cursor" in query:
        before_id = decode_cursor(query["cursor"])
        if before_id is None:
            raise ApiError(400, ErrorCode.INVALID_CURSOR, "cursor is not one this server issued")
    jobs = await db(
        ctx(request).store.list_jobs,
        state=state,
        since=since,
        before_id=before_id,
        limit=limit + 1,
        visible_to=principal_of(request).visible_to,
    )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return JSONResponse(
        {
            "jobs": [job_to_dict(j) for j in jobs],
            "next_cursor": encode_cursor(jobs[-1].id) if more else None,
        }
    )


# ---- control -------------------------------------------------------------------------------------
async def _existing_job(store: JobStore, job_id: int, visible_to: int | None) -> Job:
    """The job a control statement did not change: 404 if it does not exist for this caller."""
    existing = await db(store.get, job_id, visible_to=visible_to)
    if existing is None:
        raise ApiError(404, ErrorCode.JOB_NOT_FOUND, f"no job {job_id}")
    return existing


async def cancel_job(request: Request) -> Response:
    """Queued → cancelled now; running → cancel requested (its worker kills the pipeline within a
    second and records the cancellation); finished → 409."""
    job_id = job_id_of(request)
    store = ctx(request).store
    visible_to = principal_of(request).visible_to
    job = await db(store.cancel, job_id, visible_to=visible_to)
    if job is None:
        existing = await _existing_job(store, job_id, visible_to)
        raise ApiError(409, ErrorCode.JOB_FINISHED, f"job {job_id} is already {existing.state.value}")
    return JSONResponse(job_to_dict(job), status_code=202 if job.state == JobState.RUNNING else 200)


async def retry_job(request: Request) -> Response:
    """A failed or cancelled job back to the queue, at most MAX_RETRIES times per job (409 past it),
    and never once retention has deleted its upload (409: nothing left to run)."""
    job_id = job_id_of(request)
    store = ctx(request).store
    visible_to = principal_of(request).visible_to
    job = await db(store.retry, job_id, visible_to=visible_to)
    if job is None:
        existing = await _existing_job(store, job_id, visible_to)
        if existing.state not in (JobState.FAILED, JobState.CANCELLED):
            raise ApiError(
                409,
                ErrorCode.NOT_RETRYABLE,
                f"job {job_id} is {existing.state.value}; only failed or cancelled jobs retry",
            )
        if existing.retries >= MAX_RETRIES:
            raise ApiError(
                409, ErrorCode.RETRY_LIMIT, f"job {job_id} has been retried {existing.retries} times, the most allowed"
            )
        raise ApiError(
            409, ErrorCode.UPLOAD_EXPIRED, f"job {job_id}'s upload was deleted by retention; submit it again"
        )
    return JSONResponse(job_to_dict(job))


# ---- history -------------------------------------------------------------------------------------
async def stats(request: Request) -> Response:
    query = query_params(request, frozenset({"days"}))
    days = parse_int_text(query["days"], "days", lo=1, hi=STATS_MAX_DAYS) if "days" in query else STATS_DEFAULT_DAYS
    store = ctx(request).store
    principal = principal_of(request)
    owner = None if principal.admin else principal.token_id  # a tenant's statistics are its own jobs'
    daily = await db(store.daily_stats, days, owner_token_id=owner)
    failures = await db(store.failure_stats, days, owner_token_id=owner)
    return JSONResponse(stats_to_dict(days, daily, failures))
