"""Alembic migrations: the only way the pose-service schema (tables, triggers, views) changes."""
