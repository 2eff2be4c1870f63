"""Startup configuration and structured logs: what operators read when something goes wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jobs.database import head_revision
from jobs.settings import Settings, mask_dsn
from jobs.states import TRANSITIONS, JobState
from jobs.store import JobStore
from tests.conftest import REPO, wait_for
from tests.test_worker_outcomes import finished


def test_secrets_are_masked_in_the_effective_config():
    s = Settings(database_url="postgresql://pose:hunter2@db.example/pose", api_tokens=("tok-a", "tok-b"))
    masked = s.masked()
    assert masked["database_url"] == "postgresql://pose:***@db.example/pose"
    assert masked["api_tokens"] == "<2 tokens>"
    assert "hunter2" not in json.dumps(masked) and "tok-a" not in json.dumps(masked)
    assert mask_dsn("postgresql://postgres@127.0.0.1/test") == "postgresql://postgres@127.0.0.1/test"


def test_passwords_are_masked_in_every_dsn_spelling():
    assert mask_dsn("postgresql://pose@db/pose?sslmode=require&password=hunter2") == (
        "postgresql://pose@db/pose?sslmode=require&password=***")
    assert mask_dsn("postgresql://pose:a@db/pose?PASSWORD=hunter2&sslpassword=k3y") == (
        "postgresql://pose:***@db/pose?PASSWORD=***&sslpassword=***")
    assert mask_dsn("host=db user=pose password=hunter2 dbname=pose") == "host=db user=pose password=*** dbname=pose"
    assert mask_dsn("host=db password = 'hun ter\\'2' dbname=pose") == "host=db password = *** dbname=pose"
    logged = Settings(database_url="postgresql://pose@db/pose?password=hunter2").masked()
    assert "hunter2" not in json.dumps(logged)


def test_bad_settings_are_clear_errors(monkeypatch):
    monkeypatch.setenv("POSE_TIMEOUT_S", "soon")
    try:
        Settings.from_env()
    except ValueError as exc:
        assert "POSE_TIMEOUT_S must be a number" in str(exc)
    else:
        raise AssertionError("a non-numeric timeout was accepted")


def test_json_logs_carry_job_attempt_and_worker(store: JobStore, start_worker):
    worker = start_worker("--log-format", "json", env={"POSE_API_TOKENS": "supersecret-token"})
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok"})
    finished(store, job.id)
    wait_for(lambda: "job succeeded" in worker.log(), 5)
    assert "supersecret-token" not in worker.log()
    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    config = next(r for r in records if r["message"].startswith("effective configuration"))
    assert "'api_tokens': '<1 tokens>'" in config["message"] and "'lease_s': 2.0" in config["message"]
    about_job = [r for r in records if r.get("job_id") == job.id]
    assert {"claimed job (priority 0, attempt 1/3)", "job succeeded (3 frames)"} <= {r["message"] for r in about_job}
    assert all(r["attempt"] == 1 and str(worker.pid) in r["worker_id"] for r in about_job)


def test_every_recorded_transition_is_in_the_state_machine(store: JobStore):
    a = store.submit("/a.mp4", max_attempts=2)[0]
    store.fail(store.claim("w", 10), "w", "crash", "boom", retry_base_s=0, retry_cap_s=0)
    store.release(store.claim("w", 10), "w")
    claimed = store.claim("w", 10)
    store.cancel(a.id)
    store.finish_cancelled(claimed, "w")
    store.retry(a.id)
    store.succeed(store.claim("w", 10), "w", "{}", 0, 0)
    b = store.submit("/b.mp4", max_attempts=1)[0]
    store.fail(store.claim("w", 10), "w", "timeout", "slow", retry_base_s=0, retry_cap_s=0)
    store.retry(b.id)
    store.cancel(b.id)
    pairs = {(e["from_state"], e["to_state"]) for job in (a, b) for e in store.events(job.id)} - {(None, "queued")}
    assert pairs <= {(f.value, t.value) for f, t in TRANSITIONS}
    assert store.get(a.id).state == JobState.SUCCEEDED and store.get(b.id).state == JobState.CANCELLED


def test_embedded_postgres_is_started_once_shared_and_stopped(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "POSE_DATABASE_URL"}
    env["POSE_HOME"] = str(tmp_path / "home")

    def cli(*args: str, check: bool = True) -> str:
        return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=REPO, env=env, check=check,
                              capture_output=True, text=True, timeout=120).stdout.strip()

    assert "not running" in cli("db", "status", check=False)
    try:
        first = cli("db", "url")
        assert str(tmp_path / "home" / "pgdata") in first
        assert cli("db", "upgrade").startswith("schema at revision")
        assert cli("db", "url") == first  # the same server, reused
        store = JobStore.connect(first)
        job, _ = store.submit("/v.mp4")
        assert store.get(job.id).state == JobState.QUEUED
        store.close()
        assert f"database: {head_revision()}" in cli("db", "current")
        status = cli("db", "status")
        assert "embedded PostgreSQL running: pid" in status
        pid = int(status.split("pid ")[1].split(",")[0])
    finally:
        stopped = cli("db", "stop")
    assert stopped.endswith("stopped")
    assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    assert "not running" in cli("db", "status", check=False)
    assert cli("db", "stop").endswith("was not running")
