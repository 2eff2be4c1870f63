"""Cancel and retry through the API, against the real SQL state machine."""

from __future__ import annotations

from pathlib import Path

from jobs.states import ErrorKind
from tests.web.conftest import run_job, video_job


def test_cancel_queued_job_is_immediate(client, media_root: Path) -> None:
    job = video_job(client, media_root)
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled" and r.json()["timings"]["finished_at"] is not None


def test_cancel_running_job_requests_it(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root)
    claimed = web_store.claim("w-1", 30.0)
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202
    assert r.json()["state"] == "running" and r.json()["cancel_requested"] is True
    assert web_store.extend_lease(claimed, "w-1", 30.0) is True  # what the worker hears


def test_cancel_finished_job_is_409_and_unknown_is_404(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root)
    run_job(web_store)
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_finished"
    assert client.post("/v1/jobs/12345/cancel").status_code == 404


def test_retry_failed_or_cancelled_job_requeues_it(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root, max_attempts=1)
    claimed = web_store.claim("w-1", 30.0)
    web_store.fail(claimed, "w-1", ErrorKind.CRASH, "boom", retry_base_s=1, retry_cap_s=1)
    r = client.post(f"/v1/jobs/{job['id']}/retry")
    assert r.status_code == 200
    assert r.json()["state"] == "queued" and r.json()["attempts"]["attempt"] == 0 and r.json()["error"] is None
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert client.post(f"/v1/jobs/{job['id']}/retry").json()["state"] == "queued"


def test_retry_in_other_states_is_409_and_unknown_is_404(client, web_store, media_root: Path) -> None:
    job = video_job(client, media_root)
    r = client.post(f"/v1/jobs/{job['id']}/retry")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_retryable"
    run_job(web_store)
    assert client.post(f"/v1/jobs/{job['id']}/retry").status_code == 409
    assert client.post("/v1/jobs/777/retry").status_code == 404
