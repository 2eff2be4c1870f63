"""Queue-core benchmark: how fast real pose-service workers claim and finish jobs, against procrastinate.

What is measured, and why:

* **Throughput.** W real worker daemons (``python -m jobs.cli worker``, warm mode, the no-op pipeline
  ``bench.noop_pipeline:create``) wait on an otherwise empty scratch database; N jobs are inserted in
  one statement; throughput is N / (last ``finished_at`` - first ``created_at``), both from the
  database clock, so the benchmark process's own timing cannot leak in. The pipeline does nothing,
  so this is the cost of the service around a job: claim query, child round trip, result write,
  finish query, and the NOTIFY/poll machinery. (The claim rate, N / (last ``started_at`` - first
  ``created_at``), is reported too.)
* **Pickup latency.** With the workers idle, single jobs are inserted one at a time (the minimal
  ``INSERT INTO pose_jobs (video_path) VALUES (...)`` another service would run), each waited for
  before the next, spaced a little so the workers are back to waiting on LISTEN. Latency is
  ``started_at - created_at`` of each row (both ``now()`` of their transactions, one clock): the
  time from the INSERT to the claim, i.e. how quickly NOTIFY wakes an idle worker.
* **Baseline.** The same two measurements with procrastinate (bench/procrastinate_baseline.py) on the
  same PostgreSQL in its own scratch database: W worker processes at concurrency 1, LISTEN/NOTIFY on,
  jobs deferred with ``batch_defer``; timestamps from ``procrastinate_events``.

The two systems run one after the other, never at the same time, so they do not share the CPU.
Goal (issue 3): pose-service >= 2x procrastinate's throughput and a p50 pickup below 10 ms.

    .venv/bin/python bench/queue_core.py [--jobs 3000] [--workers 4] [--samples 200] [--database-url URL]

Writes bench/results/queue_core.json. Worker processes and scratch databases are removed on exit,
on an error and on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from jobs.database import libpq_url  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NOOP_PIPELINE = "bench.noop_pipeline:create"
BENCH_APP = "queue-core-bench"  # application_name of the benchmark's own connections (not counted)
POLL_S = 2.0  # both systems' polling backstop behind LISTEN/NOTIFY (pose-service's default)


# ---- small helpers shared with bench/warm_vs_fresh.py ---------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean/max of seconds, in milliseconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 3),
        "p95_ms": round(percentile(values, 95) * 1000, 3),
        "mean_ms": round(sum(values) / len(values) * 1000, 3),
        "min_ms": round(min(values) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
    }


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(path="/" + dbname))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database with a unique name, dropped (WITH FORCE) however the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = libpq_url(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_dbname(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark dies, even by SIGKILL (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Fleet:
    """Subprocesses started by the benchmark, each logging to its own file; stopped on exit."""

    log_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, cmd: list[str], env: dict[str, str], tag: str) -> subprocess.Popen:
        log_path = self.log_dir / f"{tag}-{len(self.procs)}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                preexec_fn=_die_with_parent,
            )
        self.procs.append(proc)
        self.logs.append(log_path)
        return proc

    def check_alive(self) -> None:
        for proc, log_path in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"process {proc.pid} exited with {proc.returncode}; log {log_path}:\n{tail}"
                )

    def log_contains(self, text: str) -> bool:
        self.check_alive()
        return all(text in p.read_text(errors="replace") for p in self.logs)

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


@contextlib.contextmanager
def fleet(log_dir: Path) -> Iterator[Fleet]:
    f = Fleet(log_dir)
    try:
        yield f
    finally:
        f.stop()


def pose_worker_cmd(pipeline: str, mode: str, extra: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jobs.cli",
        "worker",
        "--pipeline",
        pipeline,
        "--mode",
        mode,
        "--lease-s",
        "15",
        "--heartbeat-s",
        "2",
        "--poll-s",
        str(POLL_S),
        *extra,
    ]


def listening_backends(conn: psycopg.Connection, dbname: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'LISTEN%%'", (dbname,)
    ).fetchone()
    return int(row[0])


class CpuMeter:
    """CPU seconds spent during a run, split by who spent them.

    Groups: the worker processes (daemons), their descendants (pipeline children), the PostgreSQL
    backends of the benchmark database other than the benchmark's own connection, PostgreSQL's
    auxiliary processes (WAL writer, checkpointer, ...), and everything else on the machine ("other":
    machine-wide busy time minus the rest; on a shared machine it shows how noisy the run was).
    Processes that start during the run count from zero; pipeline children that exit during it are
    counted through their worker's ``children_user``/``children_system``; other exits are lost.
    """

    def __init__(self, conn: psycopg.Connection, dbname: str, workers: list[subprocess.Popen]) -> None:
        self.conn, self.dbname, self.workers = conn, dbname, workers
        self.start = self._snapshot()
        self.t0 = psutil.cpu_times()

    def _pids(self) -> dict[str, set[int]]:
        groups: dict[str, set[int]] = {
            "workers": set(),
            "children": set(),
            "pg_backends": set(),
            "pg_aux": set(),
        }
        for proc in self.workers:
            groups["workers"].add(proc.pid)
            with contextlib.suppress(psutil.Error):
                groups["children"].update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
        rows = self.conn.execute(
            "SELECT pid, backend_type, datname FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND application_name IS DISTINCT FROM %s",
            (BENCH_APP,),
        ).fetchall()
        for pid, backend_type, datname in rows:
            if backend_type == "client backend":
                if datname == self.dbname:
                    groups["pg_backends"].add(pid)
            elif datname in (None, self.dbname):
                groups["pg_aux"].add(pid)
        return groups

    def _snapshot(self) -> tuple[dict[str, dict[int, float]], float, dict[int, tuple[str, float]]]:
        cpu: dict[str, dict[int, float]] = {}
        for group, pids in self._pids().items():
            cpu[group] = {}
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(pid).cpu_times()
                    cpu[group][pid] = t.user + t.system
        reaped = cpu.setdefault("children", {})
        for proc in self.workers:  # pipeline children that exited (recycled, fresh mode) count here
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(proc.pid).cpu_times()
                reaped[-proc.pid] = t.children_user + t.children_system
        total = psutil.cpu_times()
        # busy = time the guest's CPUs ran anything; steal (the hypervisor's) and guest are not ours
        busy = (
            total.user
            + total.nice
            + total.system
            + getattr(total, "irq", 0.0)
            + getattr(total, "softirq", 0.0)
        )
        everyone: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            t = proc.info["cpu_times"]
            if t is not None:
                everyone[proc.pid] = (proc.info["name"] or "?", t.user + t.system)
        return cpu, busy, everyone

    def per_job_ms(self, n_jobs: int) -> dict[str, Any]:
        (start, busy0, all0), (end, busy1, all1) = self.start, self._snapshot()
        t1 = psutil.cpu_times()
        out_fields = {f: round(getattr(t1, f) - getattr(self.t0, f), 3) for f in t1._fields}
        out: dict[str, Any] = {}
        ours = 0.0
        our_pids: set[int] = set()
        for group, pids in end.items():
            spent = sum(t - start.get(group, {}).get(pid, 0.0) for pid, t in pids.items())
            ours += spent
            our_pids.update(pids)
            out[group] = round(spent / n_jobs * 1000, 3)
        out["other"] = round(max(0.0, busy1 - busy0 - ours) / n_jobs * 1000, 3)
        out["machine_busy"] = round((busy1 - busy0) / n_jobs * 1000, 3)
        others = sorted(
            (
                (t - all0.get(pid, (name, 0.0))[1], f"{name}[{pid}]")
                for pid, (name, t) in all1.items()
                if pid not in our_pids and -pid not in our_pids and pid != os.getpid()
            ),
            reverse=True,
        )[:5]
        out["machine_cpu_s"] = out_fields
        out["top_other_processes_cpu_s"] = {
            f"{who} {_cmdline(who)}".strip(): round(t, 3) for t, who in others if t > 0.005
        }
        return out


def _cmdline(who: str) -> str:
    """A short command line for ``name[pid]`` (empty once the process is gone)."""
    try:
        return " ".join(psutil.Process(int(who.rsplit("[", 1)[1].rstrip("]"))).cmdline())[:100]
    except (psutil.Error, ValueError, IndexError):
        return ""


# ---- pose-service -------------------------------------------------------------------------------
def pose_insert_many(conn: psycopg.Connection, n: int) -> tuple[int, int]:
    row = conn.execute(
        "WITH ins AS (INSERT INTO pose_jobs (video_path) "
        "SELECT '/bench/noop.mp4' FROM generate_series(1, %s) "
        "RETURNING id) SELECT min(id), max(id) FROM ins",
        (n,),
    ).fetchone()
    return int(row[0]), int(row[1])


def pose_finished(conn: psycopg.Connection, first: int, last: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pose_jobs WHERE id BETWEEN %s AND %s AND finished_at IS NOT NULL", (first, last)
    ).fetchone()
    return int(row[0])


def wait_finished(count: Callable[[], int], n: int, timeout: float, interval: float = 0.1) -> None:
    wait_until(lambda: count() >= n, timeout, f"{n} jobs to finish", interval)


def run_pose(server_url: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from jobs.database import upgrade

    with scratch_database(server_url, "pose_bench") as url, fleet(log_dir) as workers:
        upgrade(url)
        dbname = urlsplit(url).path.lstrip("/")
        env = {"POSE_DATABASE_URL": url, "POSE_HOME": str(log_dir / "pose-home"), "POSE_LOG_LEVEL": "INFO"}
        for _ in range(args.workers):
            workers.start(pose_worker_cmd(NOOP_PIPELINE, "warm", args.pose_worker_arg), env, "pose-worker")
        with psycopg.connect(libpq_url(url), autocommit=True, application_name=BENCH_APP) as conn:
            wait_until(
                lambda: workers.log_contains("worker ready: claiming jobs"), 60, "pose workers to start"
            )
            wait_until(lambda: listening_backends(conn, dbname) >= args.workers, 20, "pose workers to LISTEN")
            time.sleep(0.5)

            first, last = pose_insert_many(conn, args.warmup)  # connections, caches, the children's first job
            wait_finished(lambda: pose_finished(conn, first, last), args.warmup, 60)
            time.sleep(0.5)

            print(f"  pose-service: {args.jobs} jobs in one INSERT ...", flush=True)
            meter = CpuMeter(conn, dbname, workers.procs)
            t0 = time.monotonic()
            first, last = pose_insert_many(conn, args.jobs)
            wait_finished(lambda: pose_finished(conn, first, last), args.jobs, args.timeout)
            wall = time.monotonic() - t0
            cpu = meter.per_job_ms(args.jobs)
            row = conn.execute(
                """
                SELECT extract(epoch FROM max(started_at) - min(created_at)),
                       extract(epoch FROM max(finished_at) - min(created_at)),
                       count(*) FILTER (WHERE state = 'succeeded'), count(DISTINCT worker_id)
                FROM pose_jobs WHERE id BETWEEN %s AND %s
                """,
                (first, last),
            ).fetchone()
            throughput = _throughput(args.jobs, float(row[0]), float(row[1]), wall)
            throughput.update(succeeded=int(row[2]), workers_used=int(row[3]), cpu_ms_per_job=cpu)
            time.sleep(0.5)

            print(
                f"  pose-service: {args.samples} single INSERTs, {args.spacing_ms} ms apart ...", flush=True
            )
            ids = []
            for _ in range(args.samples):
                time.sleep(args.spacing_ms / 1000)
                (job_id,) = conn.execute(
                    "INSERT INTO pose_jobs (video_path) VALUES ('/bench/noop.mp4') RETURNING id"
                ).fetchone()
                ids.append(int(job_id))
                wait_finished(lambda j=job_id: pose_finished(conn, j, j), 1, 30, interval=0.002)
            rows = conn.execute(
                "SELECT extract(epoch FROM started_at - created_at), "
                "extract(epoch FROM finished_at - created_at), "
                "state FROM pose_jobs WHERE id = ANY(%s)",
                (ids,),
            ).fetchall()
            pickup_s = [float(r[0]) for r in rows]
            finish_s = [float(r[1]) for r in rows]
            throughput["pickup_samples_succeeded"] = sum(r[2] == "succeeded" for r in rows)
        workers.check_alive()
    return {"throughput": throughput, "pickup_s": pickup_s, "finish_s": finish_s}


# ---- procrastinate ------------------------------------------------------------------------------
def run_procrastinate(server_url: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from bench import procrastinate_baseline as pb

    with scratch_database(server_url, "procrastinate_bench") as url, fleet(log_dir) as workers:
        dsn = libpq_url(url)
        dbname = urlsplit(url).path.lstrip("/")
        pb.apply_schema(dsn)
        for i in range(args.workers):
            cmd = [
                sys.executable,
                "-m",
                "bench.procrastinate_baseline",
                "worker",
                "--dsn",
                dsn,
                "--name",
                f"bench-{i}",
                "--poll-s",
                str(POLL_S),
            ]
            workers.start(cmd, {}, "procrastinate-worker")
        deferrer = pb.Deferrer(make_conninfo(dsn, application_name=BENCH_APP))
        try:
            with psycopg.connect(dsn, autocommit=True, application_name=BENCH_APP) as conn:

                def registered() -> bool:
                    workers.check_alive()
                    (n,) = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
                    return n >= args.workers and listening_backends(conn, dbname) >= args.workers

                wait_until(registered, 60, "procrastinate workers to start")
                time.sleep(0.5)

                ids = deferrer.batch(args.warmup)
                wait_finished(lambda: pb.finished_count(conn, min(ids), max(ids)), args.warmup, 60)
                time.sleep(0.5)

                print(f"  procrastinate: {args.jobs} jobs with batch_defer ...", flush=True)
                meter = CpuMeter(conn, dbname, workers.procs)
                t0 = time.monotonic()
                ids = deferrer.batch(args.jobs)
                first, last = min(ids), max(ids)
                wait_finished(lambda: pb.finished_count(conn, first, last), args.jobs, args.timeout)
                wall = time.monotonic() - t0
                cpu = meter.per_job_ms(args.jobs)
                sp = pb.span(conn, first, last)
                throughput = _throughput(args.jobs, sp["to_last_claim_s"], sp["to_last_finish_s"], wall)
                states = pb.job_states(conn, first, last)
                (used,) = conn.execute(
                    "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs WHERE id BETWEEN %s AND %s",
                    (first, last),
                ).fetchone()
                throughput.update(
                    succeeded=states.get("succeeded", 0), workers_used=int(used or 0), cpu_ms_per_job=cpu
                )
                time.sleep(0.5)

                print(
                    f"  procrastinate: {args.samples} single defers, {args.spacing_ms} ms apart ...",
                    flush=True,
                )
                sample_ids = []
                for _ in range(args.samples):
                    time.sleep(args.spacing_ms / 1000)
                    job_id = deferrer.one()
                    sample_ids.append(job_id)
                    wait_finished(lambda j=job_id: pb.finished_count(conn, j, j), 1, 30, interval=0.002)
                started, finished = pb.pickup_latencies(conn, sample_ids)
                throughput["pickup_samples_succeeded"] = pb.job_states(
                    conn, min(sample_ids), max(sample_ids)
                ).get("succeeded", 0)
        finally:
            deferrer.close()
        workers.check_alive()
    return {"throughput": throughput, "pickup_s": started, "finish_s": finished}


def _throughput(n: int, to_last_claim_s: float, to_last_finish_s: float, wall_s: float) -> dict[str, Any]:
    return {
        "jobs": n,
        "seconds_to_last_finish": round(to_last_finish_s, 4),
        "seconds_to_last_claim": round(to_last_claim_s, 4),
        "jobs_per_s": round(n / to_last_finish_s, 1),
        "claims_per_s": round(n / to_last_claim_s, 1),
        "bench_wall_s": round(wall_s, 3),
    }


# ---- aggregation and report --------------------------------------------------------------------
CPU_GROUPS = ("workers", "children", "pg_backends", "pg_aux", "other", "machine_busy")
OWN_GROUPS = ("workers", "children", "pg_backends", "pg_aux")


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system over all rounds: median throughput and CPU, pickup percentiles over all samples."""
    tps = [r["throughput"] for r in rounds]
    cpu = {g: round(median([t["cpu_ms_per_job"][g] for t in tps]), 3) for g in CPU_GROUPS}
    own = sum(cpu[g] for g in OWN_GROUPS)
    pickup = [x for r in rounds for x in r["pickup_s"]]
    finish = [x for r in rounds for x in r["finish_s"]]
    return {
        "throughput": {
            "jobs_per_s_median": round(median([t["jobs_per_s"] for t in tps]), 1),
            "jobs_per_s_best": max(t["jobs_per_s"] for t in tps),
            "claims_per_s_median": round(median([t["claims_per_s"] for t in tps]), 1),
            "cpu_ms_per_job_median": cpu,
            # jobs per CPU-second of the system's own processes: insensitive to other load on the machine
            "jobs_per_own_cpu_s": round(1000.0 / own, 1) if own else None,
        },
        "pickup": summary_ms(pickup),
        "insert_to_finish": summary_ms(finish),
        "rounds": [
            {
                "throughput": r["throughput"],
                "pickup": summary_ms(r["pickup_s"]),
                "insert_to_finish": summary_ms(r["finish_s"]),
            }
            for r in rounds
        ],
    }


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def report(results: dict[str, Any]) -> dict[str, Any]:
    present = [(name, results[name]) for name in ("pose-service", "procrastinate") if name in results]
    print()
    _table(
        [
            (
                "",
                "jobs/s (median)",
                "jobs/s (best)",
                "claims/s",
                "jobs/own CPU-s",
                "pickup p50 ms",
                "pickup p95 ms",
                "insert->finish p50 ms",
            )
        ]
        + [
            (
                name,
                f"{r['throughput']['jobs_per_s_median']:.1f}",
                f"{r['throughput']['jobs_per_s_best']:.1f}",
                f"{r['throughput']['claims_per_s_median']:.1f}",
                f"{r['throughput']['jobs_per_own_cpu_s']:.1f}",
                f"{r['pickup']['p50_ms']:.2f}",
                f"{r['pickup']['p95_ms']:.2f}",
                f"{r['insert_to_finish']['p50_ms']:.2f}",
            )
            for name, r in present
        ]
    )
    print(
        "\nCPU ms per job in the throughput runs, median of rounds (workers = daemons, children = pipeline"
        " processes,\nother = the rest of the machine: other people's load):"
    )
    _table(
        [("", *CPU_GROUPS)]
        + [
            (name, *(f"{r['throughput']['cpu_ms_per_job_median'][g]:.2f}" for g in CPU_GROUPS))
            for name, r in present
        ]
    )
    ratios: dict[str, Any] = {}
    pose, base = results.get("pose-service"), results.get("procrastinate")
    if pose and base:
        pt, bt = pose["throughput"], base["throughput"]
        ratios = {
            "throughput_pose_over_procrastinate": round(pt["jobs_per_s_median"] / bt["jobs_per_s_median"], 3),
            "throughput_per_own_cpu_pose_over_procrastinate": round(
                pt["jobs_per_own_cpu_s"] / bt["jobs_per_own_cpu_s"], 3
            ),
            "pickup_p50_pose_over_procrastinate": round(
                pose["pickup"]["p50_ms"] / base["pickup"]["p50_ms"], 3
            ),
            "pickup_p95_pose_over_procrastinate": round(
                pose["pickup"]["p95_ms"] / base["pickup"]["p95_ms"], 3
            ),
        }
        print()
        print(
            f"throughput pose-service / procrastinate: {ratios['throughput_pose_over_procrastinate']:.2f}x "
            f"(per own CPU-second: {ratios['throughput_per_own_cpu_pose_over_procrastinate']:.2f}x; "
            "goal >= 2x)"
        )
        print(
            f"pickup pose-service / procrastinate: p50 {ratios['pickup_p50_pose_over_procrastinate']:.2f}, "
            f"p95 {ratios['pickup_p95_pose_over_procrastinate']:.2f}"
        )
    if pose:
        goal = {
            "throughput_2x": bool(ratios) and ratios["throughput_pose_over_procrastinate"] >= 2.0,
            "pickup_p50_below_10ms": pose["pickup"]["p50_ms"] < 10.0,
        }
        ratios["goal_met"] = goal
        print(f"pose-service pickup p50 {pose['pickup']['p50_ms']:.2f} ms (goal < 10 ms); goals met: {goal}")
    return ratios


def environment(server_url: str) -> dict[str, Any]:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        (pg_version,) = conn.execute("SHOW server_version").fetchone()
    import procrastinate

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "postgresql": pg_version,
        "procrastinate": procrastinate.__version__,
    }


def _sigterm_as_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=3000, help="jobs inserted at once for the throughput run")
    p.add_argument("--workers", type=int, default=4, help="worker processes per system")
    p.add_argument("--samples", type=int, default=200, help="single jobs for the pickup latency")
    p.add_argument("--spacing-ms", type=float, default=20.0, help="idle gap before each latency sample")
    p.add_argument("--warmup", type=int, default=50, help="jobs run (and not measured) before the runs")
    p.add_argument("--timeout", type=float, default=600.0, help="give up on a throughput run after this")
    p.add_argument(
        "--pose-worker-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the pose workers, repeatable (--pose-worker-arg=--recycle-after=100000)",
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per system (medians reported)")
    p.add_argument("--only", choices=("pose-service", "procrastinate"), help="run one system only")
    p.add_argument(
        "--database-url",
        default=os.environ.get("POSE_BENCH_DATABASE_URL", DEFAULT_URL),
        help="server to create scratch databases on (env POSE_BENCH_DATABASE_URL)",
    )
    p.add_argument("--output", type=Path, default=RESULTS / "queue_core.json")
    p.add_argument("--keep-logs", action="store_true", help="keep the workers' log directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`&`)
    log_root = Path(tempfile.mkdtemp(prefix="queue-core-bench-"))
    ok = False
    try:
        env = environment(args.database_url)
        print(
            f"queue_core: {args.workers} workers per system, {args.jobs} jobs, "
            f"{args.samples} pickup samples, "
            f"{args.rounds} rounds; "
            f"{env['cpus']} CPUs, PostgreSQL {env['postgresql']}, procrastinate {env['procrastinate']}"
        )
        runs = [("procrastinate", run_procrastinate), ("pose-service", run_pose)]
        runs = [(name, run) for name, run in runs if not args.only or args.only == name]
        per_round: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in runs}
        for round_no in range(args.rounds):
            order = runs if round_no % 2 == 0 else runs[::-1]  # alternate, so neither always goes first
            for name, run in order:
                print(f"round {round_no + 1}/{args.rounds}, {name}:", flush=True)
                log_dir = log_root / f"{name}-{round_no + 1}"
                log_dir.mkdir()
                per_round[name].append(run(args.database_url, args, log_dir))
                last = per_round[name][-1]
                t, p50 = last["throughput"], summary_ms(last["pickup_s"])["p50_ms"]
                print(
                    f"  {t['jobs_per_s']:.1f} jobs/s, pickup p50 {p50:.2f} ms, "
                    f"other load {t['cpu_ms_per_job']['other']:.2f} CPU-ms/job",
                    flush=True,
                )
        results = {name: aggregate(rounds) for name, rounds in per_round.items()}
        ratios = report(results)
        document = {
            "benchmark": "queue_core",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "config": {
                "jobs": args.jobs,
                "workers": args.workers,
                "samples": args.samples,
                "rounds": args.rounds,
                "spacing_ms": args.spacing_ms,
                "warmup": args.warmup,
                "poll_s": POLL_S,
                "pose_pipeline": NOOP_PIPELINE,
                "pose_worker_args": args.pose_worker_arg,
                "pose_mode": "warm",
            },
            "environment": env,
            "results": results,
            "ratios": ratios,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.output}")
        ok = True
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; workers stopped and scratch databases dropped", file=sys.stderr)
        return 130
    finally:
        if args.keep_logs or not ok:
            print(f"worker logs: {log_root}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(log_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
