"""The old Flask service's routes, including /pose/hybrid end to end through a real worker."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from jobs.states import ErrorKind
from tests.web.conftest import ThreadWorker, result_document, run_job, sql


def png_base64(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (10, 120, 230)) -> str:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:] = colour
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return base64.b64encode(encoded.tobytes()).decode()


def test_health_routes(client, web_store) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/api/pose/health")
    assert r.status_code == 503 and r.json()["status"] == "unhealthy"
    web_store.register_worker("w-1", host="h", pid=1, gpu=None, mode="warm")
    r = client.get("/api/pose/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy"


def test_pose_video_submits_and_status_follows(client, web_store, media_root: Path) -> None:
    r = client.post("/pose/video", json={"video_path": str(media_root / "video.mp4")})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "queued" and isinstance(body["job_id"], int)
    status = client.get(f"/pose/video/status/{body['job_id']}").json()
    assert status["status"] == "queued" and status["progress"] == 0.0 and status["result_url"] is None
    run_job(web_store)
    status = client.get(f"/pose/video/status/{body['job_id']}").json()
    assert status["status"] == "succeeded" and status["progress"] == 100.0
    assert status["result_url"] == f"/v1/jobs/{body['job_id']}/result"
    assert client.get("/pose/video/status/999").status_code == 404


def test_pose_video_checks_like_v1(client, media_root: Path) -> None:
    assert client.post("/pose/video", json={"video_path": "/etc/passwd"}).status_code == 403
    assert client.post("/pose/video", json={"video_path": str(media_root / "nope.mp4")}).status_code == 422
    assert client.post("/pose/video", json={"path": "/x"}).status_code == 422
    assert client.post("/pose/video", content=b"{", headers={"content-type": "application/json"}).status_code == 400


def _finish_with_image_check(store, job, worker_id: str) -> None:
    """What a worker does, minus inference: read the staged upload with OpenCV, answer with its size."""
    data = b"".join(store.iter_upload(job.upload_id))
    path = Path(f"/tmp/hybrid-{job.id}-{time.monotonic_ns()}.avi")
    path.write_bytes(data)
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    path.unlink()
    assert ok and frames == 1
    doc = result_document(width=frame.shape[1], height=frame.shape[0])
    doc["frames"][0]["people"][0]["params"] = job.params
    doc["frames"][0]["people"][0]["priority"] = job.priority
    store.succeed(job, worker_id, json.dumps(doc), 1, 1)


def test_hybrid_waits_for_a_worker_and_returns_keypoints(client) -> None:
    with ThreadWorker(client.app.state.ctx.store, _finish_with_image_check) as worker:
        r = client.post("/pose/hybrid", json={"image_base64": png_base64(64, 48)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["width"] == 64 and body["height"] == 48
    assert len(body["keypoints"]) == 33 and body["keypoints"][0][:2] == [32.0, 24.0]
    person = body["people"][0]
    assert person["params"] == {"mode": "static"} and person["priority"] == 1000
    assert worker.jobs[0].id == body["job_id"]


def test_hybrid_accepts_a_data_url_and_jpeg(client) -> None:
    image = np.full((30, 40, 3), 200, dtype=np.uint8)
    jpeg = base64.b64encode(cv2.imencode(".jpg", image)[1].tobytes()).decode()
    with ThreadWorker(client.app.state.ctx.store, _finish_with_image_check):
        r = client.post("/pose/hybrid", json={"image_base64": f"data:image/jpeg;base64,{jpeg}"})
    assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (40, 30)


def test_hybrid_times_out_with_504_and_cancels_its_job(make_client, web_db_url) -> None:
    client = make_client(app_options={"hybrid_timeout_s": 0.5})
    r = client.post("/pose/hybrid", json={"image_base64": png_base64()})
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    assert sql(web_db_url, "SELECT state FROM pose_jobs")[0][0] == "cancelled"


def test_hybrid_failures(client) -> None:
    def fail(store, job, worker_id):
        store.fail(job, worker_id, ErrorKind.PIPELINE_ERROR, "exploded", retry_base_s=1, retry_cap_s=1)

    with ThreadWorker(client.app.state.ctx.store, fail):
        r = client.post("/pose/hybrid", json={"image_base64": png_base64()})
    assert r.status_code == 502 and "exploded" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"image_base64": "***not base64***"}, 422),
        ({"image_base64": base64.b64encode(b"not an image at all").decode()}, 422),
        ({"image_base64": ""}, 422),
        ({"image_base64": 5}, 422),
        ({}, 422),
        ({"image_base64": "AAAA", "extra": 1}, 422),
        ({"image_base64": "AAAA", "max_people": 0}, 422),
        ({"image_base64": "AAAA", "max_people": True}, 422),
        ({"image_base64": "AAAA", "detect_scales": -1}, 422),
    ],
)
def test_hybrid_rejects_bad_input(client, web_db_url, body: dict, status: int) -> None:
    r = client.post("/pose/hybrid", json=body)
    assert r.status_code == status, r.text
    assert sql(web_db_url, "SELECT count(*) FROM pose_jobs")[0][0] == 0


def test_hybrid_end_to_end_with_a_real_worker(make_client, start_worker, web_db_url) -> None:
    """The real worker daemon stages the upload, runs a (test) pipeline in its child process on the
    one-frame video, and stores the result the route then answers from."""
    start_worker(pipeline="tests.web.pipelines:create", url=web_db_url)
    client = make_client(app_options={"hybrid_timeout_s": 30.0})
    r = client.post("/pose/hybrid", json={"image_base64": png_base64(80, 60, colour=(10, 120, 230)), "max_people": 12})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["people"][0]["params"] == {"mode": "static", "max_people": 12}  # what the pipeline was asked
    assert (body["width"], body["height"]) == (80, 60)
    assert body["model"]["name"] == "test-hybrid"
    assert body["keypoints"][0][:2] == [40.0, 30.0]
    assert body["people"][0]["mean_bgr"] == pytest.approx([10, 120, 230], abs=1)  # lossless all the way
