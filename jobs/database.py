"""Which database pose-service talks to, the SQLAlchemy engine over psycopg 3, and schema checks."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import ProgrammingError

from jobs.embedded_postgres import embedded_dsn
from jobs.settings import Settings

log = logging.getLogger(__name__)


class SchemaOutOfDate(RuntimeError):
    """The database's schema is not the one this code was written for."""


def resolve_database_url(settings: Settings | None = None) -> str:
    """POSE_DATABASE_URL when set, else the embedded PostgreSQL under POSE_HOME (started if needed)."""
    settings = settings or Settings.from_env()
    if settings.database_url:
        return settings.database_url
    return embedded_dsn(settings.home)


def libpq_url(url: str) -> str:
    """The URL as libpq/psycopg wants it (no SQLAlchemy driver suffix)."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url(url: str) -> str:
    """The URL with SQLAlchemy's psycopg 3 driver named."""
    return "postgresql+psycopg://" + libpq_url(url)[len("postgresql://") :]


#: libpq options of every connection pose-service opens. An unreachable host fails fast instead of
#: stalling a worker; TCP keepalives and ``tcp_user_timeout`` turn a peer host that vanished into a
#: connection error within about half a minute instead of never (libpq ignores them on Unix
#: sockets). A middlebox that still acknowledges but forwards nothing is caught per call by
#: jobs/db_deadline.py instead.
CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine tuned for one-statement transactions.

    Every statement pose-service runs on its hot paths is a single statement, so connections are in
    autocommit: one network round trip per call instead of BEGIN + statement + COMMIT. There is no
    pre-ping round trip either; a connection found dead after a database restart invalidates the pool
    and JobStore repeats the call once on a fresh connection (see JobStore._run). Code that needs a
    multi-statement transaction asks JobStore for one (``JobStore.transaction()``).
    """
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
        connect_args=dict(CONNECT_ARGS),
    )


def alembic_config(url: str) -> Config:
    """Alembic's config built in code, so it works from any directory and from an installed package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    cfg.attributes["database_url"] = url
    return cfg


@cache
def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("unused")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads ({heads}); merge them")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except ProgrammingError:
            return None


def ensure_schema_current(engine: Engine) -> None:
    """Refuse to run on a schema this code does not match, with the command that fixes it."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = "has no pose-service schema" if current is None else f"is at revision {current}"
        raise SchemaOutOfDate(
            f"the database {where}; this pose-service needs revision {head}. "
            "Run `pose-service db upgrade` first."
        )


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
