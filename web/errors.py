"""One error shape for every failure: ``{"error": {"code", "message"}}`` with the right status.

Handlers turn Starlette's HTTPException (unknown route, wrong method) and our ApiError into that
shape. Unexpected exceptions are caught by RequestContextMiddleware, the outermost layer, which logs
them with the request id and answers a bare 500, so no stack trace reaches a client, and a database
that is down reads as 503 rather than as a bug.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping
from http import HTTPStatus

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.log_setup import log_context
from web.error_codes import ErrorCode
from web.representation import ErrorBody, ErrorDetail

log = logging.getLogger("web")

#: Request ids: a random per-process prefix and a counter; unique across replicas and restarts, and
#: far cheaper than a uuid4 (a getrandom syscall) on every request.
_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


class ApiError(Exception):
    """An expected failure with its status, a stable machine-readable code and a human message."""

    def __init__(self, status: int, code: ErrorCode, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: ErrorCode, message: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.to_json(), status_code=status, headers=headers)


def _code_for(status: int) -> ErrorCode:
    """The code of a router failure: 404 and 405 have their own; anything else Starlette raises is a
    bad request (4xx) or an internal error, so every code a client sees is an ErrorCode."""
    if status == 404:
        return ErrorCode.NOT_FOUND
    if status == 405:
        return ErrorCode.METHOD_NOT_ALLOWED
    return ErrorCode.BAD_REQUEST if status < 500 else ErrorCode.INTERNAL_ERROR


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Router-level failures (404 unknown path, 405 wrong method) in the common shape."""
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    headers = exc.headers
    if exc.status_code == 405:  # each method is its own Route, so Starlette names only the first one's
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return error_response(exc.status_code, _code_for(exc.status_code), message, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves on this request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            methods |= route.methods
    return sorted(methods)


EXCEPTION_HANDLERS = {ApiError: api_error_handler, HTTPException: http_exception_handler}


def _is_database_down(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class RequestContextMiddleware:
    """Tags each request with an id (the client's X-Request-ID or a new one) for logs and the response,
    and turns any exception that escaped the handlers into a JSON 500 (503 for a lost database)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except ClientDisconnect:
                log.info("client disconnected during %s %s", scope["method"], scope["path"])
            except Exception as exc:
                if _is_database_down(exc):
                    log.warning("database unavailable during %s %s: %s", scope["method"], scope["path"], exc)
                    response = error_response(503, ErrorCode.DATABASE_UNAVAILABLE, "the database is not reachable")
                else:
                    log.exception("unhandled error in %s %s", scope["method"], scope["path"])
                    response = error_response(
                        500, ErrorCode.INTERNAL_ERROR, f"internal server error (request id {request_id})"
                    )
                if started:  # too late for a clean answer; the server closes the connection
                    raise
                await response(scope, receive, send_with_id)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 64 and text.isprintable():
                return text
    return None
