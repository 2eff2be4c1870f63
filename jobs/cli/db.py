"""`pose-service db upgrade|downgrade|url|current|status|stop`."""

from __future__ import annotations

import argparse

from jobs.cli.common import add_setting_flags, settings_from
from jobs.database import (
    current_revision,
    downgrade,
    head_revision,
    libpq_url,
    make_engine,
    resolve_database_url,
)
from jobs.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser("db", help="database: migrate, print the DSN in use")
    sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = sub.add_parser("upgrade", help="migrate the schema to the newest revision")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="migrate the schema down (default: to base, dropping everything)")
    down.add_argument("revision", nargs="?", default="base")
    sub.add_parser("url", help="print the PostgreSQL DSN in use (starting the embedded server if needed)")
    sub.add_parser("current", help="print the schema revision of the database and of this code")
    sub.add_parser("status", help="say whether the embedded PostgreSQL under POSE_HOME runs (never starts it)")
    sub.add_parser("stop", help="stop the embedded PostgreSQL under POSE_HOME")
    for p in sub.choices.values():
        add_setting_flags(p)
    db.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jobs import database

    settings = settings_from(args)
    if args.db_command in ("status", "stop"):
        return _embedded(args.db_command, settings)
    url = resolve_database_url(settings)
    if args.db_command == "url":
        print(libpq_url(url))
    elif args.db_command == "upgrade":
        database.upgrade(url, args.revision)
        print(f"schema at revision {head_revision() if args.revision == 'head' else args.revision}")
    elif args.db_command == "downgrade":
        downgrade(url, args.revision)
        print(f"schema at revision {args.revision}")
    elif args.db_command == "current":
        engine = make_engine(url, pool_size=1)
        print(f"database: {current_revision(engine) or '(none)'}\ncode:     {head_revision()}")
        engine.dispose()
    return 0


def _embedded(action: str, settings: Settings) -> int:
    """`db status` / `db stop`: about the embedded server only; they never start one."""
    from jobs.embedded_postgres import embedded_status, stop_embedded

    note = " (POSE_DATABASE_URL is set, so pose-service does not use it)" if settings.database_url else ""
    if action == "stop":
        stopped = stop_embedded(settings.home)
        print(f"embedded PostgreSQL in {settings.home / 'pgdata'} " + ("stopped" if stopped else "was not running"))
        return 0
    status = embedded_status(settings.home)
    if status.running:
        print(f"embedded PostgreSQL running: pid {status.pid}, data {status.pgdata}{note}")
    else:
        print(f"embedded PostgreSQL not running (data {status.pgdata}){note}")
    return 0 if status.running else 3
