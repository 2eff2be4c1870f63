"""The Starlette application: one explicit routing table, and ``create_app``.

Each row of ENDPOINTS names the method, the path, the handler, whether the route needs a bearer
token, the scope that token needs and whether the route creates jobs (and so draws from the token's
submit rate); web/openapi.py describes the same rows, and a test checks that every route is described.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobs.api_tokens import READ, SUBMIT
from jobs.database import resolve_database_url
from jobs.settings import Settings
from jobs.store import JobStore
from web import metrics, openapi, routes_health, routes_jobs, routes_legacy
from web.auth import protected
from web.context import AppContext, db
from web.errors import EXCEPTION_HANDLERS, RequestContextMiddleware
from web.media_paths import MediaRoots
from web.tokens import TokenAuthority

log = logging.getLogger("web")

#: Database connections of one web process: the thread pool runs at most 40 blocking calls at
#: once; 8 (+8 overflow) keeps PostgreSQL's backends few while 50 clients poll status.
WEB_POOL_SIZE = 8
HYBRID_TIMEOUT_S = 60.0
#: How often the web process deletes expired uploads when POSE_RETENTION_DAYS is set.
RETENTION_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Callable[[Request], Awaitable[Response]]
    protected: bool = True
    gzip: bool = False
    scope: str = READ  # what a token needs for it (admin implies every scope)
    submits: bool = False  # creates jobs: counts against the token's submit rate


ENDPOINTS: tuple[Endpoint, ...] = (
    # the REST API
    Endpoint("POST", "/v1/jobs", routes_jobs.submit, scope=SUBMIT, submits=True),
    Endpoint("GET", "/v1/jobs", routes_jobs.list_jobs),
    Endpoint("GET", "/v1/jobs/{job_id}", routes_jobs.get_job),
    Endpoint("GET", "/v1/jobs/{job_id}/result", routes_jobs.get_result, gzip=True),
    Endpoint("GET", "/v1/jobs/{job_id}/events", routes_jobs.job_events),
    Endpoint("POST", "/v1/jobs/{job_id}/cancel", routes_jobs.cancel_job, scope=SUBMIT),
    Endpoint("POST", "/v1/jobs/{job_id}/retry", routes_jobs.retry_job, scope=SUBMIT),
    Endpoint("GET", "/v1/stats", routes_jobs.stats),
    Endpoint("GET", "/v1/pool", routes_health.pool),
    # operations: open, so probes and scrapers need no token
    Endpoint("GET", "/healthz", routes_health.healthz, protected=False),
    Endpoint("GET", "/readyz", routes_health.readyz, protected=False),
    Endpoint("GET", "/metrics", metrics.metrics, protected=False),
    Endpoint("GET", "/openapi.json", openapi.openapi_json, protected=False),
    # the old Flask service
    Endpoint("GET", "/health", routes_health.healthz, protected=False),
    Endpoint("GET", "/api/pose/health", routes_legacy.api_pose_health, protected=False),
    Endpoint("GET", "/api/pose/pool-status", routes_legacy.pool_status),
    Endpoint("POST", "/pose/video", routes_legacy.submit_video, scope=SUBMIT, submits=True),
    Endpoint("GET", "/pose/video/status/{job_id}", routes_legacy.video_status),
    Endpoint("POST", "/pose/hybrid", routes_legacy.hybrid, scope=SUBMIT, submits=True),
)


def build_routes(endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> list[Route]:
    routes = []
    for e in endpoints:
        middleware = [Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)] if e.gzip else None
        handler = protected(e.handler, e.scope, submits=e.submits) if e.protected else e.handler
        routes.append(Route(e.path, handler, methods=[e.method], middleware=middleware))
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
        tokens=tokens or TokenAuthority(store.engine, settings.api_tokens, refresh_s=token_refresh_s),
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
        retention = None
        if settings.retention_days is not None:
            retention = asyncio.create_task(_retention_loop(context.store, settings.retention_days))
        try:
            yield
        finally:
            if retention is not None:
                retention.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention
            if owned:
                context.store.close()

    app = Starlette(
        routes=build_routes(),
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.ctx = context
    app.state.metrics_registry = metrics.make_registry(store, settings.lease_s)
    app.state.openapi_json = openapi.render(ENDPOINTS)
    return app


async def _retention_loop(store: JobStore, retention_days: float) -> None:
    """Delete expired uploads now and every RETENTION_INTERVAL_S (DESIGN.md section 3). Runs in every
    web process; the statement skips rows another process holds, so replicas do not collide."""
    while True:
        try:
            deleted = await db(store.delete_expired_uploads, retention_days)
            if deleted:
                log.info("retention: deleted %d uploads older than %g days after their jobs ended",
                         deleted, retention_days)
        except Exception as exc:  # the database may be down for a while; try again next round
            log.warning("retention: could not delete expired uploads: %s", exc)
        await asyncio.sleep(RETENTION_INTERVAL_S)
