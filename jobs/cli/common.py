"""Pieces every command shares: settings from env + flags, logging, the database and the store."""

from __future__ import annotations

import argparse
import logging

from jobs.database import ensure_schema_current, resolve_database_url
from jobs.log_setup import configure_logging
from jobs.settings import Settings
from jobs.store import JobStore

log = logging.getLogger("pose_service")


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="PostgreSQL DSN (env POSE_DATABASE_URL; unset: embedded)")
    parser.add_argument("--home", help="state directory (env POSE_HOME, default ~/.pose-service)")
    parser.add_argument("--log-level", help="env POSE_LOG_LEVEL (default INFO)")
    parser.add_argument("--log-format", choices=("text", "json"), help="env POSE_LOG_FORMAT")


def settings_from(args: argparse.Namespace, **overrides: object) -> Settings:
    """Environment first, then the flags that were given, then ``overrides``."""
    from pathlib import Path

    settings = Settings.from_env().replace(
        database_url=getattr(args, "database_url", None),
        home=Path(args.home).expanduser() if getattr(args, "home", None) else None,
        log_level=args.log_level.upper() if getattr(args, "log_level", None) else None,
        log_format=getattr(args, "log_format", None),
    )
    settings = settings.replace(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def open_store(settings: Settings, *, check_schema: bool = True, pool_size: int = 5) -> tuple[str, JobStore]:
    """Resolve the DSN (starting the embedded server if needed) and connect; refuse a stale schema."""
    url = resolve_database_url(settings)
    store = JobStore.connect(url, pool_size=pool_size)
    if check_schema:
        ensure_schema_current(store.engine)
    return url, store
