"""The claim, rescue and history SQL: order, concurrency, and index use on big tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from jobs.database import libpq_url
from jobs.queries import query
from jobs.store import JobStore


@pytest.mark.parametrize("how", ["claim_job", "finish_succeeded_and_claim"])
def test_claim_order_priority_then_run_after_then_age(store: JobStore, how: str):
    now = datetime.now(UTC)
    old_low = store.submit("/a.mp4", priority=0, run_after=now - timedelta(minutes=5))[0]
    high = store.submit("/b.mp4", priority=5)[0]
    new_low = store.submit("/c.mp4", priority=0, run_after=now - timedelta(minutes=1))[0]
    same_time_later_id = store.submit("/d.mp4", priority=0, run_after=now - timedelta(minutes=1))[0]
    future = store.submit("/e.mp4", priority=100, run_after=now + timedelta(hours=1))[0]
    if how == "claim_job":
        order = [store.claim("w", 10).id for _ in range(4)]
        assert store.claim("w", 10) is None  # the future job waits for its run_after
    else:  # each success is recorded by the statement that claims the next job
        current = store.claim("w", 10)
        order = [current.id]
        while current is not None:
            outcome, current = store.succeed_and_claim_next(current, "w", json.dumps({"n": len(order)}), 1, 1, 10)
            assert outcome.owned
            if current is not None:
                order.append(current.id)
        assert [store.result(i) for i in order] == [{"n": n} for n in range(1, 5)]
        assert all(store.get(i).state == "succeeded" for i in order)
    assert order == [high.id, old_low.id, new_low.id, same_time_later_id.id]
    assert store.get(future.id).state == "queued"


def test_skip_locked_lets_concurrent_claims_take_different_jobs(database_url, store: JobStore):
    a = store.submit("/a.mp4")[0]
    b = store.submit("/b.mp4")[0]
    with psycopg.connect(libpq_url(database_url)) as first, psycopg.connect(libpq_url(database_url)) as second:
        sql = str(query("claim_job")).replace(":worker_id", "%(worker_id)s").replace(":lease_s", "%(lease_s)s")
        got_first = first.execute(sql, {"worker_id": "w1", "lease_s": 10}).fetchone()[0]  # not committed
        got_second = second.execute(sql, {"worker_id": "w2", "lease_s": 10}).fetchone()[0]
        first.commit()
        second.commit()
    assert {got_first, got_second} == {a.id, b.id}


def test_lost_worker_cannot_overwrite_a_rescued_job(store: JobStore):
    job = store.submit("/a.mp4")[0]
    stale = store.claim("dead-worker", lease_s=0.01)
    import time

    time.sleep(0.05)
    assert store.rescue_expired(retry_base_s=0.0, retry_cap_s=0.0, rescuer_id="alive") == [(job.id, "queued", 1)]
    fresh = store.claim("alive", lease_s=10)
    assert fresh.attempt == 2
    assert not store.succeed(stale, "dead-worker", "{}", 1, 1).owned
    assert store.extend_lease(stale, "dead-worker", 10) is None
    assert store.succeed(fresh, "alive", json.dumps({"ok": True}), 1, 1).owned


def explain(conn, sql: str, params: dict) -> str:
    return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), params))


@pytest.fixture
def big_history(store: JobStore):
    """100k jobs over a year, a few hundred queued: the shape of a long-lived deployment."""
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE pose_jobs DISABLE TRIGGER USER"))  # bulk load without events
        conn.execute(text("""
            INSERT INTO pose_jobs (video_path, state, created_at, started_at, attempt_started_at, finished_at,
                                   frames_done, priority, error_kind)
            SELECT '/v/' || g || '.mp4',
                   CASE WHEN g % 250 = 0 THEN 'queued' WHEN g % 17 = 0 THEN 'failed' ELSE 'succeeded' END,
                   now() - (g % 365) * interval '1 day',
                   now() - (g % 365) * interval '1 day' + interval '2 s',
                   now() - (g % 365) * interval '1 day' + interval '2 s',
                   now() - (g % 365) * interval '1 day' + interval '30 s',
                   300, g % 3, CASE WHEN g % 17 = 0 THEN 'crash' END
            FROM generate_series(1, 100000) AS g"""))
        conn.execute(text("UPDATE pose_jobs SET started_at = NULL, attempt_started_at = NULL, finished_at = NULL "
                          "WHERE state = 'queued'"))
        conn.execute(text("ALTER TABLE pose_jobs ENABLE TRIGGER USER"))
        conn.execute(text("ANALYZE pose_jobs"))
    return store


def test_claim_uses_the_partial_index_on_100k_jobs(big_history: JobStore):
    with big_history.engine.begin() as conn:
        plan = explain(conn, str(query("claim_job")), {"worker_id": "w", "lease_s": 10})
        conn.rollback()
    assert "pose_jobs_claim_idx" in plan, plan
    assert "Seq Scan on pose_jobs" not in plan, plan


def test_rescue_reads_only_running_jobs_through_an_index(big_history: JobStore):
    with big_history.engine.begin() as conn:
        plan = explain(conn, str(query("rescue_expired")), {"retry_base_s": 1, "retry_cap_s": 1, "rescuer_id": "w"})
        conn.rollback()
    # with no running jobs the planner may prefer either index on state; both avoid scanning history
    assert "pose_jobs_lease_idx" in plan or "Index Cond: (state = 'running'::text)" in plan, plan
    assert "Seq Scan on pose_jobs" not in plan, plan


def test_daily_stats_for_recent_days_use_the_day_index(big_history: JobStore):
    with big_history.engine.begin() as conn:
        plan = explain(conn, str(query("daily_stats")), {"days": 7})
    assert "pose_jobs_created_day_idx" in plan, plan
    stats = big_history.daily_stats(7)
    assert len(stats) == 7
    assert sum(d["submitted"] for d in stats) == pytest.approx(100000 * 7 / 365, rel=0.05)
    assert all(d["run_p50_s"] == pytest.approx(28.0) for d in stats)
    assert all(d["wait_p50_s"] == pytest.approx(2.0) for d in stats if d["succeeded"])


def test_failure_stats_group_attempt_errors_by_kind(store: JobStore):
    job = store.submit("/a.mp4", max_attempts=2)[0]
    for _ in range(2):
        claimed = store.claim("w", 10)
        store.fail(claimed, "w", "crash", "child exited with status 1", retry_base_s=0, retry_cap_s=0)
    rows = store.failure_stats(1)
    assert rows == [{**rows[0], "error_kind": "crash", "failures": 2, "jobs": 1, "final_failures": 1,
                     "last_message": "child exited with status 1"}]
    assert store.get(job.id).state == "failed"
