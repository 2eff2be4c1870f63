"""Readiness and the pool snapshot: blocking checks shared by /readyz, /v1/pool and the old routes.

A module of its own so that route modules need not import each other (web/routes_health.py and
web/routes_legacy.py both answer from these).
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import JSONResponse

from jobs.database import SchemaOutOfDate, ensure_schema_current
from web.context import AppContext
from web.error_codes import ErrorCode
from web.representation import ErrorDetail, PoolView, Readiness, ReadinessChecks


def readiness(app: AppContext) -> Readiness:
    """Blocking: database reachable, schema at this code's revision, at least one live worker that
    can run jobs; the reasons for any check that failed."""
    reasons: list[str] = []
    try:
        ensure_schema_current(app.store.engine)
        schema = "ok"
    except SchemaOutOfDate as exc:
        schema = "out of date"
        reasons.append(str(exc))
    except SQLAlchemyError as exc:
        reasons.append(f"database unreachable: {type(exc).__name__}")
        checks = ReadinessChecks(database="unreachable", schema="unreachable", live_workers=None)
        return Readiness(ready=False, reasons=reasons, checks=checks)
    try:
        workers = app.store.live_workers(app.settings.lease_s)
    except SQLAlchemyError as exc:  # e.g. the pose tables are missing on an un-migrated database
        reasons.append(f"cannot read the worker registry: {type(exc).__name__}")
        checks = ReadinessChecks(database="ok", schema=schema, live_workers=None)
    else:
        able = [w for w in workers if not w.get("problem")]
        checks = ReadinessChecks(database="ok", schema=schema, live_workers=len(workers), able_workers=len(able))
        if not workers:
            reasons.append("no live worker (start one with `pose-service worker`)")
        elif not able:
            reasons.extend(f"worker {w['id']} cannot run jobs: {w['problem']}" for w in workers)
    return Readiness(ready=not reasons, reasons=reasons, checks=checks)


def readiness_response(report: Readiness, *, status: str | None = None) -> JSONResponse:
    """200 with the checks, or 503 with the reasons (and the usual error object). ``status`` is the
    old service's extra field."""
    if status is not None:
        report.status = status
    if report.ready:
        return JSONResponse(report.to_json())
    report.error = ErrorDetail(code=ErrorCode.NOT_READY, message="; ".join(report.reasons))
    return JSONResponse(report.to_json(), status_code=503)


def pool_snapshot(app: AppContext) -> PoolView:
    """Blocking: live workers, the queue and the estimated wait."""
    workers = app.store.live_workers(app.settings.lease_s)
    queue = app.store.queue_depth()
    mean_run_s = app.store.recent_mean_run_s() if workers and queue["ready"] else None
    return PoolView.of(workers, queue, mean_run_s)
