"""Reading jobs: one job, its result (gzip), its events, and the cursor-paged list."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import result_document, run_job, sql, video_job


def test_unknown_job_is_404(client) -> None:
    for path in (
        "/v1/jobs/999",
        "/v1/jobs/999/result",
        "/v1/jobs/999/events",
        "/v1/jobs/abc",
        "/v1/jobs/0",
        "/v1/jobs/99999999999999999999",
        "/v1/jobs/-1",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] in ("job_not_found", "not_found")


def test_job_shows_progress_attempts_timings_and_worker(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root, max_attempts=4)
    web_store.register_worker("w-1", host="h", pid=1, gpu="0", mode="warm")
    claimed = web_store.claim("w-1", 30.0)
    web_store.record_progress(claimed, "w-1", 25, 100, 30.0)
    body = client.get(f"/v1/jobs/{job['id']}").json()
    assert body["state"] == "running" and body["worker_id"] == "w-1"
    assert body["progress"] == {"frames_done": 25, "frames_total": 100, "percent": 25.0}
    assert body["attempts"] == {"attempt": 1, "max_attempts": 4, "retries": 0}
    assert body["timings"]["started_at"] is not None and body["timings"]["wait_s"] >= 0
    assert body["timings"]["run_s"] is not None and body["timings"]["finished_at"] is None


def test_failed_job_shows_its_error(client, web_store, media_root: Path) -> None:
    from jobs.states import ErrorKind

    job = video_job(client, media_root, max_attempts=1)
    claimed = web_store.claim("w-1", 30.0)
    web_store.fail(claimed, "w-1", ErrorKind.BAD_INPUT, "no frames", retry_base_s=1, retry_cap_s=1)
    body = client.get(f"/v1/jobs/{job['id']}").json()
    assert body["state"] == "failed"
    assert body["error"] == {"kind": "bad_input", "message": "no frames"}


def test_result_is_409_until_succeeded_then_the_document(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root)
    r = client.get(f"/v1/jobs/{job['id']}/result")
    assert r.status_code == 409 and r.json()["error"]["code"] == "result_not_ready"
    document = result_document(frames=50)
    run_job(web_store, document=document)
    r = client.get(f"/v1/jobs/{job['id']}/result", headers={"accept-encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "content-encoding" not in r.headers
    assert r.json() == document


def test_result_is_gzipped_when_accepted(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root)
    document = result_document(frames=50)
    run_job(web_store, document=document)
    with client.stream("GET", f"/v1/jobs/{job['id']}/result", headers={"accept-encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw)) == document
    assert len(raw) < len(json.dumps(document)) / 5


def test_events_list_every_transition(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root)
    run_job(web_store)
    body = client.get(f"/v1/jobs/{job['id']}/events").json()
    assert body["job_id"] == job["id"]
    assert [e["to_state"] for e in body["events"]] == ["queued", "running", "succeeded"]
    assert body["events"][1]["worker_id"] == "test-worker"


def test_list_is_newest_first_with_cursor_paging(client, media_root: Path) -> None:
    ids = [video_job(client, media_root)["id"] for _ in range(7)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert pages == 3


def test_list_filters_by_state_and_since(client, web_store, web_db_url, media_root: Path) -> None:
    first = video_job(client, media_root)
    second = video_job(client, media_root)
    client.post(f"/v1/jobs/{second['id']}/cancel")
    sql(web_db_url, "UPDATE pose_jobs SET created_at = now() - interval '2 days' WHERE id = %s", (first["id"],))
    cancelled = client.get("/v1/jobs", params={"state": "cancelled"}).json()["jobs"]
    assert [j["id"] for j in cancelled] == [second["id"]]
    recent = client.get("/v1/jobs", params={"since": "2000-01-01T00:00:00Z"}).json()["jobs"]
    assert len(recent) == 2
    from datetime import UTC, datetime, timedelta

    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    recent = client.get("/v1/jobs", params={"since": since}).json()["jobs"]
    assert [j["id"] for j in recent] == [second["id"]]


def test_list_limit_defaults_to_50_and_caps_at_500(client, web_db_url) -> None:
    sql(web_db_url, "INSERT INTO pose_jobs (video_path) SELECT '/v/' || g FROM generate_series(1, 120) g")
    body = client.get("/v1/jobs").json()
    assert len(body["jobs"]) == 50 and body["next_cursor"]
    assert len(client.get("/v1/jobs", params={"limit": "500"}).json()["jobs"]) == 120
    assert client.get("/v1/jobs", params={"limit": "501"}).status_code == 422


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"state": "bogus"}, 422),
        ({"since": "yesterday"}, 422),
        ({"limit": "0"}, 422),
        ({"limit": "ten"}, 422),
        ({"cursor": "not-a-cursor"}, 400),
        ({"cursor": "djE6MA"}, 400),  # v1:0
        ({"colour": "red"}, 422),
    ],
)
def test_list_rejects_bad_parameters(client, params: dict, status: int) -> None:
    r = client.get("/v1/jobs", params=params)
    assert r.status_code == status
    assert "error" in r.json()


def test_head_requests_work(client, media_root: Path) -> None:
    job = video_job(client, media_root)
    assert client.head(f"/v1/jobs/{job['id']}").status_code == 200
    assert isinstance(client, httpx.Client)
