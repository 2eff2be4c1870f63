"""The old Flask service's routes, kept so its clients keep working.

They are thin adapters over the same job machinery as /v1: a video submitted here is a job like any
other, and /pose/hybrid (one image → keypoints, synchronously) is a high-priority one-frame job that
the request waits for. The web process never runs inference itself.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import time
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs.api_tokens import INTERACTIVE_PRIORITY
from jobs.job import Job
from jobs.result_stream import open_result
from jobs.states import JobState
from jobs.store import JobStore
from web.auth import principal_of
from web.context import AppContext, ctx, db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.inputs import HYBRID_BODY_LIMIT, HybridRequest, LegacyVideoRequest
from web.readiness import pool_snapshot, readiness, readiness_response
from web.representation import HybridAnswer, LegacyPoolStatus, LegacySubmitted, LegacyVideoStatus
from web.submission import Submission, check_pipeline_params, load_job, submit_job
from web.uploads import image_to_video, iter_file
from web.validation import read_json_object, validated

log = logging.getLogger(__name__)

HYBRID_PRIORITY = INTERACTIVE_PRIORITY  # above every token's priority ceiling
POLL_S = (0.02, 0.05, 0.1, 0.2)  # waiting for the hybrid job: quick at first, then gentler


async def api_pose_health(request: Request) -> Response:
    """Readiness in the old shape: status healthy/unhealthy, 503 while not ready."""
    report = await db(readiness, ctx(request))
    return readiness_response(report, status="healthy" if report.ready else "unhealthy")


async def pool_status(request: Request) -> Response:
    pool = await db(pool_snapshot, ctx(request))
    return JSONResponse(LegacyPoolStatus.of(pool).to_json())


async def submit_video(request: Request) -> Response:
    app = ctx(request)
    body = validated(LegacyVideoRequest, await read_json_object(request))
    path = app.media.resolve(body.video_path)
    job, _ = await submit_job(app, Submission(), principal=principal_of(request), video_path=path)
    return JSONResponse(LegacySubmitted(job_id=job.id, status=job.state).to_json())


async def video_status(request: Request) -> Response:
    return JSONResponse(LegacyVideoStatus.of(await load_job(request)).to_json())


# ---- /pose/hybrid ------------------------------------------------------------------------------------
def _decode_image(text: str) -> bytes:
    if text.startswith("data:"):  # a data URL from a browser: data:image/png;base64,....
        text = text.partition(",")[2]
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, ErrorCode.INVALID_FIELD, "image_base64: not valid base64") from None
    if not raw:
        raise ApiError(422, ErrorCode.INVALID_FIELD, "image_base64: empty image")
    return raw


def _store_image(app: AppContext, image: bytes) -> tuple[int, int, int]:
    """Blocking: the image as a one-frame video upload; (upload id, width, height). ApiError 422 for
    no PNG/JPEG/WebP image, or one outside the pixel limits (checked before decoding)."""
    path, width, height = image_to_video(image, app.spool_dir)
    try:
        upload_id = app.store.store_upload(
            iter_file(path),
            filename="image.avi",
            content_type="video/x-msvideo",
            max_bytes=max(app.max_upload_bytes, os.path.getsize(path)),
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return upload_id, width, height


async def _wait_final(app: AppContext, job_id: int, timeout_s: float) -> Job | None:
    """Poll the job until it is final; None on timeout."""
    deadline = time.monotonic() + timeout_s
    polls = 0
    while True:
        job = await db(app.store.get, job_id)
        if job is not None and job.is_final:
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await anyio.sleep(min(POLL_S[min(polls, len(POLL_S) - 1)], remaining))
        polls += 1


def _whole_result(store: JobStore, job_id: int) -> dict[str, Any]:
    """The (one-frame) result document, read the one way every result is read."""
    pieces = open_result(store, job_id)
    return {} if pieces is None else dict(json.loads("".join(pieces)))


async def hybrid(request: Request) -> Response:
    """One still image → the people and keypoints found in it, waiting for a worker to do it."""
    app = ctx(request)
    body = validated(HybridRequest, await read_json_object(request, limit=HYBRID_BODY_LIMIT))
    params = body.params_for(app.settings.backend)
    if params.get("backend") == "phalp":  # the phalp pipeline's own schema (mesh), checked before any upload
        check_pipeline_params(app.settings.pipeline, params)
    image = _decode_image(body.image_base64)
    upload_id, width, height = await db(_store_image, app, image)
    submission = Submission(
        priority=HYBRID_PRIORITY, params=params, max_attempts=1, timeout_s=app.hybrid_timeout_s
    )
    job, _ = await submit_job(app, submission, principal=principal_of(request), upload_id=upload_id)
    final = await _wait_final(app, job.id, app.hybrid_timeout_s)
    if final is None:
        await db(app.store.cancel, job.id)
        raise ApiError(504, ErrorCode.TIMEOUT, f"no worker finished job {job.id} within {app.hybrid_timeout_s:g} s")
    if final.state == JobState.CANCELLED:
        raise ApiError(409, ErrorCode.CANCELLED, f"job {job.id} was cancelled")
    if final.state == JobState.FAILED:
        status = 422 if final.error_kind == "bad_input" else 502
        raise ApiError(status, ErrorCode.JOB_FAILED, f"job {job.id} failed: {final.error_kind}: {final.error_message}")
    document = await db(_whole_result, app.store, job.id)
    frames = document.get("frames") or []
    people = (frames[0].get("people") or []) if frames else []
    answer = HybridAnswer(
        success=True,
        job_id=job.id,
        width=width,
        height=height,
        keypoint_names=document.get("keypoint_names", []),
        people=people,
        keypoints=people[0].get("keypoints", []) if people else [],
        model=document.get("model"),
    )
    return JSONResponse(answer.to_json())
