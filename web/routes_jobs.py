"""The /v1 job routes: submit (JSON path or streamed upload), read, list, result, events, control, stats.

Handlers are thin: validate with the request models (web/inputs.py), call one JobStore method in the
thread pool, answer with a response model (web/representation.py). What the old Flask routes share
with these (submitting, finding a job) lives in web/submission.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from jobs.job import Job
from jobs.result_stream import FramesDeleted, open_result
from jobs.states import JobState
from jobs.store import MAX_RETRIES, JobStore
from web.auth import principal_of
from web.context import AppContext, ctx, db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.inputs import ListJobsQuery, ResultQuery, StatsQuery, SubmitJson, SubmitOptions
from web.representation import EventList, EventView, JobList, JobView, StatsView, decode_cursor, encode_cursor
from web.submission import Submission, check_priority, job_id_of, load_job, submit_job
from web.uploads import receive_upload
from web.validation import form_values, is_json_content_type, query_params, read_json_object, validated


def job_response(job: Job, *, created: bool) -> JSONResponse:
    headers = {"Location": f"/v1/jobs/{job.id}"}
    return JSONResponse(JobView.of(job).to_json(), status_code=201 if created else 200, headers=headers)


async def submit(request: Request) -> Response:
    app = ctx(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        return await _submit_upload(request, app)
    if not is_json_content_type(media_type):
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send application/json or multipart/form-data")
    body = validated(SubmitJson, await read_json_object(request))
    submission = Submission.of(body, app.settings.pipeline)
    principal = principal_of(request)
    check_priority(principal, submission)
    path = app.media.resolve(body.video_path)
    job, created = await submit_job(app, submission, principal=principal, video_path=path)
    return job_response(job, created=created)


async def _submit_upload(request: Request, app: AppContext) -> Response:
    upload = await receive_upload(request, app.store, max_bytes=app.max_upload_bytes, spool_dir=app.spool_dir)
    keep = False
    try:
        options = validated(SubmitOptions, form_values(SubmitOptions, upload.fields))
        submission = Submission.of(options, app.settings.pipeline)
        principal = principal_of(request)
        check_priority(principal, submission)
        job, created = await submit_job(app, submission, principal=principal, upload_id=upload.upload_id)
        keep = created  # a replayed idempotent request keeps the first upload, not this copy
    finally:
        if not keep:
            await db(app.store.delete_upload, upload.upload_id)
    return job_response(job, created=created)


# ---- reading -------------------------------------------------------------------------------------
async def get_job(request: Request) -> Response:
    return JSONResponse(JobView.of(await load_job(request)).to_json())


async def get_result(request: Request) -> Response:
    """The result, streamed from PostgreSQL a page of frames at a time (jobs/result_stream.py), so the
    web process holds one page whatever the video's length; gzip is applied, as it streams, by the
    route's GZipMiddleware when the client accepts it. ``?frames=A:B`` keeps frames [A, B);
    ``?format=ndjson|csv`` chooses another representation. 410 once retention deleted the frames."""
    query = validated(ResultQuery, query_params(request), query=True)
    job_id = job_id_of(request)
    store = ctx(request).store
    visible_to = principal_of(request).visible_to
    try:
        pieces = await db(open_result, store, job_id, visible_to=visible_to, fmt=query.format, window=query.window)
    except FramesDeleted as gone:
        raise ApiError(410, ErrorCode.FRAMES_EXPIRED, f"{gone}, POSE_RETENTION_DAYS after the job ended; the job "
                       "and its result's summary (pose_results) remain") from None
    if pieces is not None:
        return StreamingResponse(_in_db_threads(pieces), media_type=query.format.media_type)
    job = await db(store.get, job_id, visible_to=visible_to)
    if job is None:
        raise ApiError(404, ErrorCode.JOB_NOT_FOUND, f"no job {job_id}")
    raise ApiError(
        409, ErrorCode.RESULT_NOT_READY, f"job {job_id} is {job.state.value}; a result exists once it succeeded"
    )


async def _in_db_threads(pieces: Iterator[str]) -> AsyncIterator[bytes]:
    """Each page is read on the database threads; the event loop only passes the bytes on."""
    while (piece := await db(next, pieces, None)) is not None:
        yield piece.encode()


async def job_events(request: Request) -> Response:
    job = await load_job(request)
    events = await db(ctx(request).store.events, job.id)
    return JSONResponse(EventList(job_id=job.id, events=[EventView.of(e) for e in events]).to_json())


async def list_jobs(request: Request) -> Response:
    query = validated(ListJobsQuery, query_params(request), query=True)
    before_id = None
    if query.cursor is not None:
        before_id = decode_cursor(query.cursor)
        if before_id is None:
            raise ApiError(400, ErrorCode.INVALID_CURSOR, "cursor is not one this server issued")
    jobs = await db(
        ctx(request).store.list_jobs,
        state=None if query.state is None else query.state.value,
        since=query.since,
        before_id=before_id,
        limit=query.limit + 1,
        visible_to=principal_of(request).visible_to,
        parent_id=query.parent_id,
    )
    more = len(jobs) > query.limit
    jobs = jobs[: query.limit]
    page = JobList(jobs=[JobView.of(j) for j in jobs], next_cursor=encode_cursor(jobs[-1].id) if more else None)
    return JSONResponse(page.to_json())


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
    return JSONResponse(JobView.of(job).to_json(), status_code=202 if job.state == JobState.RUNNING else 200)


async def retry_job(request: Request) -> Response:
    """A failed or cancelled job back to the queue, at most MAX_RETRIES times per job (409 past it),
    and never once retention has deleted its upload (409: nothing left to run); a segment only
    through its parent (409)."""
    job_id = job_id_of(request)
    store = ctx(request).store
    visible_to = principal_of(request).visible_to
    job = await db(store.retry, job_id, visible_to=visible_to)
    if job is None:
        existing = await _existing_job(store, job_id, visible_to)
        if existing.parent_id is not None:
            raise ApiError(409, ErrorCode.NOT_RETRYABLE,
                           f"job {job_id} is a segment of job {existing.parent_id}; retry job {existing.parent_id}")
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
    return JSONResponse(JobView.of(job).to_json())


# ---- history -------------------------------------------------------------------------------------
async def stats(request: Request) -> Response:
    days = validated(StatsQuery, query_params(request), query=True).days
    store = ctx(request).store
    principal = principal_of(request)
    owner = None if principal.admin else principal.token_id  # a tenant's statistics are its own jobs'
    daily = await db(store.daily_stats, days, owner_token_id=owner)
    failures = await db(store.failure_stats, days, owner_token_id=owner)
    return JSONResponse(StatsView.of(days, daily, failures).to_json())
