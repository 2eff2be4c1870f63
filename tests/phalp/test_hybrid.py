"""/pose/hybrid with the phalp backend: one image, the SMPL parameters and joints of each person, and the
mesh only when the worker has the operator's SMPL model. The worker here is a thread that runs the real
phalp pipeline (and so the stand-in track.py) on the staged image, as the child would."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

from jobs.settings import Settings
from jobs.store import JobStore
from tests.phalp.helpers import make_checkout
from tests.phalp.test_units import _synthetic_smpl
from web.app import create_app
from worker.pipeline.params import pipeline_params
from worker.pipeline.phalp.config import PhalpConfig
from worker.pipeline.phalp.pipeline import PhalpPipeline


def png_base64(width: int = 48, height: int = 64) -> str:
    ok, encoded = cv2.imencode(".png", np.full((height, width, 3), 90, dtype=np.uint8))
    assert ok
    return base64.b64encode(encoded.tobytes()).decode()


class PhalpThreadWorker(threading.Thread):
    """Claims one job (it advertises only phalp), runs the phalp pipeline on it, and ends: the analysis
    job the service queues after a success is not its business."""

    def __init__(self, store: JobStore, pipeline: PhalpPipeline, scratch: Path) -> None:
        super().__init__(daemon=True)
        self.store, self.pipeline, self.scratch, self.stop = store, pipeline, scratch, threading.Event()

    def run(self) -> None:
        self.store.register_worker("phalp-thread", host="h", pid=1, gpu=None, mode="warm", backends=["phalp"])
        while not self.stop.wait(0.02):
            job = self.store.claim("phalp-thread", 30.0)
            if job is None:
                continue
            assert job.params.get("backend") == "phalp"
            video = self.scratch / f"job{job.id}.avi"
            video.write_bytes(b"".join(self.store.iter_upload(job.upload_id)))
            document = self.pipeline(str(video), pipeline_params(job.params), lambda done, total: None)
            frames = len(document["frames"])
            self.store.succeed(job, "phalp-thread", json.dumps(document), frames, frames)
            return


@pytest.fixture
def hybrid(database_url: str, store: JobStore, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    app = create_app(Settings(database_url=database_url, home=tmp_path), store, token_refresh_s=0.0,
                     hybrid_timeout_s=30.0)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, tmp_path


def _serve(store: JobStore, tmp_path: Path, smpl: Path | None, monkeypatch: pytest.MonkeyPatch) -> PhalpThreadWorker:
    checkout = make_checkout(tmp_path / f"checkout-{smpl is not None}")
    config = PhalpConfig(checkout.path, Path(sys.executable), smpl_model=smpl)
    worker = PhalpThreadWorker(store, PhalpPipeline(config), tmp_path)
    for name, value in checkout.env().items():  # the stand-in's own settings, inherited by track.py
        if name.startswith("STANDIN"):
            monkeypatch.setenv(name, value)
    worker.start()
    return worker


def test_hybrid_with_phalp_returns_smpl_and_joints_and_the_mesh_only_with_an_smpl_model(hybrid, store, monkeypatch):
    client, tmp_path = hybrid
    r = client.post("/pose/hybrid", json={"image_base64": png_base64(), "backend": "phalp", "max_people": 2})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_params"  # BlazePose's option
    assert "max_people" in r.json()["error"]["message"]
    for smpl in (_synthetic_smpl(tmp_path / "smpl.npz"), None):
        with store.engine.begin() as conn:  # the analysis job queued after the first success is not ours
            conn.exec_driver_sql("UPDATE pose_jobs SET state = 'cancelled', finished_at = now() WHERE state = 'queued'")
        worker = _serve(store, tmp_path, smpl, monkeypatch)
        try:
            r = client.post("/pose/hybrid", json={"image_base64": png_base64(), "backend": "phalp"})
        finally:
            worker.stop.set()
            worker.join(10)
        assert r.status_code == 200, r.text
        body = r.json()
        (person,) = body["people"]  # a one-frame clip: n_init lowered to 1, so the track is confirmed
        assert body["model"]["backend"] == "phalp" and len(body["keypoints"]) == 33
        assert np.array(person["smpl"]["global_orient"]).shape == (1, 3, 3) and len(person["smpl"]["betas"]) == 10
        assert len(person["joints_3d"]) == 45 and len(person["joints_2d_px"]) == 45 and len(person["camera"]) == 3
        if smpl is not None:
            assert np.array(person["vertices"]).shape == (12, 3) and person["faces"] == [[0, 1, 2], [2, 3, 4]]
        else:  # POSE_SMPL_MODEL unset on the worker
            assert "vertices" not in person and "faces" not in person


def test_rest_submissions_name_a_known_backend(hybrid):
    client, tmp_path = hybrid
    r = client.post("/v1/jobs", json={"video_path": str(tmp_path / "v.mp4"), "params": {"backend": "hmr"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_params"
    assert "backend must be one of 'blazepose', 'phalp'" in r.json()["error"]["message"]
    r = client.post("/v1/jobs", json={"video_path": str(tmp_path / "v.mp4"),
                                      "params": {"backend": "phalp", "detect_scales": 1}})
    assert r.status_code == 422 and "detect_scales" in r.json()["error"]["message"]  # BlazePose's, not phalp's
