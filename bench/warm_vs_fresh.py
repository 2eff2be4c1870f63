"""Per-job overhead of the worker's ``warm`` and ``fresh`` modes, on a real video with the real pipeline.

What is measured, and why: a ``warm`` worker keeps one pipeline child (torch and both models loaded)
for many jobs; a ``fresh`` worker starts a new child for every job, so each job also pays for
starting Python, importing torch and loading the models. This script puts a number on both.

For each mode, one real worker daemon (``python -m jobs.cli worker --mode MODE``) runs on a scratch
database; after one unmeasured warm-up job, M jobs on the same video are submitted one at a time with
the minimal INSERT, each waited for before the next. From each row (database clock):

* ``run``      = ``finished_at - attempt_started_at``: claim to recorded result, as the worker sees it;
* ``pipeline`` = the result document's own ``timings.total_s`` (decode + inference inside the child);
* ``overhead`` = run - pipeline: everything the service adds around the pipeline (child spawn and
  model load in fresh mode, the request/result round trip, writing and storing the document);
* ``end-to-end`` = ``finished_at - created_at`` (adds the pickup latency), and its overhead likewise.

Goal: warm overhead < 50 ms per job. The ratio fresh/warm is printed for run time and overhead.

    .venv/bin/python bench/warm_vs_fresh.py [--jobs 10] [--video PATH] [--pipeline module:factory]

Writes bench/results/warm_vs_fresh.json. The worker and the scratch database are removed on exit,
on an error and on Ctrl-C/SIGTERM. ``--pipeline bench.noop_pipeline:create`` measures the service
alone (its documents carry no timings, so pipeline time counts as 0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
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
    BENCH_APP,
    DEFAULT_URL,
    fleet,
    libpq_url,
    pose_worker_cmd,
    scratch_database,
    summary_ms,
    wait_until,
)
from jobs.sample_media import media_dir  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEFAULT_VIDEO = media_dir() / "five_frames_720p.mp4"
DEFAULT_PIPELINE = "worker.pipeline.pose:create"
MODES = ("warm", "fresh")


def default_model_dir() -> str:
    """The weights directory the pipeline would use here (the worker gets its own POSE_HOME)."""
    from worker.pipeline.blazepose.weights import default_model_dir as resolve

    return str(resolve())


def run_job(conn: psycopg.Connection, video: str, timeout: float) -> dict[str, Any]:
    """Submit one job, wait for it, return its timings (DB clock) and the pipeline's own total_s."""
    (job_id,) = conn.execute(
        "INSERT INTO pose_jobs (video_path) VALUES (%s) RETURNING id", (video,)
    ).fetchone()

    def finished() -> bool:
        row = conn.execute(
            "SELECT finished_at IS NOT NULL FROM pose_jobs WHERE id = %s", (job_id,)
        ).fetchone()
        return bool(row[0])

    wait_until(finished, timeout, f"job {job_id} to finish", interval=0.002)
    row = conn.execute(
        """
        SELECT j.state, j.error_kind, j.error_message,
               extract(epoch FROM j.finished_at - j.attempt_started_at),
               extract(epoch FROM j.finished_at - j.created_at),
               extract(epoch FROM j.started_at - j.created_at),
               CAST(r.document #>> '{timings,total_s}' AS double precision),
               jsonb_array_length(COALESCE(r.document -> 'frames', '[]'::jsonb)),
               octet_length(r.document::text)
        FROM pose_jobs AS j LEFT JOIN pose_results AS r ON r.job_id = j.id
        WHERE j.id = %s
        """,
        (job_id,),
    ).fetchone()
    state, kind, message, run_s, e2e_s, pickup_s, total_s, frames, doc_bytes = row
    if state != "succeeded":
        raise RuntimeError(f"job {job_id} ended {state} ({kind}): {message}")
    pipeline_s = float(total_s) if total_s is not None else 0.0
    return {
        "job_id": int(job_id),
        "run_s": float(run_s),
        "end_to_end_s": float(e2e_s),
        "pickup_s": float(pickup_s),
        "pipeline_s": pipeline_s,
        "overhead_s": float(run_s) - pipeline_s,
        "end_to_end_overhead_s": float(e2e_s) - pipeline_s,
        "frames": int(frames or 0),
        "document_bytes": int(doc_bytes or 0),
    }


def run_mode(mode: str, url: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """One worker in ``mode``: a warm-up job, then ``args.jobs`` measured jobs, one at a time."""
    env = {
        "POSE_DATABASE_URL": url,
        "POSE_HOME": str(log_dir / "pose-home"),
        "POSE_MODEL_DIR": args.model_dir,
        "POSE_LOG_LEVEL": "INFO",
    }
    dbname = urlsplit(url).path.lstrip("/")
    with (
        fleet(log_dir) as workers,
        psycopg.connect(libpq_url(url), autocommit=True, application_name=BENCH_APP) as conn,
    ):
        started = time.monotonic()
        workers.start(pose_worker_cmd(args.pipeline, mode), env, f"worker-{mode}")
        wait_until(lambda: workers.log_contains("worker ready: claiming jobs"), 600, f"the {mode} worker")
        ready_s = time.monotonic() - started
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'LISTEN%%'",
                    (dbname,),
                ).fetchone()[0]
                >= 1
            ),
            20,
            "the worker to LISTEN",
        )
        warmup = [run_job(conn, args.video, args.job_timeout) for _ in range(args.warmup)]
        jobs = []
        for i in range(args.jobs):
            time.sleep(args.gap_ms / 1000)
            jobs.append(run_job(conn, args.video, args.job_timeout))
            j = jobs[-1]
            print(
                f"  {mode} job {i + 1}/{args.jobs}: run {j['run_s'] * 1000:.1f} ms, pipeline "
                f"{j['pipeline_s'] * 1000:.1f} ms, overhead {j['overhead_s'] * 1000:.1f} ms",
                flush=True,
            )
        workers.check_alive()
    return {
        "worker_ready_s": round(ready_s, 3),
        "warmup_jobs": warmup,
        "jobs": jobs,
        "summary": {
            key: summary_ms([j[f"{key}_s"] for j in jobs])
            for key in ("run", "pipeline", "overhead", "end_to_end", "end_to_end_overhead", "pickup")
        },
    }


def report(results: dict[str, Any], recycle_after: int) -> dict[str, Any]:
    cols = ("run", "pipeline", "overhead", "end_to_end", "end_to_end_overhead", "pickup")
    rows = [("mode", *(f"{c} p50 ms" for c in cols), "overhead p95 ms")]
    for mode in MODES:
        if mode in results:
            s = results[mode]["summary"]
            rows.append((mode, *(f"{s[c]['p50_ms']:.1f}" for c in cols), f"{s['overhead']['p95_ms']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for r in rows:
        print(
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    out: dict[str, Any] = {}
    if "warm" in results:
        warm_overhead = results["warm"]["summary"]["overhead"]["p50_ms"]
        out["warm_overhead_p50_ms"] = warm_overhead
        out["goal_warm_overhead_below_50ms"] = warm_overhead < 50.0
    if "warm" in results and "fresh" in results:
        w, f = results["warm"]["summary"], results["fresh"]["summary"]
        out["fresh_over_warm_run_p50"] = round(f["run"]["p50_ms"] / w["run"]["p50_ms"], 2)
        out["fresh_over_warm_overhead_p50"] = round(
            f["overhead"]["p50_ms"] / max(w["overhead"]["p50_ms"], 1e-6), 2
        )
        out["fresh_over_warm_end_to_end_p50"] = round(
            f["end_to_end"]["p50_ms"] / w["end_to_end"]["p50_ms"], 2
        )
        # what a child's life cycle costs (start python, import torch, load the models, exit): the worker
        # starts the next child before it claims, so it shows in the end-to-end time of jobs submitted
        # one after another, not in a job's run time; and what a warm worker pays for it on average when
        # it recycles its child every ``recycle_after`` jobs
        cycle_ms = f["end_to_end"]["p50_ms"] - w["end_to_end"]["p50_ms"]
        out["child_cycle_ms"] = round(cycle_ms, 1)
        out["warm_recycle_amortized_ms_per_job"] = round(cycle_ms / recycle_after, 2)
        print(
            f"\nfresh / warm: run time {out['fresh_over_warm_run_p50']:.2f}x, overhead "
            f"{out['fresh_over_warm_overhead_p50']:.1f}x, "
            f"end-to-end {out['fresh_over_warm_end_to_end_p50']:.2f}x"
        )
        print(
            f"a child's start + model load + exit costs ~{cycle_ms:.0f} ms between jobs; "
            f"a warm worker recycling its child every {recycle_after} jobs pays "
            f"~{out['warm_recycle_amortized_ms_per_job']:.1f} ms/job on average"
        )
    if "warm_overhead_p50_ms" in out:
        print(
            f"warm overhead p50 {out['warm_overhead_p50_ms']:.1f} ms (goal < 50 ms): "
            f"{'met' if out['goal_warm_overhead_below_50ms'] else 'NOT met'}"
        )
    return out


def _sigterm_as_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=10, help="measured jobs per mode")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured jobs first, per mode")
    p.add_argument("--video", default=str(DEFAULT_VIDEO))
    p.add_argument("--pipeline", default=DEFAULT_PIPELINE, help="module:factory the worker's child runs")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of warm,fresh")
    p.add_argument("--gap-ms", type=float, default=50.0, help="idle gap before each job")
    p.add_argument("--job-timeout", type=float, default=300.0)
    p.add_argument(
        "--model-dir",
        default=os.environ.get("POSE_MODEL_DIR") or None,
        help="weights directory (default: what the pipeline resolves here)",
    )
    p.add_argument(
        "--recycle-after",
        type=int,
        default=1000,
        help="the workers' recycle_after, for the amortised cost line (default 1000, the setting's)",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("POSE_BENCH_DATABASE_URL", DEFAULT_URL),
        help="server to create the scratch database on (env POSE_BENCH_DATABASE_URL)",
    )
    p.add_argument("--output", type=Path, default=RESULTS / "warm_vs_fresh.json")
    p.add_argument("--keep-logs", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.video = str(Path(args.video).resolve())
    args.model_dir = args.model_dir or default_model_dir()
    modes = [m for m in args.modes.split(",") if m]
    if not set(modes) <= set(MODES):
        raise SystemExit(f"--modes must be a subset of {','.join(MODES)}")
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`&`)
    log_root = Path(tempfile.mkdtemp(prefix="warm-vs-fresh-bench-"))
    ok = False
    try:
        print(
            f"warm_vs_fresh: {args.pipeline} on {args.video}, {args.jobs} jobs per mode, "
            f"{os.cpu_count()} CPUs"
        )
        results: dict[str, Any] = {}
        with scratch_database(args.database_url, "pose_wvf") as url:
            from jobs.database import upgrade

            upgrade(url)
            for mode in modes:
                print(f"{mode}:", flush=True)
                log_dir = log_root / mode
                log_dir.mkdir()
                results[mode] = run_mode(mode, url, args, log_dir)
        derived = report(results, args.recycle_after)
        document = {
            "benchmark": "warm_vs_fresh",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "config": {
                "jobs": args.jobs,
                "warmup": args.warmup,
                "video": args.video,
                "pipeline": args.pipeline,
                "gap_ms": args.gap_ms,
                "modes": modes,
            },
            "environment": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
            },
            "results": results,
            "derived": derived,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.output}")
        ok = True
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; worker stopped and scratch database dropped", file=sys.stderr)
        return 130
    finally:
        if args.keep_logs or not ok:
            print(f"worker logs: {log_root}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(log_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
