"""Liveness, readiness and the worker pool.

/healthz answers without touching the database (the process is alive); /readyz says whether this
instance can do useful work: database reachable, schema at this code's revision, at least one live
worker (web/readiness.py). Load balancers and the old /api/pose/health route build on it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web.context import ctx, db
from web.readiness import pool_snapshot, readiness, readiness_response
from web.representation import StatusView


async def healthz(request: Request) -> Response:
    return JSONResponse(StatusView(status="ok").to_json())


async def readyz(request: Request) -> Response:
    return readiness_response(await db(readiness, ctx(request)))


async def pool(request: Request) -> Response:
    return JSONResponse((await db(pool_snapshot, ctx(request))).to_json())
