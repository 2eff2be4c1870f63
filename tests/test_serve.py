"""`pose-service serve`: web app and workers in one process tree, driven over REST."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import FAKE_PIPELINE, MEDIA, REPO, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_web_and_workers_and_stops_them_all(database_url: str, tmp_path: Path):
    video = tmp_path / "clip.mp4"
    # not decoded by the fake pipeline, but the web accepts only real video containers
    video.write_bytes((MEDIA / "five_frames_720p.mp4").read_bytes())
    port = free_port()
    env = {**os.environ, "POSE_DATABASE_URL": database_url, "POSE_HOME": str(tmp_path / "home"),
           "POSE_MEDIA_ROOTS": str(tmp_path)}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    serve = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "serve", "--port", str(port), "--workers", "2",
         "--pipeline", FAKE_PIPELINE, "--poll-s", "0.5"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def ready() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 60, interval=0.2, what="serve to become ready")
            pool = wait_for(lambda: len((p := client.get("/v1/pool").json())["workers"]) == 2 and p, 30,
                            what="both workers to register")
            created = client.post("/v1/jobs", json={"video_path": str(video), "params": {"behave": "ok"}})
            assert created.status_code == 201, created.text
            job_id = created.json()["id"]
            done = wait_for(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["state"] == "succeeded" and j,
                            20, what="the job to succeed")
            assert done["progress"]["frames_done"] == 3
            assert len(client.get(f"/v1/jobs/{job_id}/result").json()["frames"]) == 3
        worker_pids = [int(w["pid"]) for w in pool["workers"]]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        for pid in worker_pids:
            wait_for(lambda p=pid: not Path(f"/proc/{p}").exists(), 10, what=f"worker {pid} to exit")
    finally:
        if serve.poll() is None:
            serve.kill()
        log.close()


def test_workers_stop_when_serve_is_killed(database_url: str, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "POSE_DATABASE_URL": database_url, "POSE_HOME": str(tmp_path / "home")}
    serve = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "serve", "--port", str(port), "--workers", "2",
         "--pipeline", FAKE_PIPELINE],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            def pool() -> list:
                try:
                    return client.get("/v1/pool").json()["workers"]
                except httpx.TransportError:
                    return []

            workers = wait_for(lambda: len(w := pool()) == 2 and w, 60, interval=0.2, what="two workers")
        serve.kill()  # no chance to stop its workers itself
        serve.wait()
        for pid in (int(w["pid"]) for w in workers):
            # PR_SET_PDEATHSIG sends them SIGTERM: they stop gracefully instead of running unsupervised
            wait_for(lambda p=pid: not Path(f"/proc/{p}").exists(), 15, what=f"orphaned worker {pid} to stop")
    finally:
        if serve.poll() is None:
            serve.kill()
