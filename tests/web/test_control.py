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


def test_a_split_job_over_the_api(client, web_store, media_root: Path) -> None:
    """A waiting parent shows its segments' progress together; its segments are listed by it, retried
    only through it, and cancelled with it."""
    job = video_job(client, media_root, params={"segment_s": 60})
    assert job["params"] == {"segment_s": 60} and job["segments"] is None and job["segment_of"] is None
    parent = web_store.claim("w-1", 30.0)
    web_store.split(parent, "w-1", 300, [(0, 130), (100, 230), (200, None)])
    first = web_store.claim("w-2", 30.0)
    web_store.record_progress(first, "w-2", 120, 130, 30.0)  # 100 of its own frames, 20 of the overlap
    view = client.get(f"/v1/jobs/{job['id']}").json()
    assert view["state"] == "waiting"
    assert view["progress"] == {"frames_done": 100, "frames_total": 300, "percent": 33.3}
    assert view["segments"] == {"count": 3, "succeeded": 0, "running": 1, "list": f"/v1/jobs?parent_id={job['id']}"}
    assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [job["id"]]
    segments = client.get(view["segments"]["list"]).json()["jobs"]
    assert [s["segment_of"] for s in reversed(segments)] == [
        {"parent_id": job["id"], "index": 0, "first_frame": 0, "stop_frame": 130},
        {"parent_id": job["id"], "index": 1, "first_frame": 100, "stop_frame": 230},
        {"parent_id": job["id"], "index": 2, "first_frame": 200, "stop_frame": None}]
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    states = {s["segment_of"]["index"]: (s["state"], s["cancel_requested"])
              for s in client.get(view["segments"]["list"]).json()["jobs"]}
    assert states == {0: ("running", True), 1: ("cancelled", True), 2: ("cancelled", True)}
    r = client.post(f"/v1/jobs/{segments[0]['id']}/retry")
    assert r.status_code == 409 and f"retry job {job['id']}" in r.json()["error"]["message"]


def test_segment_s_is_checked_at_submit(client, media_root: Path) -> None:
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "clip.mp4"), "params": {"segment_s": "long"}})
    assert r.status_code == 422 and "segment_s" in r.json()["error"]["message"]
