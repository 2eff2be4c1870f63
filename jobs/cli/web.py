"""`pose-service web [--host H] [--port P]`: the REST API under uvicorn.

serve_web() is also what `pose-service serve` calls for its web part. It refuses to start on a schema
this code does not match, logs the effective configuration with secrets masked, and, when no API
token is configured anywhere, warns loudly and binds to loopback unless a host was given. That
decision is taken once, here, and holds for the process's lifetime (web/tokens.py).
"""

from __future__ import annotations

import argparse
import logging

from jobs.cli.common import add_setting_flags, settings_from
from jobs.database import SchemaOutOfDate
from jobs.settings import WEB, Settings

log = logging.getLogger("pose_service.web")

DEFAULT_PORT = 8000
LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"

OPEN_API_WARNING = """
************************************************************************************************
*  NO API TOKEN IS CONFIGURED: every route of this server is open to anyone who can reach it.   *
*  Binding to 127.0.0.1 only. Create a token with `pose-service tokens create NAME` or set      *
*  POSE_API_TOKENS, or pass --host explicitly to expose the open API anyway.                    *
*  The API stays open until this server restarts, even if a token is created meanwhile.         *
************************************************************************************************"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("web", help="serve the REST API (no workers)")
    add_web_flags(p)
    add_setting_flags(p, WEB)
    p.set_defaults(func=run)


def add_web_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        help="interface to bind (default 0.0.0.0 with API tokens configured, else 127.0.0.1)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        serve_web(settings, args.host, args.port)
    except SchemaOutOfDate as exc:
        log.error("refusing to start: %s", exc)
        return 2
    return 0


def serve_web(settings: Settings, host: str | None, port: int) -> None:
    """Serve the API until interrupted. ``host`` None picks the default described above.
    Raises SchemaOutOfDate (before binding) if the database needs `pose-service db upgrade`."""
    import uvicorn

    from jobs.database import ensure_schema_current, resolve_database_url
    from jobs.store import JobStore
    from web.app import WEB_POOL_SIZE, create_app
    from web.tokens import TokenAuthority

    log.info("effective configuration: %s", settings.masked())
    store = JobStore.connect(resolve_database_url(settings), pool_size=WEB_POOL_SIZE)
    try:
        ensure_schema_current(store.engine)
        # One authority decides open-or-closed once, here, and the app applies that same decision:
        # the bind address and the access rule can never disagree (DESIGN.md section 10).
        tokens = TokenAuthority(store, settings.api_tokens)
        tokens.refresh(force=True)
        if not tokens.closed:
            log.warning(OPEN_API_WARNING)
            if host is None:
                host = LOOPBACK
        elif host is None:
            host = ALL_INTERFACES
        if not settings.media_roots:
            log.info("POSE_MEDIA_ROOTS is unset: clients can submit uploads, not server-side paths")
        app = create_app(settings, store, tokens=tokens)
        log.info("serving the REST API on http://%s:%d (%s)", host, port, tokens.describe())
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,  # keep pose-service's logging (text or JSON lines)
            access_log=settings.log_level == "DEBUG",
            server_header=False,
        )
    finally:
        store.close()
