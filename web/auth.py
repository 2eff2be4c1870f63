"""Bearer-token authentication and authorisation, applied per route from the routing table.

A closed API (any token existed when the process started: POSE_API_TOKENS or an unrevoked row in
pose_api_tokens) needs ``Authorization: Bearer <token>`` on every protected route: 401 without one or
with an unknown one, 403 with a revoked one. It stays closed while the process runs, even after the
last token is revoked. An API started without tokens is open (`pose-service web` then warns loudly
and binds to 127.0.0.1 unless a host is given) and stays open.

Each protected route names the scope it needs (``submit`` or ``read``; ``admin`` implies both): a
token without it gets 403 ``insufficient_scope``. Routes that create jobs also draw from the token's
submit rate (429 with Retry-After). All of this runs before the handler reads the body, so an
unauthenticated or throttled upload is refused without being read. The handler finds whom the
request acts as with ``principal_of(request)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from web.context import ctx, db
from web.error_codes import ErrorCode
from web.errors import ApiError
from web.tokens import Principal, Verdict

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


async def authorize(request: Request) -> Principal:
    """Whom the request acts as; raises the 401/403 ApiError otherwise."""
    tokens = ctx(request).tokens
    if tokens.needs_refresh():
        await db(tokens.refresh)
    verdict, principal = tokens.check(bearer_token(request))
    if verdict in (Verdict.OK, Verdict.OPEN) and principal is not None:
        return principal
    if verdict == Verdict.MISSING:
        raise ApiError(
            401, ErrorCode.UNAUTHORIZED, "this route needs 'Authorization: Bearer <token>'", headers=_CHALLENGE
        )
    if verdict == Verdict.REVOKED:
        raise ApiError(403, ErrorCode.TOKEN_REVOKED, "this token has been revoked")
    raise ApiError(401, ErrorCode.UNAUTHORIZED, "unknown token", headers=_CHALLENGE)


def principal_of(request: Request) -> Principal:
    """The principal ``protected`` stored for this request (only protected routes have one)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise RuntimeError("principal_of() on a route that is not protected")
    return principal


def charge_submit(request: Request, principal: Principal) -> None:
    """Take one submit from the principal's bucket, or answer 429 with the seconds to wait."""
    if principal.rate_per_min is None or principal.token_id is None:
        return
    wait_s = ctx(request).limiter.take(principal.token_id, principal.rate_per_min)
    if wait_s > 0:
        retry_after = max(1, math.ceil(wait_s))
        raise ApiError(
            429,
            ErrorCode.RATE_LIMITED,
            f"token '{principal.name}' may submit {principal.rate_per_min} jobs a minute; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def protected(endpoint: Endpoint, scope: str, *, submits: bool = False) -> Endpoint:
    """The endpoint, behind the bearer-token check, the ``scope`` check and (``submits``) the rate."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        principal = await authorize(request)
        if not principal.allows(scope):
            raise ApiError(403, ErrorCode.INSUFFICIENT_SCOPE, f"this route needs a token with the '{scope}' scope")
        if submits:
            charge_submit(request, principal)
        request.state.principal = principal
        return await endpoint(request)

    guarded.protected = True  # type: ignore[attr-defined]  # read by the OpenAPI test
    guarded.scope = scope  # type: ignore[attr-defined]
    return guarded
