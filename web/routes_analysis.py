"""The sport analysis routes (issue 13, DESIGN.md sections 4 and 8): a re-analysis of a job's stored
keypoints, an analysis of uploaded keypoints, the analysis document and the exports.

Analyses are jobs (``kind`` analysis, migration 0011): both POSTs answer 201 with the job, which any
worker runs in a child that loads no model, and owners and tokens apply exactly as to the other job
routes (a job another tenant owns is a 404). Reading goes through jobs/analyses.py, streamed a track
(document) or a page of frames (exports) at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from jobs.analyses import AnalysisUnavailable, check_source, find_analysis, stream_document, submit_analysis
from jobs.analysis_export import TrackRequired, export, filename
from jobs.job import Job
from web.analysis_models import AnalysisQuery, AnalysisRequest, ExportQuery
from web.auth import principal_of
from web.context import ctx, db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.representation import JobView
from web.submission import Submission, check_priority, job_id_of
from web.uploads import receive_upload
from web.validation import form_values, query_params, read_json_object, validated
from worker.pipeline.analysis.keypoint_files import BadKeypoints, read_keypoints
from worker.pipeline.analysis.params import PARAMS
from worker.pipeline.params import InvalidParams

#: How each reason jobs/analyses.py gives maps to an answer.
UNAVAILABLE: dict[str, tuple[int, ErrorCode]] = {
    "job_not_found": (404, ErrorCode.JOB_NOT_FOUND),
    "analysis_not_found": (404, ErrorCode.ANALYSIS_NOT_FOUND),
    "track_not_found": (404, ErrorCode.TRACK_NOT_FOUND),
    "analysis_pending": (409, ErrorCode.ANALYSIS_PENDING),
    "not_a_pose_job": (409, ErrorCode.NOT_A_POSE_JOB),
    "job_not_succeeded": (409, ErrorCode.RESULT_NOT_READY),
    "keypoints_not_stored": (409, ErrorCode.KEYPOINTS_NOT_STORED),
    "analysis_expired": (410, ErrorCode.ANALYSIS_EXPIRED),
    "frames_expired": (410, ErrorCode.FRAMES_EXPIRED),
}


def _refused(exc: AnalysisUnavailable) -> ApiError:
    status, code = UNAVAILABLE[exc.reason]
    return ApiError(status, code, str(exc))


def _created(job: Job) -> JSONResponse:
    return JSONResponse(JobView.of(job).to_json(), status_code=201, headers={"Location": f"/v1/jobs/{job.id}"})


def _checked(request: Request, body: AnalysisRequest) -> tuple[dict[str, Any], int]:
    """The params as given (checked against the analysis schema: 422 otherwise) and the priority."""
    try:
        PARAMS.validate(body.params)
    except InvalidParams as exc:
        raise ApiError(422, ErrorCode.INVALID_PARAMS, f"params: {exc}") from None
    priority = body.priority or 0
    check_priority(principal_of(request), Submission(priority=priority))
    return body.params or {}, priority


async def reanalyse(request: Request) -> Response:
    """A new analysis of a succeeded pose job's stored keypoints, with the params given."""
    job_id = job_id_of(request)
    params, priority = _checked(request, validated(AnalysisRequest, await read_json_object(request)))
    store = ctx(request).store
    principal = principal_of(request)
    try:
        await db(check_source, store, job_id, visible_to=principal.visible_to)
    except AnalysisUnavailable as exc:
        raise _refused(exc) from None
    job = await db(submit_analysis, store, source_job_id=job_id, params=params, priority=priority,
                   owner_token_id=principal.token_id)
    return _created(job)


def check_keypoints(path: str) -> dict[str, Any]:
    """An uploaded keypoints file, read as the analysis child will read it: 422 now for what it would
    refuse later (keypoint_files.py)."""
    try:
        keypoints = read_keypoints(Path(path).read_bytes())
    except BadKeypoints as exc:
        raise ApiError(422, ErrorCode.INVALID_KEYPOINTS, f"keypoints: {exc}") from None
    return {"kind": keypoints.kind, "fps": keypoints.fps, "person_frames": keypoints.person_frames}


async def analyse_upload(request: Request) -> Response:
    """An analysis of uploaded keypoints (multipart ``keypoints``: result@1 JSON or TRC; ``params``,
    ``priority`` as text), stored like an uploaded video, checked before it is accepted."""
    app = ctx(request)
    upload = await receive_upload(request, app.store, max_bytes=app.max_upload_bytes, spool_dir=app.spool_dir,
                                  file_field="keypoints", check=check_keypoints)
    keep = False
    try:
        params, priority = _checked(request, validated(AnalysisRequest, form_values(AnalysisRequest, upload.fields)))
        job = await db(submit_analysis, app.store, upload_id=upload.upload_id, params=params, priority=priority,
                       owner_token_id=principal_of(request).token_id)
        keep = True
    finally:
        if not keep:
            await db(app.store.delete_upload, upload.upload_id)
    return _created(job)


async def get_analysis(request: Request) -> Response:
    """The analysis@1 document: a pose job's latest analysis, an analysis job's own; ``frames=A:B`` and
    ``tracks=1,2`` cut it. Streamed a series of one track at a time."""
    query = validated(AnalysisQuery, query_params(request), query=True)
    job_id = job_id_of(request)
    store = ctx(request).store
    try:
        ref = await db(find_analysis, store, job_id, visible_to=principal_of(request).visible_to)
    except AnalysisUnavailable as exc:
        raise _refused(exc) from None
    window = query.window
    pieces = stream_document(store, ref, first=window.first, stop=window.stop, tracks=query.track_ids)
    return StreamingResponse(_in_db_threads(pieces), media_type="application/json")


async def get_export(request: Request) -> Response:
    """The job's analysis (as GET .../analysis chooses it) as CSV, TRC or MOT, streamed."""
    query = validated(ExportQuery, query_params(request), query=True)
    job_id = job_id_of(request)
    store = ctx(request).store
    try:
        ref = await db(find_analysis, store, job_id, visible_to=principal_of(request).visible_to)
        pieces = await db(export, store, ref, query.format, query.track)
    except AnalysisUnavailable as exc:
        raise _refused(exc) from None
    except TrackRequired as exc:
        raise ApiError(422, ErrorCode.TRACK_REQUIRED, str(exc)) from None
    name = filename(ref, query.format, query.track)
    return StreamingResponse(_in_db_threads(pieces), media_type=query.format.media_type,
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _in_db_threads(pieces: Iterator[str]) -> AsyncIterator[bytes]:
    """Each piece is read on the database threads; the event loop only passes the bytes on."""
    while (piece := await db(next, pieces, None)) is not None:
        yield piece.encode()
