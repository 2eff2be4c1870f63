"""The automatic sport analysis through the service: how long an analysis job takes beside its pose job.

One warm worker (synthetic pipeline: realistic poses, no video) on a scratch database runs a pose job
of ``--frames`` frames × ``--people`` people and then the analysis job its success queues (migration
0011); from the event log, each job's last attempt (running → succeeded) and the analysis job's time per
1,000 person-frames, which includes staging the keypoints out of PostgreSQL a track at a time, the
analysis child's work and storing the series. The first analysis job also starts the worker's
analysis child (numpy and scipy, no model): ``--runs`` more pose jobs show the warm cost.

Usage: .venv/bin/python bench/analysis_service.py [--frames 3600] [--people 2] [--fps 60] [--runs 3]
(POSE_TEST_DATABASE_URL / POSE_DATABASE_URL, else the embedded server.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(REPO))

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

SYNTHETIC = "bench.synthetic_pipeline:create"
LAST_ATTEMPT = """
SELECT extract(epoch FROM max(at) FILTER (WHERE to_state = 'succeeded') - max(at) FILTER (WHERE to_state = 'running'))
FROM pose_job_events WHERE job_id = %s"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=3600)
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--logs", help="keep the worker's log in this directory")
    args = parser.parse_args(argv)
    params = {"frames": args.frames, "people": args.people, "fps": args.fps, "segment_s": 0}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pose-analysis-bench-") as tmp, \
            scratch_database(args.url, "pose_analysis_bench") as url, fleet(Path(args.logs or tmp)) as fl:
        upgrade(url)
        env = {"POSE_DATABASE_URL": url, "POSE_HOME": str(Path(tmp) / "home"), "POSE_LOG_LEVEL": "INFO"}
        fl.start(pose_worker_cmd(SYNTHETIC, "warm"), env, "worker")
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            wait_until(lambda: fl.log_contains("worker ready: claiming jobs"), 60, "the worker to start")
            wait_until(lambda: listening_backends(conn, urlsplit(url).path.lstrip("/")) >= 1, 20, "LISTEN")
            for run in range(args.runs):
                (pose,) = conn.execute("INSERT INTO pose_jobs (video_path, params) VALUES ('/bench/s.mp4', %s) "
                                       "RETURNING id", (json.dumps(params),)).fetchone()  # type: ignore[misc]

                def analysed(pose: int = pose) -> Any:
                    fl.check_alive()
                    failed = conn.execute("SELECT error_message FROM pose_jobs WHERE id = %s AND state = 'failed'",
                                          (pose,)).fetchone()
                    if failed is not None:
                        raise RuntimeError(f"pose job {pose} failed: {failed[0]}")
                    return conn.execute("SELECT id, state, error_message FROM pose_jobs WHERE source_job_id = %s "
                                        "AND state IN ('succeeded', 'failed')", (pose,)).fetchone()

                analysis, state, error = wait_until(analysed, 600, f"the analysis of job {pose}", interval=0.1)
                if state != "succeeded":
                    raise RuntimeError(f"analysis job {analysis} failed: {error}")
                person_frames = conn.execute("SELECT count(*) FROM pose_frame_people WHERE job_id = %s AND "
                                             "track_id IS NOT NULL", (pose,)).fetchone()[0]  # type: ignore[index]
                values = conn.execute("SELECT count(*) FROM pose_frame_angles WHERE analysis_id = (SELECT id FROM "
                                      "pose_analyses WHERE job_id = %s)", (analysis,)).fetchone()[0]  # type: ignore[index]
                pose_s = float(conn.execute(LAST_ATTEMPT, (pose,)).fetchone()[0])  # type: ignore[index]
                analysis_s = float(conn.execute(LAST_ATTEMPT, (analysis,)).fetchone()[0])  # type: ignore[index]
                runs.append({"run": run + 1, "person_frames": person_frames, "pose_job_s": round(pose_s, 3),
                             "analysis_job_s": round(analysis_s, 3),
                             "analysis_ms_per_1000_person_frames": round(1000 * analysis_s / person_frames * 1000, 1),
                             "angle_values_stored": values})
                print(json.dumps(runs[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
