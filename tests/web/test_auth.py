"""Bearer tokens from POSE_API_TOKENS and from pose_api_tokens (managed by `pose-service tokens`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import api_tokens
from tests.conftest import REPO
from tests.web.conftest import sql

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


def test_database_tokens_work_and_revoked_ones_are_403(client, web_store) -> None:
    assert client.get("/v1/jobs").status_code == 200  # none yet: open
    record, token = api_tokens.create_token(web_store.engine, "ingest")
    assert client.get("/v1/jobs").status_code == 401  # a token exists now: the API closed itself
    assert client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/v1/jobs", headers={"authorization": "Bearer pose_nope"}).status_code == 401
    api_tokens.revoke_token(web_store.engine, record.id)
    r = client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "token_revoked"
    # the only token is revoked: the API is open again, but the revoked token stays refused
    assert client.get("/v1/jobs").status_code == 200
    assert client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 403


def test_last_use_is_recorded_in_batches(client, web_store, web_db_url) -> None:
    record, token = api_tokens.create_token(web_store.engine, "cli")
    client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"})
    client.get("/v1/jobs", headers={"authorization": f"Bearer {token}"})  # the next refresh flushes
    (last_used,) = sql(web_db_url, "SELECT last_used_at FROM pose_api_tokens WHERE id = %s", (record.id,))[0]
    assert last_used is not None


def test_only_hashes_are_stored(web_store, web_db_url) -> None:
    _, token = api_tokens.create_token(web_store.engine, "x")
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
