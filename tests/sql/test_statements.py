"""The job queue's named statements (jobs/sql/queries.sql): order, concurrency, fencing, and index use
on big tables. One class per statement; ``STATEMENT`` names it, and a test below checks each name is
still a statement, so a renamed one cannot leave its tests behind unnoticed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from jobs.database import libpq_url
from jobs.queries import driver_sql, query
from jobs.store import IdempotencyConflict, JobStore
from tests.sql.plans import INDEX_SCANS, describe, explain, index_names, nodes, seq_scanned


@pytest.fixture
def big_history(store: JobStore) -> JobStore:
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


def _submit_for_ordering(store: JobStore) -> tuple[list[int], int]:
    """Jobs whose claim order is fixed by priority, then run_after, then id; and one not due yet."""
    now = datetime.now(UTC)
    old_low = store.submit("/a.mp4", priority=0, run_after=now - timedelta(minutes=5))[0]
    high = store.submit("/b.mp4", priority=5)[0]
    new_low = store.submit("/c.mp4", priority=0, run_after=now - timedelta(minutes=1))[0]
    same_time_later_id = store.submit("/d.mp4", priority=0, run_after=now - timedelta(minutes=1))[0]
    future = store.submit("/e.mp4", priority=100, run_after=now + timedelta(hours=1))[0]
    return [high.id, old_low.id, new_low.id, same_time_later_id.id], future.id


class TestSubmitJob:
    STATEMENT = "submit_job"

    def test_idempotency_key(self, store: JobStore) -> None:  # moved from test_schema.py
        first, created = store.submit("/v.mp4", idempotency_key="abc", params={"x": 1})
        again, created_again = store.submit("/v.mp4", idempotency_key="abc", params={"x": 1})
        assert created and not created_again and again.id == first.id
        try:
            store.submit("/other.mp4", idempotency_key="abc")
        except IdempotencyConflict as exc:
            assert exc.existing.id == first.id
        else:
            raise AssertionError("a conflicting reuse of the key was accepted")


class TestClaimJob:
    STATEMENT = "claim_job"

    def test_order_is_priority_then_run_after_then_age(self, store: JobStore) -> None:
        expected, future = _submit_for_ordering(store)
        order = [store.claim("w", 10).id for _ in range(4)]
        assert store.claim("w", 10) is None  # the future job waits for its run_after
        assert order == expected
        assert store.get(future).state == "queued"

    def test_skip_locked_lets_concurrent_claims_take_different_jobs(self, database_url: str, store: JobStore) -> None:
        a = store.submit("/a.mp4")[0]
        b = store.submit("/b.mp4")[0]
        with psycopg.connect(libpq_url(database_url)) as first, psycopg.connect(libpq_url(database_url)) as second:
            sql = driver_sql("claim_job")  # exactly what JobStore sends, in two open transactions
            got_first = first.execute(sql, {"worker_id": "w1", "lease_s": 10}).fetchone()[0]  # not committed
            got_second = second.execute(sql, {"worker_id": "w2", "lease_s": 10}).fetchone()[0]
            first.commit()
            second.commit()
        assert {got_first, got_second} == {a.id, b.id}

    def test_uses_the_partial_index_on_100k_jobs(self, big_history: JobStore) -> None:
        with big_history.engine.begin() as conn:
            plan = explain(conn, str(query("claim_job")), {"worker_id": "w", "lease_s": 10})
            conn.rollback()
        assert "pose_jobs_claim_idx" in index_names(plan), describe(plan)
        assert "pose_jobs" not in seq_scanned(plan), describe(plan)


class TestFinishSucceededAndClaim:
    STATEMENT = "finish_succeeded_and_claim"

    def test_claims_in_the_same_order_as_claim_job(self, store: JobStore) -> None:
        expected, future = _submit_for_ordering(store)
        # each success is recorded by the statement that claims the next job
        current = store.claim("w", 10)
        order = [current.id]
        while current is not None:
            outcome, current = store.succeed_and_claim_next(current, "w", json.dumps({"n": len(order)}), 1, 1, 10)
            assert outcome.owned
            if current is not None:
                order.append(current.id)
        assert [store.result(i) for i in order] == [{"n": n} for n in range(1, 5)]
        assert all(store.get(i).state == "succeeded" for i in order)
        assert order == expected
        assert store.get(future).state == "queued"


class TestFinishSucceeded:
    STATEMENT = "finish_succeeded"

    def test_a_lost_worker_cannot_overwrite_a_rescued_job(self, store: JobStore) -> None:
        job = store.submit("/a.mp4")[0]
        stale = store.claim("dead-worker", lease_s=0.01)
        time.sleep(0.05)
        assert store.rescue_expired(retry_base_s=0.0, retry_cap_s=0.0, rescuer_id="alive") == [(job.id, "queued", 1)]
        fresh = store.claim("alive", lease_s=10)
        assert fresh.attempt == 2
        assert not store.succeed(stale, "dead-worker", "{}", 1, 1).owned
        assert store.extend_lease(stale, "dead-worker", 10) is None  # extend_lease is fenced the same way
        assert store.succeed(fresh, "alive", json.dumps({"ok": True}), 1, 1).owned


class TestRescueExpired:
    STATEMENT = "rescue_expired"

    def test_reads_only_running_jobs_through_an_index(self, big_history: JobStore) -> None:
        with big_history.engine.begin() as conn:
            params = {"retry_base_s": 1, "retry_cap_s": 1, "rescuer_id": "w"}
            plan = explain(conn, str(query("rescue_expired")), params)
            conn.rollback()
        assert "pose_jobs" not in seq_scanned(plan), describe(plan)
        # The expired leases are found through an index that reaches running jobs only: the partial
        # lease index, or (with no running jobs the planner may prefer it) the state index with its
        # condition on state. Either avoids reading the history.
        finders = [node for node in nodes(plan) if node["Node Type"] in INDEX_SCANS
                   and node["Index Name"] != "pose_jobs_pkey"]
        assert finders, describe(plan)
        for node in finders:
            running_only = node["Index Name"] == "pose_jobs_lease_idx" or (
                node["Index Name"] == "pose_jobs_state_id_idx" and "state = 'running'" in node.get("Index Cond", ""))
            assert running_only, describe(plan)


class TestDailyStats:
    STATEMENT = "daily_stats"

    def test_recent_days_use_the_day_index(self, big_history: JobStore) -> None:
        with big_history.engine.begin() as conn:
            plan = explain(conn, str(query("daily_stats")), {"days": 7, "owner_token_id": None})
        assert "pose_jobs_created_day_idx" in index_names(plan), describe(plan)
        stats = big_history.daily_stats(7)
        assert len(stats) == 7
        assert sum(d["submitted"] for d in stats) == pytest.approx(100000 * 7 / 365, rel=0.05)
        assert all(d["run_p50_s"] == pytest.approx(28.0) for d in stats)
        assert all(d["wait_p50_s"] == pytest.approx(2.0) for d in stats if d["succeeded"])


class TestFailureStats:
    STATEMENT = "failure_stats"

    def test_groups_attempt_errors_by_kind(self, store: JobStore) -> None:
        job = store.submit("/a.mp4", max_attempts=2)[0]
        for _ in range(2):
            claimed = store.claim("w", 10)
            store.fail(claimed, "w", "crash", "child exited with status 1", retry_base_s=0, retry_cap_s=0)
        rows = store.failure_stats(1)
        assert rows == [{**rows[0], "error_kind": "crash", "failures": 2, "jobs": 1, "final_failures": 1,
                         "last_message": "child exited with status 1"}]
        assert store.get(job.id).state == "failed"


def test_every_group_names_a_statement() -> None:
    groups = [value for value in globals().values() if isinstance(value, type) and value.__name__.startswith("Test")]
    assert groups
    for group in groups:
        query(group.STATEMENT)  # KeyError for a statement that no longer exists
