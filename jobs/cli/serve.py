"""`pose-service serve`: the web app and N worker daemons in one process tree (the demo/default mode).

Workers run as child processes (each supervising its own pipeline child), so a crash in one cannot
take down the web app, and one that dies anyway is restarted with backoff (worker/daemon_pool.py);
SIGTERM/SIGINT to serve is passed on and everyone shuts down gracefully.
Unlike `web` and `worker` alone, `serve` brings the schema up to date itself: it is the mode that
must work on a fresh machine with one command.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from jobs.cli.common import add_setting_flags, settings_from
from jobs.database import resolve_database_url, upgrade
from jobs.settings import WEB, WORKER

log = logging.getLogger("pose_service.serve")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("serve", help="web app + N worker daemons (demo/default mode)")
    p.add_argument("--host", default=None,
                   help="bind address (default: 127.0.0.1 with no API tokens configured, else 0.0.0.0)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker daemons to start (default 1)")
    add_setting_flags(p, WEB, WORKER)
    p.set_defaults(func=run)


def worker_command() -> list[str]:
    """A worker child: its settings come from the environment serve gives it (Settings.as_env)."""
    return [sys.executable, "-m", "jobs.cli", "worker"]


def run(args: argparse.Namespace) -> int:
    from jobs.cli.web import serve_web
    from worker.daemon_pool import DaemonPool
    from worker.parent_death import parent_env

    settings = settings_from(args)
    url = resolve_database_url(settings)
    upgrade(url)
    # workers share the resolved server (embedded or not) and stop gracefully if serve dies
    settings = settings.replace(database_url=url)
    env = {**os.environ, **settings.as_env(), **parent_env()}
    pool = DaemonPool([worker_command()] * max(0, args.workers), env=env,
                      stop_timeout_s=settings.shutdown_grace_s + 10)
    pool.start()
    log.info("started %d worker daemon(s), restarted if they die: pids %s", args.workers, pool.pids)
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it under the handler that was in place
    # before it started; a no-op handler here lets serve go on to stop its workers and exit 0.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    try:
        serve_web(settings, args.host, args.port)
    finally:
        pool.stop()
    return 0
