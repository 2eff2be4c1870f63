"""A real long video end to end: the service's overhead over `pose-service run`, and peak memory.

The runner (../shared/media/runner_1080p.mp4, 180 frames at 30 fps) is looped with OpenCV into a
``--minutes`` long 1080p video (written once into a temporary directory), then processed twice, one
after the other on the same machine:

* ``pose-service run VIDEO --output FILE`` (the pipeline alone, in one process): wall time and peak RSS;
* through the service: a warm worker (real pose pipeline in its child) on a scratch database, the job
  submitted by SQL (``segment_s`` 0: one job, as ``run``), wall time from ``created_at`` to
  ``finished_at`` (database clock) and the peak RSS of the worker and of its child, sampled every
  100 ms; its rows in ``pose_frame_people`` are counted.

The service's overhead is (service wall − run's pipeline time) / run's pipeline time (``run``'s wall time
also pays for starting Python and loading the models, which a warm worker did before the job);
frames/s are the video's frames over those times. Memory is flat when the child's peak stays near ``run``'s although the
result is 18,000 frames (the service streams frames out as they are made).

    .venv/bin/python bench/real_video.py [--minutes 10] [--database-url URL] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402

from bench.queue_core import (  # noqa: E402
    DEFAULT_URL,
    fleet,
    listening_backends,
    pose_worker_cmd,
    scratch_database,
    wait_until,
)
from jobs.database import libpq_url, upgrade  # noqa: E402
from jobs.sample_media import media_dir  # noqa: E402
from worker.pipeline.blazepose.weights import default_model_dir  # noqa: E402

POSE = "worker.pipeline.pose:create"


def looped_video(source: Path, target: Path, minutes: float) -> int:
    """``source`` repeated (forwards, then backwards, so the motion never jumps) for ``minutes``."""
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    height, width = frames[0].shape[:2]
    total = int(round(minutes * 60 * fps))
    cycle = frames + frames[-2:0:-1]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(total):
        writer.write(cycle[i % len(cycle)])
    writer.release()
    return total


class PeakRss:
    """Samples the RSS of a process tree (the root and each child separately) until stopped."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.root = 0
        self.children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                proc = psutil.Process(self.pid)
                self.root = max(self.root, proc.memory_info().rss)
                kids = sum(c.memory_info().rss for c in proc.children(recursive=True))
                self.children = max(self.children, kids)
            except psutil.Error:
                pass
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_standalone(video: Path, out: Path) -> dict[str, Any]:
    started = time.monotonic()
    cmd = [sys.executable, "-m", "jobs.cli", "run", str(video), "--output", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = PeakRss(proc.pid)
    _, err = proc.communicate()
    peak.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"pose-service run failed: {err.decode(errors='replace')[-2000:]}")
    with open(out) as fh:
        pipeline_s = float(json.load(fh)["timings"]["total_s"])
    return {"wall_s": round(time.monotonic() - started, 2), "pipeline_s": round(pipeline_s, 2),
            "peak_rss_mib": round(max(peak.root, peak.children) / 2**20)}


def run_service(server_url: str, video: Path, log_dir: Path) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with scratch_database(server_url, "pose_real_bench") as url, fleet(log_dir) as fl:
        upgrade(url)
        dbname = urlsplit(url).path.lstrip("/")
        env = {"POSE_DATABASE_URL": url, "POSE_HOME": str(log_dir / "home"), "POSE_LOG_LEVEL": "INFO",
               "POSE_MODEL_DIR": str(default_model_dir())}
        worker = fl.start(pose_worker_cmd(POSE, "warm"), env, "worker")
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            wait_until(lambda: fl.log_contains("worker ready: claiming jobs"), 120, "the worker to start")
            wait_until(lambda: listening_backends(conn, dbname) >= 1, 20, "the worker to LISTEN")
            peak = PeakRss(worker.pid)
            (job_id,) = conn.execute("INSERT INTO pose_jobs (video_path, params) VALUES (%s, %s) RETURNING id",
                                     (str(video), json.dumps({"segment_s": 0}))).fetchone()

            def ended() -> bool:
                fl.check_alive()
                row = conn.execute("SELECT state FROM pose_jobs WHERE id = %s", (job_id,)).fetchone()
                return row[0] in ("succeeded", "failed", "cancelled")

            deadline = time.monotonic() + 7200
            while not ended():
                if fl.log_contains("pipeline child failed to start") or time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id} did not run; worker log:\n{fl.logs[0].read_text()[-3000:]}")
                time.sleep(0.5)
            peak.stop()
            row = conn.execute(
                "SELECT state, error_message, extract(epoch FROM finished_at - created_at), frames_done, "
                "(SELECT (document->'timings'->>'total_s')::float FROM pose_results WHERE job_id = j.id) "
                "FROM pose_jobs AS j WHERE id = %s", (job_id,)).fetchone()
            people = conn.execute("SELECT count(*) FROM pose_frame_people WHERE job_id = %s", (job_id,)).fetchone()[0]
    if row[0] != "succeeded":
        raise RuntimeError(f"job {job_id} {row[0]}: {row[1]}")
    return {"wall_s": round(float(row[2]), 2), "pipeline_s": round(float(row[4]), 2), "frames": row[3],
            "person_frames": people,
            "worker_peak_rss_mib": round(peak.root / 2**20), "child_peak_rss_mib": round(peak.children / 2**20)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pose-real-bench-") as tmp:
        video = Path(tmp) / "runner_looped.mp4"
        print(f"  writing a {args.minutes:g}-minute loop of the runner ...", flush=True)
        frames = looped_video(media_dir() / "runner_1080p.mp4", video, args.minutes)
        print("  pose-service run ...", flush=True)
        alone = run_standalone(video, Path(tmp) / "run.json")
        print("  through the service ...", flush=True)
        service = run_service(args.database_url, video, Path(tmp) / "service")
    # `run` pays for starting Python and loading the models, which a warm worker did before the job:
    # the fair comparison is the service's wall time against the pipeline's own time in `run`
    overhead = (service["wall_s"] - alone["pipeline_s"]) / alone["pipeline_s"]
    summary = {"video": {"frames": frames, "minutes": args.minutes, "size": "1920x1088"},
               "run": {**alone, "fps": round(frames / alone["pipeline_s"], 1)},
               "service": {**service, "fps": round(frames / service["wall_s"], 1)},
               "service_overhead_percent": round(100 * overhead, 1)}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
