"""The Starlette application: one explicit routing table, and ``create_app``.

Each row of ENDPOINTS names the method, the path, the handler, whether the route needs a bearer
token, the scope that token needs and whether the route creates jobs (and so draws from the token's
submit rate), and its contract: the request models (web/inputs.py) and the answer per status
(web/representation.py, web/result_document.py). web/openapi.py writes /openapi.json from these rows;
the handlers validate and answer with the same models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobs.api_tokens import READ, SUBMIT
from jobs.database import resolve_database_url
from jobs.retention import RetentionDuty
from jobs.settings import Settings
from jobs.store import JobStore
from web import metrics, openapi, routes_analysis, routes_health, routes_jobs, routes_legacy, routes_video, ui
from web.analysis_models import Analysis, AnalysisQuery, AnalysisRequest, AnalysisUpload, ExportQuery
from web.auth import protected
from web.context import AppContext, db
from web.errors import EXCEPTION_HANDLERS, RequestContextMiddleware
from web.inputs import (
    HybridRequest,
    LegacyVideoRequest,
    ListJobsQuery,
    ResultQuery,
    StatsQuery,
    SubmitJson,
    SubmitUpload,
)
from web.media_paths import MediaRoots
from web.openapi import Answer, Answers
from web.representation import (
    EventList,
    HybridAnswer,
    JobList,
    JobView,
    LegacyPoolStatus,
    LegacySubmitted,
    LegacyVideoStatus,
    PoolView,
    Readiness,
    StatsView,
    StatusView,
)
from web.result_document import Result
from web.tokens import TokenAuthority

log = logging.getLogger("web")

#: Database connections of one web process: the thread pool runs at most 40 blocking calls at
#: once; 8 (+8 overflow) keeps PostgreSQL's backends few while 50 clients poll status.
WEB_POOL_SIZE = 8
HYBRID_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Endpoint:
    """One route: how it is served (handler, token, scope, rate, gzip) and its contract (summary,
    request models, answers per status), from which web/openapi.py writes /openapi.json."""

    method: str
    path: str
    handler: Callable[[Request], Awaitable[Response]]
    summary: str
    answers: Answers
    body: Mapping[str, type[BaseModel]] = field(default_factory=dict)  # media type -> model
    query: type[BaseModel] | None = None
    protected: bool = True
    gzip: bool = False
    scope: str = READ  # what a token needs for it (admin implies every scope)
    submits: bool = False  # creates jobs: counts against the token's submit rate
    cookie_token: bool = False  # also takes the token from the pose_token cookie (web/routes_video.py)


UNAVAILABLE = "the database is not reachable"
NO_JOB = "no such job"
JSON = "application/json"


def _job(description: str) -> Answer:
    return Answer(description, JobView)


ENDPOINTS: tuple[Endpoint, ...] = (
    # the REST API
    Endpoint(
        "POST", "/v1/jobs", routes_jobs.submit,
        "Submit a job: a server-side video path (JSON) or an uploaded video (multipart)",
        body={JSON: SubmitJson, "multipart/form-data": SubmitUpload},
        answers={
            201: Answer("created", JobView, headers={"Location": "the job's URL"}),
            200: _job("the job an earlier request with the same idempotency key created"),
            400: "malformed JSON or multipart body",
            403: "video_path outside POSE_MEDIA_ROOTS, relative, or with '..'",
            408: "the client stalled while sending the body (POSE_BODY_IDLE_TIMEOUT_S, POSE_BODY_TIMEOUT_S)",
            409: "the idempotency key was used for a different request",
            413: "the body or upload is too large (POSE_MAX_UPLOAD_MB, framing included)",
            415: "neither JSON nor multipart, or the video is not a self-contained container with a decodable frame",
            422: "invalid or unknown fields or params, video_path is not an existing file, frames outside the pixel "
                 "limits, or priority above the token's ceiling",
            503: UNAVAILABLE,
            507: "no room to spool the upload now",
        },
        scope=SUBMIT, submits=True,
    ),
    Endpoint(
        "GET", "/v1/jobs", routes_jobs.list_jobs, "List jobs, newest first, with cursor paging",
        query=ListJobsQuery,
        answers={
            200: Answer("a page of jobs", JobList),
            400: "a cursor this server did not issue",
            422: "an invalid or unknown query parameter",
            503: UNAVAILABLE,
        },
    ),
    Endpoint(
        "GET", "/v1/jobs/{job_id}", routes_jobs.get_job, "A job: state, progress, attempts, timings, error",
        answers={200: _job("the job"), 404: NO_JOB, 503: UNAVAILABLE},
    ),
    Endpoint(
        "GET", "/v1/jobs/{job_id}/result", routes_jobs.get_result,
        "The result of a succeeded job, streamed (gzip if accepted): the document, or its frames as NDJSON or CSV",
        query=ResultQuery,
        answers={
            200: Answer("the result document (format=json), one frame object per line (ndjson) or one row per "
                        "frame, person and keypoint with a header (csv)", Result,
                        also={"application/x-ndjson": {"type": "string"}, "text/csv": {"type": "string"}}),
            404: NO_JOB,
            409: "the job has not succeeded (yet)",
            410: "retention (POSE_RETENTION_DAYS) has deleted the job's frames",
            422: "an invalid or unknown query parameter (frames must be A:B with A <= B)",
            503: UNAVAILABLE,
        },
        gzip=True,
    ),
    Endpoint(
        "GET", "/v1/jobs/{job_id}/video", routes_video.job_video,
        "The job's input video (upload or server-side path), with HTTP range requests so players can seek; "
        "the token may also come in the pose_token cookie, since a <video> element sends no header",
        answers={
            200: Answer("the whole video", schema={"type": "string", "format": "binary"}, media_type="video/mp4"),
            206: Answer("the requested byte range (Content-Range)", schema={"type": "string", "format": "binary"},
                        media_type="video/mp4"),
            403: "the job's video path is not inside POSE_MEDIA_ROOTS (e.g. inserted by SQL), so it is not served",
            404: "no such job, or its video file is gone",
            410: "retention (POSE_RETENTION_DAYS) has deleted the upload",
            416: "the range starts past the end of the video",
            503: UNAVAILABLE,
        },
        cookie_token=True,
    ),
    Endpoint(
        "GET", "/v1/jobs/{job_id}/analysis", routes_analysis.get_analysis,
        "The sport analysis (analysis@1): a pose job's latest, an analysis job's own; cut by frames and tracks",
        query=AnalysisQuery,
        answers={
            200: Answer("the analysis document, streamed a series of one track at a time", Analysis),
            404: "no such job, or it has no analysis (analysis_not_found)",
            409: "its analysis has not run yet (analysis_pending)",
            410: "retention (POSE_RETENTION_DAYS) has deleted the analysis series (analysis_expired)",
            422: "an invalid or unknown query parameter",
            503: UNAVAILABLE,
        },
        gzip=True,
    ),
    Endpoint(
        "POST", "/v1/jobs/{job_id}/analyses", routes_analysis.reanalyse,
        "Analyse a succeeded pose job's stored keypoints again, with other params: a new analysis job",
        body={JSON: AnalysisRequest},
        answers={
            201: Answer("the analysis job", JobView, headers={"Location": "the job's URL"}),
            400: "malformed JSON",
            404: NO_JOB,
            409: "the job has not succeeded, or is an analysis job itself",
            410: "retention (POSE_RETENTION_DAYS) has deleted the job's frames",
            413: "body too large",
            415: "not JSON",
            422: "invalid or unknown fields or analysis params, or priority above the token's ceiling",
            503: UNAVAILABLE,
        },
        scope=SUBMIT, submits=True,
    ),
    Endpoint(
        "POST", "/v1/analyses", routes_analysis.analyse_upload,
        "Analyse uploaded keypoints (a result@1 JSON document or a TRC file) without running the pose model",
        body={"multipart/form-data": AnalysisUpload},
        answers={
            201: Answer("the analysis job", JobView, headers={"Location": "the job's URL"}),
            400: "malformed multipart body",
            408: "the client stalled while sending the body (POSE_BODY_IDLE_TIMEOUT_S, POSE_BODY_TIMEOUT_S)",
            413: "the body or upload is too large (POSE_MAX_UPLOAD_MB, framing included)",
            415: "not multipart/form-data",
            422: "no keypoints part, keypoints that are neither result@1 JSON nor TRC or that are empty, of the "
                 "wrong shape or not finite (invalid_keypoints), invalid params or priority",
            503: UNAVAILABLE,
            507: "no room to spool the upload now",
        },
        scope=SUBMIT, submits=True,
    ),
    Endpoint(
        "GET", "/v1/jobs/{job_id}/export", routes_analysis.get_export,
        "The job's analysis for spreadsheets and OpenSim: CSV (angles and keypoints), TRC (markers), MOT (angles)",
        query=ExportQuery,
        answers={
            200: Answer("the file, streamed (Content-Disposition names it)", schema={"type": "string"},
                        media_type="text/csv", also={"text/plain": {"type": "string"}}),
            404: "no such job, no analysis, or no such track",
            409: "the analysis has not run yet, or (trc) the keypoints of an uploaded file are not stored",
            410: "retention (POSE_RETENTION_DAYS) has deleted the analysis series",
            422: "an invalid or unknown query parameter, or trc/mot without track for an analysis of several tracks",
            503: UNAVAILABLE,
        },
        gzip=True,
    ),
    Endpoint(
        "GET", "/v1/jobs/{job_id}/events", routes_jobs.job_events, "The job's state transitions (pose_job_events)",
        answers={200: Answer("the events, oldest first", EventList), 404: NO_JOB, 503: UNAVAILABLE},
    ),
    Endpoint(
        "POST", "/v1/jobs/{job_id}/cancel", routes_jobs.cancel_job,
        "Cancel: queued jobs at once, running ones are killed by their worker within a second",
        answers={
            200: _job("cancelled (it was queued)"),
            202: _job("cancel requested (it is running)"),
            404: NO_JOB,
            409: "the job has already finished",
            503: UNAVAILABLE,
        },
        scope=SUBMIT,
    ),
    Endpoint(
        "POST", "/v1/jobs/{job_id}/retry", routes_jobs.retry_job,
        "Re-queue a failed or cancelled job with fresh attempts",
        answers={
            200: _job("queued again"),
            404: NO_JOB,
            409: "the job is neither failed nor cancelled, was retried too often, or its upload expired",
            503: UNAVAILABLE,
        },
        scope=SUBMIT,
    ),
    Endpoint(
        "GET", "/v1/stats", routes_jobs.stats,
        "History per day: counts, p50/p95 wait and run times, frames/s, failures by kind",
        query=StatsQuery,
        answers={
            200: Answer("the statistics", StatsView),
            422: "an invalid or unknown query parameter",
            503: UNAVAILABLE,
        },
    ),
    Endpoint(
        "GET", "/v1/pool", routes_health.pool, "Live workers and their jobs, the queue, and the estimated wait",
        answers={200: Answer("the pool", PoolView), 503: UNAVAILABLE},
    ),
    # operations: open, so probes and scrapers need no token
    Endpoint(
        "GET", "/healthz", routes_health.healthz, "Liveness: the process answers (no database access)",
        answers={200: Answer("alive", StatusView)}, protected=False,
    ),
    Endpoint(
        "GET", "/readyz", routes_health.readyz,
        "Readiness: database reachable, schema current, at least one live worker",
        answers={200: Answer("ready", Readiness), 503: Answer("not ready; reasons says why", Readiness)},
        protected=False,
    ),
    Endpoint(
        "GET", "/metrics", metrics.metrics, "Prometheus metrics, read from the database at scrape time",
        answers={200: Answer("Prometheus text format", schema={"type": "string"}, media_type="text/plain")},
        protected=False,
    ),
    Endpoint(
        "GET", "/openapi.json", openapi.openapi_json, "This document",
        answers={200: Answer("the OpenAPI document", schema={"type": "object"})}, protected=False,
    ),
    # the old Flask service
    Endpoint(
        "GET", "/health", routes_health.healthz, "Old service: liveness",
        answers={200: Answer("alive", StatusView)}, protected=False,
    ),
    Endpoint(
        "GET", "/api/pose/health", routes_legacy.api_pose_health, "Old service: readiness (503 while not ready)",
        answers={200: Answer("healthy", Readiness), 503: Answer("unhealthy", Readiness)}, protected=False,
    ),
    Endpoint(
        "GET", "/api/pose/pool-status", routes_legacy.pool_status, "Old service: worker pool and queue",
        answers={200: Answer("the pool", LegacyPoolStatus), 503: UNAVAILABLE},
    ),
    Endpoint(
        "POST", "/pose/video", routes_legacy.submit_video, "Old service: submit a server-side video path",
        body={JSON: LegacyVideoRequest},
        answers={
            200: Answer("queued", LegacySubmitted),
            400: "malformed JSON",
            403: "video_path outside POSE_MEDIA_ROOTS",
            408: "the client stalled while sending the body",
            413: "body too large",
            415: "not JSON, or the file is not a self-contained video container",
            422: "invalid fields or no such file",
            503: UNAVAILABLE,
        },
        scope=SUBMIT, submits=True,
    ),
    Endpoint(
        "GET", "/pose/video/status/{job_id}", routes_legacy.video_status, "Old service: a job's status",
        answers={200: Answer("the job", LegacyVideoStatus), 404: NO_JOB, 503: UNAVAILABLE},
    ),
    Endpoint(
        "POST", "/pose/hybrid", routes_legacy.hybrid,
        "Old service: keypoints of one image, computed by a worker as a high-priority job",
        body={JSON: HybridRequest},
        answers={
            200: Answer("the people found in the image", HybridAnswer),
            400: "malformed JSON",
            408: "the client stalled while sending the body",
            409: "the job was cancelled",
            413: "body too large",
            415: "not JSON",
            422: "invalid fields, not a PNG/JPEG/WebP image, outside the pixel limits, or the worker refused the input",
            502: "the job failed",
            503: UNAVAILABLE,
            504: "no worker finished the job in time",
        },
        scope=SUBMIT, submits=True,
    ),
)  # fmt: skip


def build_routes(endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> list[Route]:
    routes = []
    for e in endpoints:
        middleware = [Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)] if e.gzip else []
        if e.cookie_token:
            middleware.append(Middleware(routes_video.CookieBearer))
        handler = protected(e.handler, e.scope, submits=e.submits) if e.protected else e.handler
        routes.append(Route(e.path, handler, methods=[e.method], middleware=middleware or None))
    return routes


def create_app(
    settings: Settings,
    store: JobStore | None = None,
    *,
    hybrid_timeout_s: float = HYBRID_TIMEOUT_S,
    token_refresh_s: float = 2.0,
    spool_dir: Path | None = None,
    tokens: TokenAuthority | None = None,
) -> Starlette:
    """The app. Without ``store`` it connects to the configured database itself (and closes the
    connection pool at shutdown); a given store is the caller's to close. ``tokens`` is the authority
    whose open-or-closed decision chose the bind address (`pose-service web`), so the app applies
    that very decision instead of taking a second one later."""
    owned = store is None
    if store is None:
        store = JobStore.connect(resolve_database_url(settings), pool_size=WEB_POOL_SIZE)
    context = AppContext(
        settings=settings,
        store=store,
        tokens=tokens or TokenAuthority(store, settings.api_tokens, refresh_s=token_refresh_s),
        media=MediaRoots(settings.media_roots),
        hybrid_timeout_s=hybrid_timeout_s,
        spool_dir=spool_dir,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await db(context.tokens.refresh, force=True)
        except Exception as exc:  # the database may come later; requests refresh again
            log.warning("could not load API tokens at startup: %s", exc)
        # partitions ahead always; with POSE_RETENTION_DAYS, expired frames and uploads (jobs/retention.py)
        retention = RetentionDuty(context.store, settings.retention_days)
        retention.start()
        try:
            yield
        finally:
            await asyncio.to_thread(retention.stop)
            if owned:
                context.store.close()

    app = Starlette(
        routes=[*build_routes(), *ui.routes()],  # the HTML pages (web/ui/) after the API
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.ctx = context
    app.state.metrics_registry = metrics.make_registry(store, settings.lease_s)
    app.state.openapi_json = openapi.render(ENDPOINTS)
    return app
