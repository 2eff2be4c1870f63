"""Bearer tokens from POSE_API_TOKENS and from pose_api_tokens (managed by `pose-service tokens`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from jobs import api_tokens
from tests.conftest import REPO
from tests.web.conftest import sql
from web import tokens
from web.rate_limit import SubmitRateLimiter


def _video(client) -> Path:
    return Path(client.app.state.ctx.settings.media_roots[0]) / "video.mp4"

PROTECTED = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/1"),
    ("GET", "/v1/jobs/1/result"),
    ("GET", "/v1/jobs/1/events"),
    ("POST", "/v1/jobs/1/cancel"),
    ("POST", "/v1/jobs/1/retry"),
    ("GET", "/v1/stats"),
    ("GET", "/v1/pool"),
    ("GET", "/api/pose/pool-status"),
    ("POST", "/pose/video"),
    ("GET", "/pose/video/status/1"),
    ("POST", "/pose/hybrid"),
]
OPEN = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/health", "/api/pose/health"]


def test_without_tokens_the_api_is_open(client) -> None:
    assert client.get("/v1/jobs").status_code == 200


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_env_tokens_protect_every_job_route(make_client, method: str, path: str) -> None:
    client = make_client(api_tokens=("s3cret-a", "s3cret-b"))
    r = client.request(method, path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.request(method, path, headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = client.request(method, path, headers={"authorization": "Bearer s3cret-b"})
    assert r.status_code not in (401, 403)


@pytest.mark.parametrize("path", OPEN)
def test_health_readiness_metrics_stay_open(make_client, path: str) -> None:
    client = make_client(api_tokens=("s3cret",))
    assert client.get(path).status_code in (200, 503)


def test_malformed_authorization_headers_are_401(make_client) -> None:
    client = make_client(api_tokens=("s3cret",))
    for header in ("s3cret", "Basic s3cret", "Bearer", "Bearer  ", "bearer s3cret"):
        status = client.get("/v1/jobs", headers={"authorization": header}).status_code
        assert status == (200 if header == "bearer s3cret" else 401), header


def test_database_tokens_work_and_revoked_ones_are_403(make_client, web_store) -> None:
    record, token = api_tokens.create_token(web_store, "ingest")
    client = make_client()  # a token exists at startup: the API is closed
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/v1/jobs", headers={"authorization": "Bearer pose_nope"}).status_code == 401
    api_tokens.revoke_token(web_store, record.id)
    r = client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "token_revoked"


def test_revoking_the_last_token_keeps_a_closed_api_closed(make_client, web_store, web_db_url) -> None:
    """Hardening item 10: the API was closed at startup, so revoking its only token must not open it."""
    record, token = api_tokens.create_token(web_store, "only", scopes=("admin",))
    client = make_client()
    auth = {"authorization": f"Bearer {token}"}
    job_id = client.post("/v1/jobs", json={"video_path": str(_video(client))}, headers=auth).json()["id"]
    sql(web_db_url, "UPDATE pose_jobs SET state = 'failed', finished_at = now() WHERE id = %s", (job_id,))
    api_tokens.revoke_token(web_store, record.id)
    for headers in ({}, {"authorization": "Bearer garbage"}, {"authorization": "Bearer pose_garbage"}):
        assert client.get("/v1/jobs", headers=headers).status_code == 401, headers
        assert client.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 401, headers
        assert client.post(f"/v1/jobs/{job_id}/retry", headers=headers).status_code == 401, headers
    assert client.get("/v1/jobs", headers=auth).status_code == 403
    assert sql(web_db_url, "SELECT state FROM pose_jobs WHERE id = %s", (job_id,)) == [("failed",)]
    assert client.app.state.ctx.tokens.describe()["api"] == "closed"


def test_a_token_created_later_does_not_close_an_open_api(client, web_store, caplog) -> None:
    """Open-or-closed is decided once, at startup: a token created while an open API serves leaves
    it open (loudly logged; a restart closes it), and that token is still honoured as itself."""
    assert client.get("/v1/jobs").status_code == 200  # no token at startup: open
    with caplog.at_level("WARNING", logger="web.tokens"):
        record, token = api_tokens.create_token(web_store, "late", scopes=("read",))
        assert client.get("/v1/jobs").status_code == 200
    assert any("stays open" in r.getMessage() for r in caplog.records)
    r = client.post("/v1/jobs", json={"video_path": "/x"}, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    api_tokens.revoke_token(web_store, record.id)
    assert client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 403


def test_a_live_server_started_with_one_token_stays_closed_after_revoking_it(
    start_server, web_db_url
) -> None:
    """The reported scenario end to end: `pose-service web` started with one DB token (so bound to
    0.0.0.0), then `pose-service tokens revoke`, then anonymous and garbage-token requests."""
    created = run_cli("tokens", "create", "only", url=web_db_url)
    assert created.returncode == 0, created.stderr
    server = start_server()
    assert "0.0.0.0" in server.log() and "'api': 'closed'" in server.log()
    assert httpx.get(server.url + "/v1/jobs", timeout=5).status_code == 401
    token_id = sql(web_db_url, "SELECT id FROM pose_api_tokens")[0][0]
    assert run_cli("tokens", "revoke", str(token_id), url=web_db_url).returncode == 0
    time.sleep(2.5)  # longer than the web process's token refresh
    for headers in ({}, {"authorization": "Bearer garbage"}):
        assert httpx.get(server.url + "/v1/jobs", headers=headers, timeout=5).status_code == 401
        assert httpx.post(server.url + "/v1/jobs/1/retry", headers=headers, timeout=5).status_code == 401


def test_scopes_limit_what_a_token_may_do(make_client, web_store, media_root) -> None:
    _, reader = api_tokens.create_token(web_store, "reader", scopes=("read",))
    _, submitter = api_tokens.create_token(web_store, "submitter", scopes=("submit",))
    client = make_client()
    path = str(media_root / "video.mp4")
    r = client.post("/v1/jobs", json={"video_path": path}, headers={"authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    r = client.post("/v1/jobs", json={"video_path": path}, headers={"authorization": f"Bearer {submitter}"})
    assert r.status_code == 201
    job_id = r.json()["id"]
    for path_ in (f"/v1/jobs/{job_id}", "/v1/jobs", "/v1/stats", f"/pose/video/status/{job_id}"):
        r = client.get(path_, headers={"authorization": f"Bearer {submitter}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope", path_
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers={"authorization": f"Bearer {submitter}"})
    assert r.status_code == 200
    r = client.post(f"/v1/jobs/{job_id}/retry", headers={"authorization": f"Bearer {reader}"})
    assert r.status_code == 403


def test_a_non_admin_principal_needs_a_token_id() -> None:
    with pytest.raises(ValueError):
        tokens.Principal("x", frozenset({"read"}))
    assert tokens.ENV_PRINCIPAL.admin and tokens.OPEN_PRINCIPAL.visible_to is None


def test_submits_are_rate_limited_per_token(make_client, web_store, media_root) -> None:
    _, slow = api_tokens.create_token(web_store, "slow", rate_per_min=3)
    _, other = api_tokens.create_token(web_store, "other")
    client = make_client()
    body = {"video_path": str(media_root / "video.mp4")}
    statuses = [client.post("/v1/jobs", json=body, headers={"authorization": f"Bearer {slow}"}).status_code
                for _ in range(3)]
    assert statuses == [201, 201, 201]
    r = client.post("/v1/jobs", json=body, headers={"authorization": f"Bearer {slow}"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 20
    r = client.post("/pose/video", json=body, headers={"authorization": f"Bearer {slow}"})
    assert r.status_code == 429  # the old routes share the bucket
    assert client.get("/v1/jobs", headers={"authorization": f"Bearer {slow}"}).status_code == 200  # reads are free
    assert client.post("/v1/jobs", json=body, headers={"authorization": f"Bearer {other}"}).status_code == 201


def test_the_default_rate_stops_a_flood(make_client, web_store, media_root) -> None:
    _, token = api_tokens.create_token(web_store, "flood")
    client = make_client()
    auth = {"authorization": f"Bearer {token}"}
    body = {"video_path": str(media_root / "video.mp4")}
    started = time.monotonic()
    statuses = [client.post("/v1/jobs", json=body, headers=auth).status_code
                for _ in range(api_tokens.DEFAULT_RATE_PER_MIN + 20)]
    refilled = (time.monotonic() - started) * api_tokens.DEFAULT_RATE_PER_MIN / 60  # the bucket refills meanwhile
    assert api_tokens.DEFAULT_RATE_PER_MIN <= statuses.count(201) <= api_tokens.DEFAULT_RATE_PER_MIN + refilled + 1
    assert set(statuses) == {201, 429}


def test_token_bucket_refills_at_the_rate() -> None:
    now = [100.0]
    limiter = SubmitRateLimiter(clock=lambda: now[0])
    assert [limiter.take(1, 60) for _ in range(60)] == [0.0] * 60  # a minute's worth of burst
    assert limiter.take(1, 60) == pytest.approx(1.0)  # then one a second
    now[0] += 0.5
    assert limiter.take(1, 60) == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take(1, 60) == 0.0
    assert limiter.take(2, 60) == 0.0  # buckets are per token


def test_last_use_is_recorded_in_batches(client, web_store, web_db_url) -> None:
    record, token = api_tokens.create_token(web_store, "cli")
    client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"})
    client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"})  # the next refresh flushes
    (last_used,) = sql(web_db_url, "SELECT last_used_at FROM pose_api_tokens WHERE id = %s", (record.id,))[0]
    assert last_used is not None


def test_only_hashes_are_stored(web_store, web_db_url) -> None:
    _, token = api_tokens.create_token(web_store, "x")
    rows = sql(web_db_url, "SELECT token_sha256 FROM pose_api_tokens")
    assert rows == [(api_tokens.hash_token(token),)] and token not in rows[0][0]


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "POSE_DATABASE_URL": url},
    )


def test_tokens_cli_create_list_revoke(make_client, web_db_url, tmp_path: Path) -> None:
    created = run_cli("tokens", "create", "ingest-service", url=web_db_url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("pose_") and "not shown again" in created.stderr
    listed = run_cli("tokens", "list", url=web_db_url)
    assert "ingest-service" in listed.stdout and token not in listed.stdout
    client = make_client()
    assert client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 200
    token_id = sql(web_db_url, "SELECT id FROM pose_api_tokens")[0][0]
    assert run_cli("tokens", "revoke", str(token_id), url=web_db_url).returncode == 0
    assert client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 403
    assert run_cli("tokens", "revoke", "999", url=web_db_url).returncode == 1


def test_tokens_cli_scopes_ceiling_and_rate(web_db_url) -> None:
    created = run_cli("tokens", "create", "batch", "--scope", "submit", "--max-priority", "50", "--rate", "10",
                      url=web_db_url)
    assert created.returncode == 0, created.stderr
    admin = run_cli("tokens", "create", "ops", "--admin", url=web_db_url)
    assert admin.returncode == 0, admin.stderr
    rows = sql(web_db_url, "SELECT name, scopes, max_priority, rate_per_min FROM pose_api_tokens ORDER BY id")
    assert rows == [("batch", ["submit"], 50, 10), ("ops", ["submit", "read", "admin"], None, None)]
    listed = run_cli("tokens", "list", url=web_db_url).stdout
    assert "submit,read,admin" in listed and " 50 " in listed
    for bad in (["--scope", "write"], ["--scope", ","], ["--max-priority", "1000"], ["--max-priority", "-1"],
                ["--rate", "-5"]):
        r = run_cli("tokens", "create", "bad", *bad, url=web_db_url)
        assert r.returncode == 2 and r.stdout == "", bad
    assert len(sql(web_db_url, "SELECT id FROM pose_api_tokens")) == 2
