"""Liveness, readiness, the pool, Prometheus metrics and the history statistics."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.database import libpq_url
from jobs.states import ErrorKind
from jobs.store import JobStore
from tests.conftest import with_dbname
from tests.web.conftest import result_document, run_job, sql, video_job


def test_healthz_needs_no_database(make_client) -> None:
    dead = JobStore.connect("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1)
    client = make_client(store=dead)
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert client.get("/health").json() == {"status": "ok"}
    dead.close()


def test_readyz_needs_a_live_worker(client, web_store) -> None:
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False and body["error"]["code"] == "not_ready"
    assert any("no live worker" in reason for reason in body["reasons"])
    web_store.register_worker("w-1", host="h", pid=1, gpu=None, mode="warm")
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True and r.json()["checks"]["live_workers"] == 1


def test_readyz_with_database_down_is_503_with_reason(make_client) -> None:
    dead = JobStore.connect("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1)
    client = make_client(store=dead)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert any("database unreachable" in reason for reason in r.json()["reasons"])
    r = client.get("/api/pose/health")
    assert r.status_code == 503 and r.json()["status"] == "unhealthy"
    dead.close()


def test_readyz_with_out_of_date_schema_is_503(make_client, pg_server_url: str) -> None:
    name = "pose_web_empty_schema"
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    store = JobStore.connect(with_dbname(pg_server_url, name), pool_size=1)
    try:
        r = make_client(store=store).get("/readyz")
        assert r.status_code == 503
        assert any("pose-service db upgrade" in reason for reason in r.json()["reasons"])
    finally:
        store.close()
        with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_pool_lists_workers_jobs_progress_and_estimated_wait(client, web_store, media_root: Path) -> None:
    for _ in range(2):  # two finished jobs give the mean run time
        video_job(client, media_root)
    run_job(web_store, "w-a")
    run_job(web_store, "w-a")
    web_store.register_worker("w-b", host="gpu-box", pid=4242, gpu="1", mode="fresh")
    running = video_job(client, media_root)
    claimed = web_store.claim("w-b", 30.0)
    assert claimed.id == running["id"]
    web_store.record_progress(claimed, "w-b", 30, 120, 30.0)
    web_store.worker_heartbeat("w-b", claimed.id)
    for _ in range(4):
        video_job(client, media_root)
    body = client.get("/v1/pool").json()
    assert body["live_workers"] == 2 and body["busy_workers"] == 1
    assert body["queue"] == {"ready": 4, "queued": 4}
    busy = next(w for w in body["workers"] if w["id"] == "w-b")
    assert (busy["host"], busy["pid"], busy["gpu"], busy["mode"]) == ("gpu-box", 4242, "1", "fresh")
    assert busy["current_job"]["job_id"] == claimed.id
    assert busy["current_job"]["frames_done"] == 30 and busy["current_job"]["percent"] == 25.0
    assert body["mean_run_s"] is not None
    assert body["estimated_wait_s"] == pytest.approx(4 * body["mean_run_s"] / 2, abs=0.1)
    legacy = client.get("/api/pose/pool-status").json()
    assert legacy["workers"] == {"total": 2, "busy": 1, "idle": 1} and legacy["queue_length"] == 4


def test_pool_without_workers_has_no_estimate(client, media_root: Path) -> None:
    video_job(client, media_root)
    body = client.get("/v1/pool").json()
    assert body["live_workers"] == 0 and body["estimated_wait_s"] is None and body["queue"]["ready"] == 1


def _metrics(client) -> dict[str, list]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def test_metrics_are_read_from_the_database(client, web_store, media_root: Path) -> None:
    for _ in range(3):
        video_job(client, media_root)
    run_job(web_store)
    web_store.register_worker("w-2", host="h", pid=2, gpu=None, mode="warm")
    families = _metrics(client)
    jobs = {s.labels["state"]: s.value for s in families["pose_jobs"]}
    assert jobs["queued"] == 2 and jobs["succeeded"] == 1 and jobs["running"] == 0
    assert families["pose_queue_ready"][0].value == 2
    assert families["pose_workers_live"][0].value == 2
    assert families["pose_database_up"][0].value == 1
    run_buckets = {s.labels.get("le"): s.value for s in families["pose_job_run_seconds"] if s.name.endswith("_bucket")}
    assert run_buckets["+Inf"] == 1
    assert "pose_job_wait_seconds" in families


def test_metrics_with_database_down_say_so(make_client) -> None:
    dead = JobStore.connect("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1)
    families = _metrics(make_client(store=dead))
    assert families["pose_database_up"][0].value == 0
    dead.close()


def test_stats_from_the_views(client, web_store, web_db_url, media_root: Path) -> None:
    for _ in range(3):
        video_job(client, media_root)
    run_job(web_store, document=result_document())
    failing = web_store.claim("w-9", 30.0)
    web_store.fail(failing, "w-9", ErrorKind.BAD_INPUT, "broken", retry_base_s=1, retry_cap_s=1)
    # make run times deterministic: 10 s of work for 5 frames
    sql(
        web_db_url,
        "UPDATE pose_jobs SET attempt_started_at = finished_at - interval '10 seconds' WHERE state = 'succeeded'",
    )
    body = client.get("/v1/stats").json()
    assert body["days"] == 7
    today = body["daily"][0]
    assert (today["submitted"], today["succeeded"], today["failed"], today["pending"]) == (3, 1, 1, 1)
    assert today["run_p50_s"] == pytest.approx(10.0)
    assert today["frames_processed"] == 5 and today["frames_per_s"] == pytest.approx(0.5)
    assert body["failures_by_kind"] == {"bad_input": 1}
    assert body["totals"]["submitted"] == 3
    assert json.dumps(body)  # plain JSON all the way down


@pytest.mark.parametrize(("days", "status"), [("1", 200), ("366", 200), ("0", 422), ("367", 422), ("x", 422)])
def test_stats_days_bounds(client, days: str, status: int) -> None:
    assert client.get("/v1/stats", params={"days": days}).status_code == status
