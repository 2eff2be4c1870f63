"""The schema: migrations both ways, models in step, the SQL contract for other services."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from jobs.database import (
    SchemaOutOfDate,
    current_revision,
    downgrade,
    ensure_schema_current,
    head_revision,
    libpq_url,
    sqlalchemy_url,
    upgrade,
)
from jobs.models import metadata
from jobs.store import JobStore

TABLES = {"pose_jobs", "pose_job_events", "pose_workers", "pose_uploads", "pose_upload_chunks", "pose_results",
          "pose_api_tokens", "pose_frame_rows"}
VIEWS = {"pose_job_daily_stats", "pose_job_failures", "pose_frame_people"}


def test_upgrade_downgrade_upgrade(empty_database_url):
    engine = create_engine(sqlalchemy_url(empty_database_url))
    upgrade(empty_database_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert set(inspect(engine).get_view_names()) >= VIEWS
    downgrade(empty_database_url, "base")
    engine.dispose()
    engine = create_engine(sqlalchemy_url(empty_database_url))
    assert not (TABLES | VIEWS) & set(inspect(engine).get_table_names() + inspect(engine).get_view_names())
    with engine.connect() as conn:
        functions = conn.execute(text("SELECT proname FROM pg_proc WHERE proname LIKE 'pose_jobs_%'")).all()
    assert functions == []
    upgrade(empty_database_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_stale_schema_is_refused_with_the_fix(empty_database_url):
    engine = create_engine(sqlalchemy_url(empty_database_url))
    try:
        ensure_schema_current(engine)
    except SchemaOutOfDate as exc:
        assert "pose-service db upgrade" in str(exc)
    else:
        raise AssertionError("a database without the schema was accepted")
    finally:
        engine.dispose()


def test_models_match_the_migrated_schema(database_url):
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        partitions = set(conn.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars())
    engine.dispose()
    # indexes and server defaults are the migration's business; columns, types and tables must agree
    # (partitions, pose_frame_rows' since migration 0008, are the tables they belong to)
    relevant = [d for d in diff if d[0] in ("add_table", "remove_table", "add_column", "remove_column")
                or (isinstance(d, list) and d[0][0] in ("modify_type", "modify_nullable"))]
    relevant = [d for d in relevant if not (d[0] == "remove_table" and d[1].name in partitions)]
    assert relevant == []


def test_minimal_raw_insert_is_a_complete_job(database_url, store: JobStore):
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        job_id = conn.execute("INSERT INTO pose_jobs (video_path) VALUES ('/abs/video.mp4') RETURNING id"
                              ).fetchone()[0]
    job = store.get(job_id)
    assert job.state == "queued" and job.priority == 0 and job.params == {} and job.max_attempts == 3
    assert job.attempt == 0 and job.run_after is not None and job.created_at is not None
    assert [e["to_state"] for e in store.events(job_id)] == ["queued"]
    claimed = store.claim("w1", lease_s=10)
    assert claimed.id == job_id and claimed.state == "running" and claimed.attempt == 1


def test_a_job_needs_a_video(database_url):
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        try:
            conn.execute("INSERT INTO pose_jobs (priority) VALUES (1)")
        except psycopg.errors.CheckViolation as exc:
            assert "pose_jobs_has_video" in str(exc)
        else:
            raise AssertionError("a job without a video was accepted")


def test_insert_and_cancel_triggers_notify(database_url, store: JobStore):
    with psycopg.connect(libpq_url(database_url), autocommit=True) as listener:
        listener.execute("LISTEN pose_jobs_queued")
        listener.execute("LISTEN pose_jobs_cancel")
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            job_id = conn.execute("INSERT INTO pose_jobs (video_path) VALUES ('/v.mp4') RETURNING id").fetchone()[0]
        store.claim("w1", lease_s=10)
        store.cancel(job_id)
        notes = [(n.channel, n.payload) for n in listener.notifies(timeout=2, stop_after=2)]
    assert notes == [("pose_jobs_queued", ""), ("pose_jobs_cancel", str(job_id))]


def test_a_batch_insert_wakes_workers_once(database_url):
    with psycopg.connect(libpq_url(database_url), autocommit=True) as listener:
        listener.execute("LISTEN pose_jobs_queued")
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute("INSERT INTO pose_jobs (video_path) SELECT '/v' || g || '.mp4' FROM generate_series(1, 500) g")
            conn.execute("INSERT INTO pose_jobs (video_path) VALUES ('/single.mp4')")
        notes = list(listener.notifies(timeout=1))
    assert [n.channel for n in notes] == ["pose_jobs_queued", "pose_jobs_queued"]


def test_every_transition_is_in_the_event_log_even_by_hand(database_url, store: JobStore):
    job, _ = store.submit("/v.mp4")
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE pose_jobs SET state = 'cancelled' WHERE id = %s", (job.id,))
    assert [(e["from_state"], e["to_state"]) for e in store.events(job.id)] == [(None, "queued"),
                                                                             ("queued", "cancelled")]


def test_tenancy_migration_both_ways_keeps_jobs_tokens_and_triggers(empty_database_url):
    """0002 adds owners, retry counts, token scopes and limits, per-owner idempotency keys and upload
    deletion marks; its downgrade removes them again without losing a job, and keeps the global
    key constraint valid by clearing the later duplicates of keys that were only unique per owner."""
    url = libpq_url(empty_database_url)
    upgrade(empty_database_url, "0001_job_core")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO pose_api_tokens (name, token_sha256) VALUES ('old', 'h1')")
        conn.execute("INSERT INTO pose_jobs (video_path, idempotency_key) VALUES ('/a.mp4', 'k')")
    upgrade(empty_database_url, "0002_tenancy")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT scopes, max_priority, rate_per_min FROM pose_api_tokens").fetchall() == [
            (["submit", "read"], None, None)]  # tokens from before: least privilege
        assert conn.execute("SELECT owner_token_id, retries FROM pose_jobs").fetchall() == [(None, 0)]
        conn.execute("INSERT INTO pose_api_tokens (name, token_sha256, scopes) VALUES ('t2', 'h2', '{admin}')")
        conn.execute("INSERT INTO pose_jobs (video_path, idempotency_key, owner_token_id) VALUES ('/b.mp4', 'k', 1)")
        conn.execute("INSERT INTO pose_jobs (video_path, idempotency_key, owner_token_id) VALUES ('/c.mp4', 'k', 2)")
        try:
            conn.execute("INSERT INTO pose_jobs (video_path, idempotency_key, owner_token_id) "
                         "VALUES ('/d.mp4', 'k', 2)")
        except psycopg.errors.UniqueViolation:
            pass
        else:
            raise AssertionError("one owner used a key twice")
        try:
            conn.execute("INSERT INTO pose_api_tokens (name, token_sha256, scopes) VALUES ('x', 'h3', '{write}')")
        except psycopg.errors.CheckViolation:
            pass
        else:
            raise AssertionError("an unknown scope was accepted")
        events = conn.execute("SELECT count(*) FROM pose_job_events").fetchone()[0]
        assert events == 3  # the event trigger still records every insert
        assert conn.execute("SELECT sum(submitted) FROM pose_job_daily_stats").fetchone()[0] == 3
    downgrade(empty_database_url, "0001_job_core")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT video_path, idempotency_key FROM pose_jobs ORDER BY id").fetchall()
        assert rows == [("/a.mp4", "k"), ("/b.mp4", None), ("/c.mp4", None)]
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name IN "
            "('pose_jobs', 'pose_api_tokens', 'pose_uploads')").fetchall()}
        assert not columns & {"owner_token_id", "retries", "scopes", "max_priority", "rate_per_min", "deleted_at"}
        try:
            conn.execute("INSERT INTO pose_jobs (video_path, idempotency_key) VALUES ('/e.mp4', 'k')")
        except psycopg.errors.UniqueViolation:
            pass
        else:
            raise AssertionError("the global key constraint did not come back")
    upgrade(empty_database_url)
