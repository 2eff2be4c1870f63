"""Retention vs claims: how much a purge of expired per-frame rows slows the claim statement, and what
dropping partitions saves against deleting rows.

One run, one scratch database (migrated to head), three purges of the same amount of expired rows
(``--jobs`` jobs that ended 30 days ago × ``--frames`` frames × ``--people`` people, BlazePose-sized
rows, with retention 7 days), each measured against a baseline taken just before it:

- ``drop``: the jobs fill partitions of their own; the retention duty's pass (jobs/retention.py,
  ``RetentionDuty.run_once``) drops them;
- ``batched``: the jobs share a partition with a job still running, so the pass cannot drop it and
  deletes the rows a job at a time in short transactions of ``DELETE_BATCH_ROWS`` rows (what
  retention does with rows no drop can take, and what it would do for all rows without partitions);
- ``single``: one plain ``DELETE`` statement of the same rows.

Meanwhile a claimer thread runs ``JobStore.claim`` (the ``claim_job`` statement) every
``--claim-every-ms`` against a queue of jobs, and the claim latencies are reported for a baseline
window before the purge, during the purge, and for ``--after-s`` after it ended (autovacuum cleaning
up after a DELETE falls there), with the ratios to the baseline; and the purge's time and WAL.

Usage: .venv/bin/python bench/retention_claims.py [--jobs 800] [--frames 2500] [--people 2]
       [--scenarios drop,batched,single] [--json OUT]
(POSE_TEST_DATABASE_URL or POSE_DATABASE_URL names the server; else the embedded one.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.frame_storage import server_url, with_db  # noqa: E402
from jobs.database import upgrade  # noqa: E402
from jobs.retention import DELETE_BATCH_ROWS, RetentionDuty  # noqa: E402
from jobs.store import JobStore  # noqa: E402

QUEUE = 200_000  # jobs to claim from; more than any run takes
BASES = {"drop": 10_000_000, "batched": 20_000_000, "single": 30_000_000}  # each scenario's job ids


class Claimer(threading.Thread):
    """Claims one job every ``every_s`` and records (when, seconds) per claim."""

    def __init__(self, store: JobStore, every_s: float) -> None:
        super().__init__(daemon=True, name="claimer")
        self.store, self.every_s = store, every_s
        self.samples: list[tuple[float, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        next_at = time.perf_counter()
        while not self.stopping.is_set():
            t0 = time.perf_counter()
            job = self.store.claim("bench-claimer", 3600)
            self.samples.append((t0, time.perf_counter() - t0))
            assert job is not None, "the claim queue ran dry: raise QUEUE"
            next_at = max(next_at + self.every_s, time.perf_counter())
            self.stopping.wait(max(0.0, next_at - time.perf_counter()))

    def window(self, start: float, end: float) -> list[float]:
        return [latency for at, latency in list(self.samples) if start <= at < end]


def stats(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"n": 0}
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50_ms": 1e3 * statistics.median(ordered),
            "p95_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max_ms": 1e3 * ordered[-1]}


def populate(url: str, scenario: str, jobs: int, frames: int, people: int, partition_jobs: int) -> None:
    """``jobs`` succeeded jobs that ended 30 days ago, with their rows and result summaries, at ids
    BASES[scenario]...; partitions of ``partition_jobs`` ids over them; for ``batched`` one more job,
    running, in the last partition; and a job above them all, so the ranges count as used up."""
    base = BASES[scenario]
    extra = 1 if scenario == "batched" else 0  # the running job, in the one partition of them all
    width = jobs + extra if scenario == "batched" else partition_jobs
    with psycopg.connect(url, autocommit=True) as conn:
        for lo in range(base, base + jobs + extra, width):
            conn.execute("SELECT pose_frame_rows_add_partition(%s, %s)", (lo, min(lo + width, base + jobs + extra)))
        conn.execute("INSERT INTO pose_jobs (id, video_path, state, attempt, started_at, finished_at, frames_done) "
                     "OVERRIDING SYSTEM VALUE SELECT g, '/bench/v.mp4', 'succeeded', 1, now() - interval '30 days', "
                     "now() - interval '30 days', %s FROM generate_series(%s, %s) AS g",
                     (frames, base, base + jobs - 1))
        conn.execute("INSERT INTO pose_results (job_id, document, tracks) SELECT g, '{}', '[]' "
                     "FROM generate_series(%s, %s) AS g", (base, base + jobs - 1))
        if extra:
            conn.execute("INSERT INTO pose_jobs (id, video_path, state, attempt, started_at, worker_id, "
                         "lease_expires_at) OVERRIDING SYSTEM VALUE VALUES (%s, '/bench/v.mp4', 'running', 1, now(), "
                         "'bench-other', now() + interval '1 day')", (base + jobs,))
        conn.execute("INSERT INTO pose_jobs (id, video_path, state, finished_at) OVERRIDING SYSTEM VALUE "
                     "VALUES (%s, '/bench/v.mp4', 'cancelled', now() - interval '30 days')", (base + jobs + extra,))
        step = 25
        for first in range(base, base + jobs, step):
            conn.execute(
                "INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s, track_id, score, bbox, keypoints, "
                "world) SELECT j, 1, f, f / 30.0, t, 0.9, ARRAY[100.5, 50.25, 300.75, 700.5]::real[], "
                "array_fill(CAST(f AS real) + 0.5, ARRAY[165]), array_fill(CAST(j AS real) / 7, ARRAY[99]) "
                "FROM generate_series(%s, %s) AS j, generate_series(0, %s) AS f, generate_series(1, %s) AS t",
                (first, min(first + step, base + jobs) - 1, frames - 1, people))
        conn.execute("VACUUM (ANALYZE) pose_frame_rows")
        conn.execute("VACUUM (ANALYZE) pose_jobs")


def wal_lsn(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])


def checkpoint(url: str) -> None:
    # not a superuser: no CHECKPOINT, and the purges share the checkpointer's timing
    with psycopg.connect(url, autocommit=True) as conn, contextlib.suppress(psycopg.Error):
        conn.execute("CHECKPOINT")


def measure(url: str, claimer: Claimer, purge: Callable[[], Any], baseline_s: float, after_s: float
            ) -> dict[str, Any]:
    checkpoint(url)
    time.sleep(2.0)
    t_base = time.perf_counter()
    time.sleep(baseline_s)
    lsn0, t0 = wal_lsn(url), time.perf_counter()
    outcome = purge()
    t1 = time.perf_counter()
    wal = wal_lsn(url) - lsn0
    time.sleep(after_s)
    t2 = time.perf_counter()
    base = stats(claimer.window(t_base, t0))
    during = stats(claimer.window(t0, t1))
    after = stats(claimer.window(t1, t2))
    ratios = {f"{window}_{k}": round(s[k] / base[k], 2) for window, s in (("during", during), ("after", after))
              for k in ("p50_ms", "p95_ms", "max_ms") if s.get("n") and base.get("n")}
    return {"purge_s": t1 - t0, "wal_mb": wal / 1e6, "baseline": base, "during": during, "after": after,
            "ratios": ratios, "outcome": outcome}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--frames", type=int, default=2500)
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--partition-jobs", type=int, default=100, help="jobs per partition (drop scenario)")
    parser.add_argument("--scenarios", default="drop,batched,single")
    parser.add_argument("--claim-every-ms", type=float, default=10.0)
    parser.add_argument("--baseline-s", type=float, default=15.0)
    parser.add_argument("--after-s", type=float, default=15.0)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    rows = args.jobs * args.frames * args.people
    server = server_url()
    name = f"pose_bench_retention_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    results: dict[str, Any] = {"rows": rows, "jobs": args.jobs, "frames": args.frames, "people": args.people}
    try:
        url = with_db(server, name)
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO pose_jobs (video_path) SELECT '/bench/q.mp4' FROM generate_series(1, %s)",
                         (QUEUE,))
            conn.execute("VACUUM (ANALYZE) pose_jobs")
        store = JobStore.connect(url, pool_size=2)
        claimer = Claimer(store, args.claim_every_ms / 1e3)
        claimer.start()
        try:
            for scenario in scenarios:
                t = time.perf_counter()
                populate(url, scenario, args.jobs, args.frames, args.people, args.partition_jobs)
                RetentionDuty(store, None).run_once()  # partitions ahead now, not inside the measured pass
                print(f"{scenario}: {rows:,} rows of {args.jobs} expired jobs written in "
                      f"{time.perf_counter() - t:.0f} s", flush=True)
                if scenario == "single":
                    lo, hi = BASES["single"], BASES["single"] + args.jobs

                    def purge(lo: int = lo, hi: int = hi) -> Any:
                        with psycopg.connect(url, autocommit=True) as conn:
                            return conn.execute("DELETE FROM pose_frame_rows WHERE job_id >= %s AND job_id < %s",
                                                (lo, hi)).rowcount
                else:
                    def purge() -> Any:
                        done = RetentionDuty(store, 7).run_once()
                        return {"dropped": len(done.partitions_dropped), "rows_deleted": done.rows_deleted}
                results[scenario] = measure(url, claimer, purge, args.baseline_s, args.after_s)
                with psycopg.connect(url, autocommit=True) as conn:
                    left = conn.execute("SELECT count(*) FROM pose_frame_rows WHERE job_id >= %s AND job_id < %s",
                                        (BASES[scenario], BASES[scenario] + args.jobs)).fetchone()[0]
                assert left == 0, f"{scenario}: {left} rows left"
                report(scenario, results[scenario])
        finally:
            claimer.stopping.set()
            claimer.join(5)
            store.close()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def report(scenario: str, r: dict[str, Any]) -> None:
    def line(s: dict[str, float]) -> str:
        if not s.get("n"):
            return "no claims"
        return f"p50 {s['p50_ms']:.2f} ms, p95 {s['p95_ms']:.2f} ms, max {s['max_ms']:.1f} ms ({s['n']} claims)"

    how = {"drop": "partition drops (RetentionDuty)", "batched": f"DELETE in batches of {DELETE_BATCH_ROWS} "
           "(RetentionDuty)", "single": "one plain DELETE statement"}[scenario]
    print(f"  purge by {how}: {r['purge_s']:.2f} s, {r['wal_mb']:.1f} MB of WAL ({r['outcome']})")
    print(f"  claims before : {line(r['baseline'])}")
    print(f"  claims during : {line(r['during'])}")
    print(f"  claims after  : {line(r['after'])}")
    print(f"  ratios to before: {r['ratios']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
