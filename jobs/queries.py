"""The named SQL statements of ``jobs/sql/*.sql``, loaded once into one dict.

Keeping every statement in .sql files of named blocks (the job queue in queries.sql, other areas in
files of their own) makes the SQL that matters easy to read and review as SQL, and means Python
never assembles query strings. Names are unique across all files.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from sqlalchemy import TextClause, text

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
#: A block whose comment has a line ``-- once: <why>`` must not be repeated after its connection
#: dropped: the first execution may have committed, and a second would do the work twice.
_ONCE = re.compile(r"^--\s*once:", re.MULTILINE)


def parse_named_queries(source: str) -> dict[str, str]:
    """Split a file of ``-- name: x`` blocks into {name: sql}."""
    parts = _NAME.split(source)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip().rstrip(";")
    return queries


@cache
def _all() -> dict[str, TextClause]:
    compiled: dict[str, TextClause] = {}
    sql_dir = resources.files("jobs").joinpath("sql")
    for entry in sorted(sql_dir.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, sql in parse_named_queries(entry.read_text(encoding="utf-8")).items():
            if name in compiled:
                raise ValueError(f"query {name!r} is defined in more than one file ({entry.name})")
            compiled[name] = text(sql)
    return compiled


@cache
def driver_sql(name: str) -> str:
    """The statement as psycopg takes it (``%(name)s`` parameters), compiled once per process."""
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    return str(query(name).compile(dialect=dialect()))  # type: ignore[no-untyped-call]


@cache
def runs_once(name: str) -> bool:
    """Whether statement ``name`` is marked ``-- once:`` (not safe to repeat blindly)."""
    return _ONCE.search(query(name).text) is not None


def query(name: str) -> TextClause:
    """The compiled statement called ``name``; a KeyError names the missing query."""
    try:
        return _all()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in jobs/sql/*.sql") from None
