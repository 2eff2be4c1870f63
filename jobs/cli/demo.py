"""`pose-service demo [VIDEO]`: the whole service end to end on one machine, for `make demo`.

Starts `pose-service serve` (embedded PostgreSQL unless POSE_DATABASE_URL is set, the web app and a
worker), submits the video over REST, shows progress, saves the result and prints a summary, then
shuts everything down.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jobs.cli.common import add_setting_flags, settings_from
from jobs.cli.progress import follow_job
from jobs.sample_media import media_dir

DEFAULT_VIDEO = media_dir() / "runner_1080p.mp4"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("demo", help="run the service end to end on one video and summarise the result")
    p.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    p.add_argument("--timeout-s", type=float, default=1800.0)
    add_setting_flags(p)
    p.set_defaults(func=run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summarise(doc: dict[str, Any], job: dict[str, Any]) -> str:
    frames = doc.get("frames", [])
    people = [len(f.get("people", [])) for f in frames]
    tracks = {p["track_id"] for f in frames for p in f.get("people", [])}
    with_person = sum(1 for n in people if n)
    video = doc.get("video", {})
    timings = doc.get("timings", {})
    model = doc.get("model", {})
    run_s = (job.get("timings") or {}).get("run_s")
    fps = len(frames) / timings["total_s"] if timings.get("total_s") else None
    speed = f" ({fps:.1f} frames/s)" if fps else ""
    return (
        f"Job {job['id']}: {len(frames)} frames of a {video.get('width')}x{video.get('height')} video at "
        f"{video.get('fps')} fps ({video.get('duration_s')} s). People were found in {with_person} of "
        f"{len(frames)} frames, at most {max(people, default=0)} at once, in {len(tracks)} track(s). "
        f"Model {model.get('name')} on {model.get('device')}: pipeline {timings.get('total_s', 0):.2f} s{speed}, "
        f"job run time {run_s} s."
    )


def run(args: argparse.Namespace) -> int:
    import httpx

    settings = settings_from(args)
    video = Path(args.video).expanduser().resolve()
    if not video.is_file():
        print(f"pose-service demo: no such video: {video}", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "POSE_MEDIA_ROOTS": str(video.parent), "POSE_HOME": str(settings.home)}
    if settings.database_url:
        env["POSE_DATABASE_URL"] = settings.database_url
    log_path = settings.home / "logs" / "demo-serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"starting pose-service (embedded PostgreSQL unless POSE_DATABASE_URL is set, web + 1 worker) "
          f"on {base}; its log: {log_path}", flush=True)
    # an embedded server this demo starts is stopped at the end (`pose-service db url` restarts it)
    from jobs.embedded_postgres import embedded_status, stop_embedded

    started_embedded = not settings.database_url and not embedded_status(settings.home).running
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed in the finally below
    serve = subprocess.Popen([sys.executable, "-m", "jobs.cli", "serve", "--port", str(port), "--workers", "1"],
                             env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 300
            while True:
                if serve.poll() is not None:
                    print(f"pose-service serve exited during start-up; see {log_path}", file=sys.stderr)
                    return 1
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    print("pose-service did not become ready in 300 s", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            resp = client.post("/v1/jobs", json={"video_path": str(video)})
            resp.raise_for_status()
            job = resp.json()
            print(f"submitted {video.name} as job {job['id']}", flush=True)
            job_id = job["id"]
            job = follow_job(lambda: client.get(f"/v1/jobs/{job_id}").json(), timeout_s=args.timeout_s)
            if job["state"] != "succeeded":
                print(f"job {job['id']} ended {job['state']}: {job.get('error')}", file=sys.stderr)
                return 1
            doc = client.get(f"/v1/jobs/{job['id']}/result").json()
        out = settings.home / "results" / f"job-{job['id']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc))
        print(f"result document: {out}")
        print(f"and in PostgreSQL: SELECT document FROM pose_results WHERE job_id = {job['id']}; "
              "(`pose-service db url` prints the DSN for psql)")
        print(summarise(doc, job))
        return 0
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
        log_file.close()
        if started_embedded and stop_embedded(settings.home):
            print("stopped the embedded PostgreSQL this demo started (`pose-service db url` starts it again)")
