"""`pose-service web`, `submit`, `status`, `result`, `jobs`, `stats` as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg

from jobs.database import libpq_url
from tests.conftest import REPO, with_dbname
from tests.web.conftest import VIDEO, ThreadWorker, run_job, sql


def cli(*args: str, url: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "POSE_DATABASE_URL": url, **(env or {})},
    )


def _succeed(store, job, worker_id) -> None:
    store.record_progress(job, worker_id, 5, 5, 30.0)
    store.succeed(job, worker_id, json.dumps({"schema": "pose-service/result@1", "frames": []}), 5, 5)


def test_web_refuses_an_out_of_date_schema(pg_server_url: str, tmp_path: Path) -> None:
    name = "pose_web_cli_empty"
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        r = cli("web", "--port", "1", url=with_dbname(pg_server_url, name), env={"POSE_HOME": str(tmp_path)})
        assert r.returncode == 2
        assert "pose-service db upgrade" in r.stderr
    finally:
        with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_web_without_tokens_warns_and_binds_loopback(start_server) -> None:
    server = start_server()
    log = server.log()
    assert "NO API TOKEN IS CONFIGURED" in log
    assert "http://127.0.0.1:" in log
    assert "effective configuration" in log


def test_web_with_tokens_binds_all_interfaces_and_masks_them(start_server) -> None:
    server = start_server(env={"POSE_API_TOKENS": "very-secret-token"})
    log = server.log()
    assert "NO API TOKEN" not in log and "http://0.0.0.0:" in log
    assert "very-secret-token" not in log and "<1 tokens>" in log
    assert httpx.get(server.url + "/v1/jobs").status_code == 401
    r = httpx.get(server.url + "/v1/jobs", headers={"authorization": "Bearer very-secret-token"})
    assert r.status_code == 200


def test_submit_directly_and_wait(web_store, web_db_url, tmp_path: Path) -> None:
    with ThreadWorker(web_store, _succeed):
        r = cli("submit", str(VIDEO), "--wait", "--priority", "3", url=web_db_url)
    assert r.returncode == 0, r.stderr
    assert "job 1 submitted" in r.stdout and "succeeded" in r.stderr
    path, priority, state = sql(web_db_url, "SELECT video_path, priority, state FROM pose_jobs")[0]
    assert (path, priority, state) == (str(VIDEO.resolve()), 3, "succeeded")


def test_submit_a_relative_path_stores_it_absolute(web_db_url, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "submit", VIDEO.name],
        cwd=VIDEO.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "POSE_DATABASE_URL": web_db_url, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 0, r.stderr
    assert sql(web_db_url, "SELECT video_path FROM pose_jobs")[0][0] == str(VIDEO.resolve())


def test_submit_through_the_server_uploads_and_follows(start_server, web_store, web_db_url) -> None:
    server = start_server()
    with ThreadWorker(web_store, _succeed):
        r = cli("submit", str(VIDEO), "--server", server.url, "--wait", url="postgresql://unused@127.0.0.1:1/x")
    assert r.returncode == 0, r.stderr
    upload_id, state = sql(web_db_url, "SELECT upload_id, state FROM pose_jobs")[0]
    assert upload_id is not None and state == "succeeded"
    stored = b"".join(web_store.iter_upload(upload_id))
    assert stored == VIDEO.read_bytes()


def test_submit_through_the_server_reports_refusals(start_server) -> None:
    server = start_server(env={"POSE_API_TOKENS": "tok"})
    r = cli("submit", str(VIDEO), "--server", server.url, url="postgresql://unused@127.0.0.1:1/x")
    assert r.returncode == 4 and "HTTP 401" in r.stderr  # 4: the server refused the token


def test_status_result_jobs_stats_read_the_database(web_store, web_db_url, tmp_path: Path) -> None:
    web_store.submit("/videos/a.mp4")
    web_store.submit("/videos/b.mp4")
    run_job(web_store)
    status = cli("status", "1", url=web_db_url)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "succeeded"
    out = tmp_path / "result.json"
    result = cli("result", "1", "-o", str(out), url=web_db_url)
    assert result.returncode == 0 and json.loads(out.read_text())["schema"] == "pose-service/result@1"
    assert cli("result", "2", url=web_db_url).returncode == 1
    assert cli("status", "99", url=web_db_url).returncode == 1
    jobs = cli("jobs", "--state", "queued", url=web_db_url)
    assert jobs.returncode == 0 and "/videos/b.mp4" in jobs.stdout and "/videos/a.mp4" not in jobs.stdout
    stats = cli("stats", "--days", "3", url=web_db_url)
    assert stats.returncode == 0 and "SUBMIT" in stats.stdout
    today = stats.stdout.splitlines()[1].split()
    assert today[1:4] == ["2", "1", "0"]


def test_submit_refuses_params_the_configured_pipeline_refuses(web_db_url: str, tmp_path: Path) -> None:
    r = cli("submit", str(VIDEO), "--params", '{"max_people": 0}', url=web_db_url, env={"POSE_HOME": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    assert "max_people must be between 1 and 32" in r.stderr
    assert sql(web_db_url, "SELECT count(*) FROM pose_jobs")[0][0] == 0
