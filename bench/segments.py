"""Segmented runs: one long synthetic video through real workers, whole vs split, 1 vs W workers.

What is measured, and why (issue "results that scale", item 5):

* The same job (the synthetic pipeline, ``bench.synthetic_pipeline:create``: realistic pose data at
  its own speed, no video; params ``frames``, ``people``, ``fps``) is run four ways, one after the
  other on the same PostgreSQL, each in a fresh scratch database with fresh warm workers:
  ``whole`` (``segment_s`` 0: never split) on 1 worker (a whole job cannot use more than one, so
  that is the baseline), and split into segments of ``--segment-s`` on 1 worker and on
  ``--workers`` workers.
* Wall time is the job's ``finished_at - created_at`` (database clock). Speed-up = whole on 1 worker
  / split on W workers, measured in the same run. The per-segment overhead is what splitting costs
  on one worker: (split on 1 worker - whole on 1 worker) / segments; it includes the overlap frames,
  each segment's claim, and the stitch (timed separately: the parent's last attempt, from the event log).
* This machine's cores bound the speed-up (the synthetic pipeline, the workers' frame writers and
  PostgreSQL share them, and the synthetic pipeline is so fast that storing the rows is the work);
  "on paper" takes a real pipeline's speed (``--pipeline-fps``, the pose pipeline's 72.5 frames/s on
  this CPU by default), divides the whole video's time by N hosts and adds the measured per-segment
  overhead and stitch, which is what N GPU hosts, each running its own pipeline, would see while the
  database keeps up.

    .venv/bin/python bench/segments.py [--frames 36000] [--people 4] [--fps 60] [--segment-s 60]
                                       [--workers 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
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


def run_once(server_url: str, workers: int, params: dict[str, Any], log_dir: Path, timeout_s: float) -> dict[str, Any]:
    """One job through ``workers`` fresh warm workers on a scratch database: wall and stitch time."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with scratch_database(server_url, "pose_seg_bench") as url, fleet(log_dir) as fl:
        upgrade(url)
        dbname = urlsplit(url).path.lstrip("/")
        env = {"POSE_DATABASE_URL": url, "POSE_HOME": str(log_dir / "home"), "POSE_LOG_LEVEL": "INFO"}
        for _ in range(workers):
            fl.start(pose_worker_cmd(SYNTHETIC, "warm", ["--timeout-s", str(timeout_s)]), env, "worker")
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            wait_until(lambda: fl.log_contains("worker ready: claiming jobs"), 60, "workers to start")
            wait_until(lambda: listening_backends(conn, dbname) >= workers, 20, "workers to LISTEN")
            (job_id,) = conn.execute("INSERT INTO pose_jobs (video_path, params) VALUES ('/bench/synthetic.mp4', %s) "
                                     "RETURNING id", (json.dumps(params),)).fetchone()

            def ended() -> bool:
                fl.check_alive()
                row = conn.execute("SELECT state FROM pose_jobs WHERE id = %s", (job_id,)).fetchone()
                return row is not None and row[0] in ("succeeded", "failed", "cancelled")

            wait_until(ended, timeout_s, f"job {job_id}", interval=0.2)
            row = conn.execute(
                """SELECT state, error_message, extract(epoch FROM finished_at - created_at),
                          (SELECT extract(epoch FROM max(e.at) FILTER (WHERE e.to_state = 'succeeded')
                                                 - max(e.at) FILTER (WHERE e.to_state = 'running'))
                           FROM pose_job_events AS e WHERE e.job_id = j.id),
                          segment_count, frames_done,
                          (SELECT count(DISTINCT worker_id) FROM pose_job_events e
                           WHERE e.job_id IN (SELECT id FROM pose_jobs WHERE parent_id = j.id OR id = j.id)
                             AND e.to_state = 'running')
                   FROM pose_jobs AS j WHERE id = %s""", (job_id,)).fetchone()
            people = conn.execute("SELECT count(*) FROM pose_frame_people WHERE job_id = %s", (job_id,)).fetchone()[0]
    if row[0] != "succeeded":
        raise RuntimeError(f"job {job_id} {row[0]}: {row[1]}")
    # the last attempt's span from the event log: for a split job, its stitch
    return {"wall_s": round(float(row[2]), 3), "last_attempt_s": round(float(row[3]), 3),
            "segments": row[4] or 0, "frames": row[5], "person_frames": people, "workers_used": row[6]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=36_000, help="frames of the synthetic video (36,000: 10 min)")
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--segment-s", type=int, default=60, help="segment length of the split runs")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument("--pipeline-fps", type=float, default=72.5,
                        help="a real pipeline's frames/s for the on-paper estimate (72.5: the pose pipeline on this "
                             "CPU, README Benchmarks)")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    base = {"frames": args.frames, "people": args.people, "fps": args.fps}
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pose-seg-bench-") as tmp:
        for name, workers, segment_s in (("whole_1", 1, 0), ("split_1", 1, args.segment_s),
                                         (f"split_{args.workers}", args.workers, args.segment_s)):
            print(f"  {name}: {workers} worker(s), segment_s {segment_s} ...", flush=True)
            started = time.monotonic()
            runs[name] = run_once(args.database_url, workers, {**base, "segment_s": segment_s},
                                  Path(tmp) / name, args.timeout_s)
            runs[name]["bench_wall_s"] = round(time.monotonic() - started, 1)
    whole, split1, splitw = runs["whole_1"], runs["split_1"], runs[f"split_{args.workers}"]
    segments = split1["segments"]
    overhead = (split1["wall_s"] - whole["wall_s"]) / max(1, segments)
    stitch = split1["last_attempt_s"]
    paper = args.frames / args.pipeline_fps  # the whole video through one real pipeline
    summary = {
        "video": {**base, "duration_s": round(args.frames / args.fps, 1), "segment_s": args.segment_s},
        "runs": runs,
        "speedup_split_w_vs_whole_1": round(whole["wall_s"] / splitw["wall_s"], 2),
        "per_segment_overhead_s": round(overhead, 3),
        "stitch_s": stitch,
        "on_paper": {str(n): round(paper / (paper / n + overhead * segments / n + stitch), 2) for n in (2, 4, 8, 16)},
    }
    print(f"\nsynthetic video: {args.frames} frames, {args.people} people, {args.fps} fps "
          f"({args.frames / args.fps:.0f} s); segments of {args.segment_s} s -> {segments} segments")
    print(f"{'run':<12} {'workers used':>12} {'wall s':>9} {'person-frames':>14}")
    for name, run in runs.items():
        print(f"{name:<12} {run['workers_used']:>12} {run['wall_s']:>9.2f} {run['person_frames']:>14}")
    print(f"speed-up, split on {args.workers} workers vs whole on 1: {summary['speedup_split_w_vs_whole_1']}x; "
          f"per-segment overhead {overhead:.3f} s; stitch {stitch:.2f} s")
    print(f"on paper, N hosts each running a real pipeline at {args.pipeline_fps:g} frames/s "
          "(whole / (whole/N + overheads/N + stitch)): "
          + ", ".join(f"N={n}: {v}x" for n, v in summary["on_paper"].items()))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
