"""Long videos through the whole service: a 1-minute and a 1-hour 60 fps video with 4 people, made up
by the synthetic pipeline, submitted over REST, run by a real worker, read back over REST and SQL.

What runs: a scratch database on the PostgreSQL server; ``pose-service web`` (uvicorn) and
``pose-service worker`` (its warm pipeline child loads ``bench.synthetic_pipeline:create``) as
subprocesses, with their default settings but POSE_SEGMENT_S=0 (each video stays one job, so one
worker's frame path is measured); a job per video length submitted with ``POST /v1/jobs``. Per job:

- success, wall time (submit to succeeded) and the store rate: person-frames / the attempt's run time
  by the database clock (attempt_started_at to finished_at), the child making and spooling frames,
  the worker COPYing them, while the job runs; the pipeline's own time (timings.total_s) beside it;
- peak RSS of the pipeline child, the worker and the web process while the job runs (sampled every
  20 ms from /proc), and the ratio of the long video's to the short one's;
- the analysis job its success queues (migration 0011): waited for, so that it does not share the
  cores with what is measured next, with its run time and the peak RSS of the worker's analysis child
  (apart from the pose child);
- ``GET /v1/jobs/{id}/result`` (result@1 JSON, no gzip) read by this process: MB/s and the web
  process's peak RSS while it streams;
- reading the job's rows from ``pose_frame_people`` as an analyst would: COPY (binary, text) of
  every column, a plain SELECT of every column through a server-side cursor, and a narrow SELECT (one
  keypoint's x and y), in rows/s.

Baselines measured in the same run, so the numbers can be read on a shared machine: PostgreSQL
taking the same rows without the child or the spool (blocks built and stamped beforehand, stored
with JobStore.store_frame_tuples: one COPY stream, then two as the worker runs them), and the raw
COPY text of the result's rows (what PostgreSQL alone sends for the same frames).

    .venv/bin/python bench/long_video.py [--minutes 1,60] [--people 4] [--fps 60] [--json OUT]

(POSE_TEST_DATABASE_URL or POSE_DATABASE_URL names the server; else the embedded one.)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.frame_storage import server_url, with_db  # noqa: E402
from bench.synthetic_pipeline import create as synthetic  # noqa: E402
from bench.worker_memory import children, rss  # noqa: E402
from jobs.database import upgrade  # noqa: E402
from jobs.job import Job  # noqa: E402
from jobs.states import ErrorKind  # noqa: E402
from jobs.store import JobStore  # noqa: E402
from worker.analysis_job import PIPELINE as ANALYSIS_PIPELINE  # noqa: E402
from worker.frame_spool import Block, BlockEncoder, read_block  # noqa: E402
from worker.frame_writer import BATCH_FRAMES  # noqa: E402

PIPELINE = "bench.synthetic_pipeline:create"
ALL_COLUMNS = "job_id, frame_index, time_s, track_id, score, bbox, keypoints, world"


# ---- processes and their memory ---------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """CPU seconds spent by the worker, its pipeline child, the web process and the PostgreSQL
    backends serving the scratch database between ``start()`` and ``stop()``: what each part costs,
    however busy the machine is with other work."""

    def __init__(self, worker: int, web: int, url: str, database: str) -> None:
        self.worker, self.web, self.url, self.database = worker, web, url, database

    def _pids(self) -> dict[str, list[int]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            backends = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.database,))]
        return {"worker": [self.worker], "child": children(self.worker), "web": [self.web], "postgres": backends}

    def start(self) -> None:
        self._at = {(part, pid): cpu_s(pid) for part, pids in self._pids().items() for pid in pids}

    def stop(self) -> dict[str, float]:
        spent = {"worker": 0.0, "child": 0.0, "web": 0.0, "postgres": 0.0}
        for part, pids in self._pids().items():
            for pid in pids:
                spent[part] += cpu_s(pid) - self._at.get((part, pid), 0.0)
        return spent


def is_analysis_child(pid: int) -> bool:
    """Whether a child of the worker is its analysis child (worker/analysis_job.py), by command line."""
    try:
        return ANALYSIS_PIPELINE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class Peaks:
    """Samples the RSS of the worker, its pose child, its analysis child and the web every 20 ms;
    ``phase()`` returns the peaks seen since the previous call."""

    def __init__(self, worker: int, web: int) -> None:
        self.worker, self.web = worker, web
        self._peaks = {"worker": 0, "child": 0, "analysis_child": 0, "web": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            kids = children(self.worker)
            analysis = [c for c in kids if is_analysis_child(c)]
            sample = {"worker": rss(self.worker), "child": sum(rss(c) for c in kids if c not in analysis),
                      "analysis_child": sum(rss(c) for c in analysis), "web": rss(self.web)}
            with self._lock:
                for k, v in sample.items():
                    self._peaks[k] = max(self._peaks[k], v)

    def now(self) -> dict[str, int]:
        """The RSS of each process at this moment (what a phase starts from: CPython keeps what an
        earlier phase, e.g. an analysis, made it take)."""
        return {"worker": rss(self.worker), "web": rss(self.web)}

    def phase(self) -> dict[str, int]:
        time.sleep(0.05)
        with self._lock:
            peaks, self._peaks = self._peaks, {k: 0 for k in self._peaks}
        return peaks

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service(url: str, work: Path) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], str]]:
    """``pose-service web`` and ``pose-service worker`` on ``url``; yields (web, worker, base URL)."""
    import httpx

    media = work / "media"
    media.mkdir()
    env = {**os.environ, "POSE_DATABASE_URL": url, "POSE_HOME": str(work / "home"), "POSE_MEDIA_ROOTS": str(media),
           "POSE_PIPELINE": PIPELINE, "POSE_SEGMENT_S": "0", "POSE_LOG_LEVEL": "WARNING"}
    env.pop("POSE_API_TOKENS", None)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, cmd in (("web", ["web", "--host", "127.0.0.1", "--port", str(port)]), ("worker", ["worker"])):
            log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - handed to the process
            procs.append(subprocess.Popen([sys.executable, "-m", "jobs.cli", *cmd], cwd=REPO, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            for proc, name in zip(procs, ("web", "worker"), strict=True):
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited:\n{(work / f'{name}.log').read_text()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the service did not become ready:\n{(work / 'web.log').read_text()}")
            time.sleep(0.2)
        # a JSON submit checks that the file exists and starts like a container; the pipeline never opens it
        (media / "long.mp4").write_bytes(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2" + b"\0" * 1000)
        yield procs[0], procs[1], base
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


# ---- one video -----------------------------------------------------------------------------------
def run_job(base: str, media: Path, url: str, frames: int, people: int, fps: int, peaks: Peaks,
            cpu: Cpu) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {"frames": frames, "people": people, "person_frames": frames * people}
    peaks.phase()
    out["rss_start"] = peaks.now()
    cpu.start()
    t0 = time.perf_counter()
    reply = httpx.post(f"{base}/v1/jobs", json={"video_path": str(media / "long.mp4"),
                                                "params": {"frames": frames, "people": people, "fps": fps}},
                       timeout=30)
    reply.raise_for_status()
    job_id = int(reply.json()["id"])
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            state = conn.execute("SELECT state FROM pose_jobs WHERE id = %s", (job_id,)).fetchone()[0]
            if state in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        out["wall_s"] = time.perf_counter() - t0
        row = conn.execute(
            "SELECT state, error_kind, error_message, extract(epoch FROM finished_at - attempt_started_at), "
            "frames_done FROM pose_jobs WHERE id = %s", (job_id,)).fetchone()
    out["job_id"], out["state"], out["error"] = job_id, row[0], (f"{row[1]}: {row[2]}" if row[1] else None)
    out["run_s"], out["frames_done"] = float(row[3]), row[4]
    out["store_person_frames_per_s"] = frames * people / out["run_s"]
    out["rss_job"] = peaks.phase()
    out["cpu_us_per_person_frame"] = {k: 1e6 * v / (frames * people) for k, v in cpu.stop().items()}
    if out["state"] != "succeeded":
        return out
    out["analysis"] = wait_for_analysis(url, job_id)  # queued by a trigger: let it finish before reading
    out["rss_analysis"] = peaks.phase()
    with psycopg.connect(url, autocommit=True) as conn:
        document = conn.execute("SELECT document FROM pose_results WHERE job_id = %s", (job_id,)).fetchone()[0]
        out["rows"] = conn.execute("SELECT count(*) FROM pose_frame_people WHERE job_id = %s",
                                   (job_id,)).fetchone()[0]
    out["pipeline_s"] = document["timings"]["total_s"]
    # GET /v1/jobs/{id}/result, as a client reads it (no gzip)
    size = 0
    cpu.start()
    t0 = time.perf_counter()
    with httpx.stream("GET", f"{base}/v1/jobs/{job_id}/result", headers={"Accept-Encoding": "identity"},
                      timeout=120) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1 << 20):
            size += len(chunk)
    out["result_s"] = time.perf_counter() - t0
    out["result_mb"] = size / 1e6
    out["result_mb_per_s"] = size / 1e6 / out["result_s"]
    out["result_cpu_s_per_mb"] = {k: v / out["result_mb"] for k, v in cpu.stop().items() if k in ("web", "postgres")}
    out["rss_result"] = peaks.phase()
    out["read"] = read_rows(url, job_id)
    return out


def wait_for_analysis(url: str, job_id: int) -> dict[str, Any]:
    """Waits for the analysis job that the pose job's success queued (migration 0011) and returns its
    state and run time: it runs on the same worker and cores, so the result is read after it, not
    beside it."""
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT state, extract(epoch FROM finished_at - attempt_started_at) FROM pose_jobs "
                "WHERE kind = 'analysis' AND source_job_id = %s", (job_id,)).fetchone()
            if row is None:  # nobody in its frames: no analysis
                return {"state": "none", "run_s": None}
            if row[0] in ("succeeded", "failed", "cancelled"):
                return {"state": row[0], "run_s": float(row[1]) if row[1] is not None else None}
            time.sleep(0.05)


def read_rows(url: str, job_id: int) -> dict[str, dict[str, float]]:
    """Rows/s of one job's rows from pose_frame_people, several ways an analyst reads them."""
    where = f"FROM pose_frame_people WHERE job_id = {int(job_id)}"
    numbers: dict[str, dict[str, float]] = {}

    def timed(name: str, fn: Callable[[psycopg.Connection[Any]], tuple[int, int]]) -> None:
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            rows, size = fn(conn)
            seconds = time.perf_counter() - t0
        numbers[name] = {"rows": rows, "rows_per_s": rows / seconds, "mb_per_s": size / 1e6 / seconds}

    def copy(fmt: str) -> Callable[[psycopg.Connection[Any]], tuple[int, int]]:
        def run(conn: psycopg.Connection[Any]) -> tuple[int, int]:
            size = 0
            with conn.cursor() as cur, cur.copy(f"COPY (SELECT {ALL_COLUMNS} {where}) TO STDOUT {fmt}") as data:
                for piece in data:
                    size += len(piece)
            rows = conn.execute(f"SELECT count(*) {where}").fetchone()[0]  # type: ignore[index]
            return int(rows), size
        return run

    def select(columns: str, binary: bool) -> Callable[[psycopg.Connection[Any]], tuple[int, int]]:
        def run(conn: psycopg.Connection[Any]) -> tuple[int, int]:
            rows = 0
            with conn.transaction(), conn.cursor(name="rows", binary=binary) as cur:
                cur.itersize = 10_000
                cur.execute(f"SELECT {columns} {where}")
                for _row in cur:
                    rows += 1
            return rows, 0
        return run

    timed("copy_binary", copy("(FORMAT BINARY)"))
    timed("copy_text", copy(""))
    timed("select_all_columns", select(ALL_COLUMNS, False))
    timed("select_all_columns_binary", select(ALL_COLUMNS, True))
    timed("select_one_keypoint", select("frame_index, track_id, keypoints[5*15+1], keypoints[5*15+2]", False))
    return numbers


# ---- baselines ---------------------------------------------------------------------------------------
def store_baseline(url: str, people: int, fps: int, frames: int) -> dict[str, float]:
    """PostgreSQL taking the rows without the child: blocks of the synthetic frames built and stamped
    first, then stored with JobStore.store_frame_tuples in the writer's batches, one COPY stream and
    then two (each batch on its own connection, as the worker's copiers)."""
    store = JobStore.connect(url, pool_size=3)
    out: dict[str, float] = {}
    try:
        for streams in (1, 2):
            job, _ = store.submit("/baseline.mp4")
            claimed = store.claim("baseline", 3600)
            assert claimed is not None and claimed.id == job.id
            batches = _batches(claimed.id, claimed.attempt, frames, people, fps)
            assert store.store_frame_tuples(claimed, "baseline", [], 0, 0, first_batch=True)

            def copier(part: list[list[Block]], job: Job = claimed) -> None:
                for batch in part:
                    store.store_frame_tuples(job, "baseline", [b.payload for b in batch], batch[0].first,
                                             batch[-1].last, first_batch=False)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=copier, args=(batches[i::streams],)) for i in range(streams)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out[f"copy_{streams}_stream_person_frames_per_s"] = frames * people / (time.perf_counter() - t0)
            store.fail(claimed, "baseline", ErrorKind.PIPELINE_ERROR, "baseline done", retry_base_s=1, retry_cap_s=1)
    finally:
        store.close()
    return out


def _batches(job_id: int, attempt: int, frames: int, people: int, fps: int) -> list[list[Block]]:
    made: list[dict[str, Any]] = []
    synthetic()("/baseline.mp4", {"frames": frames, "people": people, "fps": fps}, lambda d, t: None,
                emit_frame=made.append)
    path = Path(tempfile.mkstemp(prefix="pose-bench-spool-")[1])
    try:
        encoder = BlockEncoder()
        with open(path, "wb") as fh:
            for frame in made:
                encoder.add(frame)
                if encoder.frames == 64:
                    encoder.write(fh)
            if not encoder.empty:
                encoder.write(fh)
        del made
        batches: list[list[Block]] = [[]]
        size = path.stat().st_size
        with open(path, "rb") as fh:
            while fh.tell() < size:
                if sum(b.frames for b in batches[-1]) >= BATCH_FRAMES:
                    batches.append([])
                batches[-1].append(read_block(fh, size - fh.tell(), job_id, attempt))
        return batches
    finally:
        path.unlink()


def result_baseline(url: str, job_id: int) -> float:
    """MB/s of PostgreSQL's own COPY text of the job's rows (what it sends, before any formatting)."""
    with psycopg.connect(url) as conn:
        size = 0
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                f"COPY (SELECT {ALL_COLUMNS} FROM pose_frame_people WHERE job_id = {int(job_id)} "
                "ORDER BY frame_index, track_id) TO STDOUT") as data:
            for piece in data:
                size += len(piece)
        return size / 1e6 / (time.perf_counter() - t0)


# ---- main ------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="1,60", help="video lengths, comma-separated (the first is the reference)")
    ap.add_argument("--people", type=int, default=4)
    ap.add_argument("--fps", type=int, default=60)
    ap.add_argument("--baseline-frames", type=int, default=20_000, help="frames of the COPY-only baseline")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    minutes = [float(m) for m in args.minutes.split(",")]
    server = server_url()
    name = f"pose_bench_long_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    report: dict[str, Any] = {"people": args.people, "fps": args.fps, "load_before": os.getloadavg()}
    try:
        url = with_db(server, name)
        upgrade(url)
        report["baseline_store"] = store_baseline(url, args.people, args.fps, args.baseline_frames)
        with tempfile.TemporaryDirectory(prefix="pose-bench-long-") as tmp:
            work = Path(tmp)
            with service(url, work) as (web, worker, base):
                peaks = Peaks(worker.pid, web.pid)
                cpu = Cpu(worker.pid, web.pid, url, name)
                try:
                    jobs = []
                    for m in minutes:
                        frames = int(round(m * 60 * args.fps))
                        jobs.append(run_job(base, work / "media", url, frames, args.people, args.fps, peaks, cpu))
                        jobs[-1]["minutes"] = m
                        if jobs[-1]["state"] == "succeeded":
                            jobs[-1]["baseline_result_copy_text_mb_per_s"] = result_baseline(url, jobs[-1]["job_id"])
                        print_job(jobs[-1])
                finally:
                    peaks.stop()
        report["jobs"] = jobs
        report["load_after"] = os.getloadavg()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print_summary(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if all(j["state"] == "succeeded" for j in report["jobs"]) else 1


def print_job(job: dict[str, Any]) -> None:
    mb = 1e6
    print(f"\n{job['minutes']:g} min: {job['frames']} frames × {job['people']} people: {job['state']}"
          f"{' (' + job['error'] + ')' if job['error'] else ''}, wall {job['wall_s']:.1f} s, run {job['run_s']:.1f} s",
          flush=True)
    print(f"  store: {job['store_person_frames_per_s']:,.0f} person-frames/s "
          f"(pipeline's own time {job.get('pipeline_s', float('nan')):.1f} s)")
    print("  peak RSS while it ran: " + ", ".join(f"{k} {v / mb:.0f} MB" for k, v in job["rss_job"].items())
          + " (at its start: " + ", ".join(f"{k} {v / mb:.0f} MB" for k, v in job["rss_start"].items()) + ")")
    print("  CPU per person-frame: " + ", ".join(f"{k} {v:.1f} µs" for k, v in job["cpu_us_per_person_frame"].items()
                                                 if k != "web"))
    if job["state"] != "succeeded":
        return
    analysis = job["analysis"]
    print(f"  its analysis job (queued by the success, run before the reads below): {analysis['state']} in "
          f"{analysis['run_s'] or float('nan'):.1f} s; peak RSS analysis child "
          f"{job['rss_analysis']['analysis_child'] / mb:.0f} MB, worker {job['rss_analysis']['worker'] / mb:.0f} MB")
    print(f"  GET result: {job['result_mb']:.0f} MB at {job['result_mb_per_s']:.1f} MB/s; web peak RSS "
          f"{job['rss_result']['web'] / mb:.0f} MB (PostgreSQL's own COPY text of the rows: "
          f"{job['baseline_result_copy_text_mb_per_s']:.1f} MB/s)")
    print("  CPU per MB streamed: " + ", ".join(f"{k} {1000 * v:.1f} ms"
                                              for k, v in job["result_cpu_s_per_mb"].items()))
    for how, n in job["read"].items():
        print(f"  read {how:<26} {n['rows_per_s']:>10,.0f} rows/s" + (f"  {n['mb_per_s']:.1f} MB/s" if n["mb_per_s"]
                                                                     else ""))


def print_summary(report: dict[str, Any]) -> None:
    base = report["baseline_store"]
    print(f"\nbaseline, PostgreSQL taking pre-built batches: {base['copy_1_stream_person_frames_per_s']:,.0f} "
          f"person-frames/s with one COPY stream, {base['copy_2_stream_person_frames_per_s']:,.0f} with two")
    jobs = report["jobs"]
    if len(jobs) > 1 and all(j["state"] == "succeeded" for j in jobs):
        short, long = jobs[0], jobs[-1]
        for what in ("worker", "child", "web"):  # the pose job's processes (the analysis child is apart)
            print(f"peak RSS {what} while the job ran: {long['rss_job'][what] / 1e6:.0f} MB vs "
                  f"{short['rss_job'][what] / 1e6:.0f} MB ({long['rss_job'][what] / short['rss_job'][what]:.2f}×)")
        print(f"peak RSS web while streaming the result: {long['rss_result']['web'] / 1e6:.0f} MB vs "
              f"{short['rss_result']['web'] / 1e6:.0f} MB "
              f"({long['rss_result']['web'] / short['rss_result']['web']:.2f}×)")
        print(f"store rate {long['store_person_frames_per_s']:,.0f} person-frames/s = "
              f"{long['store_person_frames_per_s'] / base['copy_2_stream_person_frames_per_s']:.2f}× the two-stream "
              f"baseline, {long['store_person_frames_per_s'] / base['copy_1_stream_person_frames_per_s']:.2f}× "
              "the one-stream one")
    print(f"load average before {report['load_before'][0]:.1f}, after {report['load_after'][0]:.1f}; "
          f"median store rate {statistics.median(j['store_person_frames_per_s'] for j in jobs):,.0f}")


if __name__ == "__main__":
    sys.exit(main())
