"""Peak memory (RSS) of a worker daemon and its pipeline child over jobs of growing length: with frames
streamed out of the child and COPYed while the job runs, neither should grow with the video.

Runs ``pose-service worker`` with the streaming test pipeline (tests/fake_pipelines.py
``create_streaming``: result@1 frames of BlazePose size, emitted one by one, no video decoded) on a
migrated scratch database, submits one job per ``--frames`` value and samples both processes' RSS
every 50 ms until the job ends.

Usage: .venv/bin/python bench/worker_memory.py [--frames 2000,20000] [--people 2]
(POSE_TEST_DATABASE_URL or POSE_DATABASE_URL names the server; else the embedded one.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.frame_storage import server_url, with_db  # noqa: E402
from jobs.database import upgrade  # noqa: E402
from jobs.store import JobStore  # noqa: E402


def rss(pid: int) -> int:
    """A process's resident set in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """A process's direct children (Linux)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="2000,20000", help="comma-separated job lengths")
    parser.add_argument("--people", type=int, default=2)
    args = parser.parse_args()
    server = server_url()
    name = f"pose_bench_memory_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_db(server, name)
        upgrade(url)
        store = JobStore.connect(url, pool_size=1)
        with tempfile.TemporaryDirectory() as home:
            worker = subprocess.Popen(
                [sys.executable, "-m", "jobs.cli", "worker", "--pipeline", "tests.fake_pipelines:create_streaming"],
                cwd=REPO, env={**os.environ, "POSE_DATABASE_URL": url, "POSE_HOME": home},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                print(f"{'frames':>8} {'people':>6} {'seconds':>8} {'rows':>8} {'worker MB':>10} {'child MB':>9}")
                for frames in (int(n) for n in args.frames.split(",")):
                    job, _ = store.submit("/bench.mp4", params={"frames": frames, "people": args.people})
                    peak_worker = peak_child = 0
                    t0 = time.perf_counter()
                    while (state := store.get(job.id).state) not in ("succeeded", "failed", "cancelled"):
                        peak_worker = max(peak_worker, rss(worker.pid))
                        peak_child = max(peak_child, sum(rss(c) for c in children(worker.pid)))
                        time.sleep(0.05)
                    seconds = time.perf_counter() - t0
                    with psycopg.connect(url) as conn:
                        rows = conn.execute("SELECT count(*) FROM pose_frame_people WHERE job_id = %s",
                                            (job.id,)).fetchone()[0]
                    print(f"{frames:>8} {args.people:>6} {seconds:>8.1f} {rows:>8} {peak_worker / 1e6:>10.0f} "
                          f"{peak_child / 1e6:>9.0f}  {state}")
            finally:
                worker.terminate()
                worker.wait(30)
        store.close()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
