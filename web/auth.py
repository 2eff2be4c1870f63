"""Bearer-token authentication, applied per route from the routing table (``protected``).

With tokens configured (POSE_API_TOKENS or any unrevoked row in pose_api_tokens) every protected
route needs ``Authorization: Bearer <token>``: 401 without one or with an unknown one, 403 with a
revoked one. With none configured the API is open; `pose-service web` then warns loudly and binds
to 127.0.0.1 unless a host is given explicitly. The check runs before the handler reads the body, so
an unauthenticated upload is refused without being read.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from jobs.api_tokens import Verdict
from web.context import ctx, db
from web.errors import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="pose-service"'}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def authorize(request: Request) -> None:
    tokens = ctx(request).tokens
    if tokens.needs_refresh():
        await db(tokens.refresh)
    verdict = tokens.check(bearer_token(request))
    if verdict in (Verdict.OK, Verdict.OPEN):
        return
    if verdict == Verdict.MISSING:
        raise ApiError(401, "unauthorized", "this route needs 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if verdict == Verdict.REVOKED:
        raise ApiError(403, "token_revoked", "this token has been revoked")
    raise ApiError(401, "unauthorized", "unknown token", headers=_CHALLENGE)


def protected(endpoint: Endpoint) -> Endpoint:
    """The endpoint, behind the bearer-token check."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        await authorize(request)
        return await endpoint(request)

    guarded.protected = True  # type: ignore[attr-defined]  # read by the OpenAPI test
    return guarded
