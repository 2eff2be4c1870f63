"""`pose-service demo` (what `make demo` runs): the real pose pipeline end to end, over REST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jobs.sample_media import media_dir
from tests.conftest import REPO
from worker.pipeline.blazepose.weights import default_model_dir


def test_demo_processes_a_video_and_summarises_it(database_url: str, tmp_path: Path):
    env = {**os.environ, "POSE_DATABASE_URL": database_url, "POSE_HOME": str(tmp_path),
           "POSE_MODEL_DIR": str(default_model_dir())}
    run = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", str(media_dir() / "five_frames_720p.mp4")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr + (tmp_path / "logs" / "demo-serve.log").read_text()
    result = tmp_path / "results" / "job-1.json"
    assert f"result document: {result}" in run.stdout
    assert "Job 1: 5 frames of a 1280x720 video at 30.0 fps" in run.stdout
    assert "People were found in 5 of 5 frames" in run.stdout
    doc = json.loads(result.read_text())
    assert doc["schema"] == "pose-service/result@1" and len(doc["frames"]) == 5
    assert all(len(p["keypoints"]) == 33 for f in doc["frames"] for p in f["people"])
