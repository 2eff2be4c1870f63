"""Pieces every command shares: settings from env + flags, logging, the database and the store."""

from __future__ import annotations

import argparse
import logging

from jobs.database import ensure_schema_current, resolve_database_url
from jobs.log_setup import configure_logging
from jobs.settings import COMMON, Settings
from jobs.store import JobStore

log = logging.getLogger("pose_service")


_DEST = "setting__"  # argparse dest prefix of setting flags, apart from each command's own arguments


def add_setting_flags(parser: argparse.ArgumentParser, *groups: str) -> None:
    """A flag for every setting of the ``common`` group and of ``groups`` (jobs/settings.py),
    with its help, its environment variable and its default."""
    wanted = {COMMON, *groups}
    for name, info in Settings.declarations().items():
        if not wanted & set(Settings.commands_of(info)):
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        flags = [f"--{name.replace('_', '-')}", *extra.get("flags", [])]  # type: ignore[misc]
        default = "unset" if info.default is None else info.default
        if isinstance(default, tuple):
            default = ",".join(default) or "none"
        shown = "***" if Settings.is_secret(info) and info.default else default
        parser.add_argument(*flags, dest=_DEST + name, metavar=name.split("_")[-1].upper(),
                            help=f"{info.description} (env {Settings.env_name(name)}; default {shown})")


def settings_from(args: argparse.Namespace, **overrides: object) -> Settings:
    """Environment first, then the setting flags that were given, then ``overrides``; configures
    logging. A bad value exits with a message naming the flag or variable."""
    given = {key[len(_DEST):]: value for key, value in vars(args).items() if key.startswith(_DEST)}
    try:
        settings = Settings.from_env(**{**given, **overrides})
    except ValueError as exc:
        raise SystemExit(f"pose-service: invalid configuration: {exc}") from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def open_store(settings: Settings, *, check_schema: bool = True, pool_size: int = 5) -> tuple[str, JobStore]:
    """Resolve the DSN (starting the embedded server if needed) and connect; refuse a stale schema."""
    url = resolve_database_url(settings)
    store = JobStore.connect(url, pool_size=pool_size)
    if check_schema:
        ensure_schema_current(store.engine)
    return url, store
