"""Liveness, readiness and the worker pool.

/healthz answers without touching the database (the process is alive); /readyz says whether this
instance can do useful work: database reachable, schema at this code's revision, at least one live
worker. Load balancers and the old /api/pose/health route build on readiness().
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs.database import SchemaOutOfDate, ensure_schema_current
from web.context import AppContext, ctx, db
from web.error_codes import ErrorCode
from web.errors import error_body
from web.representation import pool_to_dict


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readiness(app: AppContext) -> dict[str, Any]:
    """Blocking: the readiness checks and the reasons for any that failed."""
    reasons: list[str] = []
    checks: dict[str, Any] = {"database": "ok", "schema": "ok", "live_workers": None}
    try:
        ensure_schema_current(app.store.engine)
    except SchemaOutOfDate as exc:
        checks["schema"] = "out of date"
        reasons.append(str(exc))
    except SQLAlchemyError as exc:
        checks["database"] = checks["schema"] = "unreachable"
        reasons.append(f"database unreachable: {type(exc).__name__}")
        return {"ready": False, "reasons": reasons, "checks": checks}
    try:
        workers = app.store.live_workers(app.settings.lease_s)
    except SQLAlchemyError as exc:  # e.g. the pose tables are missing on an un-migrated database
        reasons.append(f"cannot read the worker registry: {type(exc).__name__}")
    else:
        checks["live_workers"] = len(workers)
        able = [w for w in workers if not w.get("problem")]
        checks["able_workers"] = len(able)
        if not workers:
            reasons.append("no live worker (start one with `pose-service worker`)")
        elif not able:
            reasons.extend(f"worker {w['id']} cannot run jobs: {w['problem']}" for w in workers)
    return {"ready": not reasons, "reasons": reasons, "checks": checks}


def readiness_response(report: dict[str, Any], extra: dict[str, Any] | None = None) -> JSONResponse:
    """200 with the checks, or 503 with the reasons (and the usual error object)."""
    if report["ready"]:
        return JSONResponse({**(extra or {}), **report})
    body = error_body(ErrorCode.NOT_READY, "; ".join(report["reasons"]), **(extra or {}), **report)
    return JSONResponse(body, status_code=503)


async def readyz(request: Request) -> Response:
    return readiness_response(await db(readiness, ctx(request)))


def pool_snapshot(app: AppContext) -> dict[str, Any]:
    """Blocking: live workers, the queue and the estimated wait."""
    workers = app.store.live_workers(app.settings.lease_s)
    queue = app.store.queue_depth()
    mean_run_s = app.store.recent_mean_run_s() if workers and queue["ready"] else None
    return pool_to_dict(workers, queue, mean_run_s)


async def pool(request: Request) -> Response:
    return JSONResponse(await db(pool_snapshot, ctx(request)))
