"""Alembic environment: runs migrations against the database pose-service is configured to use."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from jobs.database import resolve_database_url, sqlalchemy_url

config = context.config
url = config.attributes.get("database_url") or resolve_database_url()


def run_migrations_offline() -> None:
    context.configure(url=sqlalchemy_url(url), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
