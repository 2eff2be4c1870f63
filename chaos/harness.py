"""What every scenario needs: processes it can kill and always cleans up, jobs, and the loss count.

A scenario runs inside ``Scenario`` (a context manager). Every process it spawns gets its own session
(so its whole group can be signalled), and on the way out — normal end, exception, Ctrl-C — each one
gets SIGTERM, then SIGKILL, together with every descendant it left behind (pipeline children run in
process groups of their own). Private PostgreSQL servers and proxies are closed after the processes.

The count comes from the database, not from the processes' word: ``pose_job_events`` has one row per
transition (written by a trigger), so a second ``succeeded`` cannot hide; the fake pipeline's journal
adds what the tables cannot show — two children running the same job to completion at the same time.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from chaos.postgres import PrivatePostgres
from chaos.proxy import FreezingProxy

REPO = Path(__file__).resolve().parent.parent
FAKE_PIPELINE = "tests.fake_pipelines:create"
FINAL = ("succeeded", "failed", "cancelled")

#: test-speed timings (as in tests/conftest.py): a dead worker's job is rescued within ~2 s
FAST_WORKER_FLAGS = {"lease_s": 2.0, "heartbeat_s": 0.3, "poll_s": 0.5, "retry_base_s": 0.1,
                     "shutdown_grace_s": 3.0}


@dataclass
class Tally:
    """One scenario's result line."""

    scenario: str
    submitted: int = 0
    completed: int = 0
    lost: int = 0
    run_twice: int = 0
    other: dict[str, Any] = field(default_factory=dict)
    #: expectations beyond loss and duplication that did not hold (printed; fail the run with --strict)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.lost == 0 and self.run_twice == 0

    def line(self) -> str:
        other = "  ".join(f"{k} {v}" for k, v in self.other.items())
        extra = f"  VIOLATED: {'; '.join(self.violations)}" if self.violations else ""
        error = f"  ERROR: {self.error}" if self.error else ""
        return (f"{self.scenario:<17} submitted {self.submitted}  completed {self.completed}  lost {self.lost}"
                f"  run_twice {self.run_twice}  {other}  {self.seconds:.0f}s{extra}{error}")


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from /proc), children before grandchildren."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry.name))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        nxt = [c for p in frontier for c in children.get(p, [])]
        found += nxt
        frontier = nxt
    return found


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone.

    A pid and its start time name one process for good; a pid alone may be reused by the time a
    cleanup gets to it, and then it would belong to somebody else's process.
    """
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True for a running process (a zombie counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class Proc:
    """A ``pose-service`` subprocess in a session of its own, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", *args], cwd=REPO, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True,
        )
        self.pid = self.proc.pid
        self._family: set[tuple[int, int | None]] = set()  # (pid, start time) of every descendant seen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def death(self) -> str:
        """How an exited process ended, for a report line: exit status and its log's last line."""
        lines = self.log().strip().splitlines()
        return f"{self.name} exit {self.proc.returncode}: {lines[-1][-160:] if lines else '(no output)'}"

    def wait_for_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.running():
                return False
            time.sleep(0.05)
        return False

    def _note_family(self) -> None:
        if self.running():  # once reaped, the pid may be somebody else's
            self._family.update((pid, start_time(pid)) for pid in descendants(self.pid))

    def kill9(self) -> None:
        """SIGKILL to this process alone, as an operator's kill -9 or the kernel would do it."""
        self._note_family()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after ``grace``, then SIGKILL to any descendant still alive."""
        self._note_family()
        if self.running():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        for pid, started in self._family:  # pipeline children live in process groups of their own
            if started is not None and start_time(pid) == started and alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()


class Scenario:
    """The scope of one scenario: temp dir, processes, servers; everything undone on exit."""

    def __init__(self, name: str, *, keep_logs: Path | None = None) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
        self.dir.chmod(0o755)
        self.journal = self.dir / "journal.jsonl"
        self.keep_logs = keep_logs
        self.procs: list[Proc] = []
        self._stack = contextlib.ExitStack()
        self.started = time.monotonic()

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            for proc in reversed(self.procs):
                proc.stop()
        finally:
            try:
                self._stack.close()
            finally:
                if self.keep_logs is not None:
                    target = self.keep_logs / self.name
                    target.mkdir(parents=True, exist_ok=True)
                    for log in self.dir.glob("*.log"):
                        shutil.copy(log, target / log.name)
                shutil.rmtree(self.dir, ignore_errors=True)

    # ---------------------------------------------------------------- resources
    def postgres(self) -> PrivatePostgres:
        return self._stack.enter_context(PrivatePostgres())

    def proxy(self, pg: PrivatePostgres) -> FreezingProxy:
        return self._stack.enter_context(FreezingProxy("127.0.0.1", pg.port))

    def spawn(self, name: str, args: list[str], url: str, env: dict[str, str] | None = None) -> Proc:
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        proc = Proc(name, args, {"POSE_DATABASE_URL": url, "POSE_HOME": str(home), "POSE_LOG_LEVEL": "INFO",
                                 **(env or {})}, self.dir)
        self.procs.append(proc)
        return proc

    def worker(self, url: str, *, name: str = "worker", wait_ready: bool = True, ready_timeout: float = 60,
               extra: Iterable[str] = (), env: dict[str, str] | None = None, **timings: float) -> Proc:
        """``pose-service worker`` on the fake pipelines with fast test timings (overridable)."""
        flags = {**FAST_WORKER_FLAGS, **timings}
        args = ["worker", "--pipeline", FAKE_PIPELINE]
        for key, value in flags.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        proc = self.spawn(name, [*args, *extra], url, env)
        if wait_ready and not proc.wait_for_log("worker ready: claiming jobs", ready_timeout):
            raise RuntimeError(f"{name} did not start:\n{proc.log()[-3000:]}")
        return proc

    # ---------------------------------------------------------------- jobs
    def job_params(self, key: str, frames: int = 3, frame_s: float = 0.05, **extra: Any) -> dict[str, Any]:
        """Params of a journaled fake job: succeeds after ``frames`` × ``frame_s`` seconds."""
        return {"behave": "journaled", "key": key, "journal": str(self.journal), "frames": frames,
                "frame_s": frame_s, **extra}

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=3)


def retrying(operation: Callable[[], Any], *, budget: float = 120.0) -> Any:
    """Run a database call until it works: scenarios submit and count while PostgreSQL comes and goes."""
    deadline = time.monotonic() + budget
    delay = 0.1
    while True:
        try:
            return operation()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def submit(url: str, jobs: list[tuple[str, dict[str, Any]]], *, max_attempts: int = 3,
           timeout_s: float | None = None) -> list[int]:
    """Insert jobs by plain SQL (the documented contract), in one statement; returns their ids.

    Retried across outages; an INSERT whose commit reply was lost could insert twice, so the insert
    is keyed by video_path and a retry first looks for rows it may already have written.
    """
    def once() -> list[int]:
        with connect(url) as conn:
            paths = [path for path, _ in jobs]
            have = dict(conn.execute("SELECT video_path, id FROM pose_jobs WHERE video_path = ANY(%s)",
                                     (paths,)).fetchall())
            missing = [(p, params) for p, params in jobs if p not in have]
            if missing:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO pose_jobs (video_path, params, max_attempts, timeout_s) "
                        "VALUES (%s, %s::jsonb, %s, %s)",
                        [(p, json.dumps(params), max_attempts, timeout_s) for p, params in missing],
                    )
                have = dict(conn.execute("SELECT video_path, id FROM pose_jobs WHERE video_path = ANY(%s)",
                                         (paths,)).fetchall())
            return [have[p] for p in paths]

    return retrying(once)


def states(url: str, ids: list[int]) -> dict[int, str]:
    with connect(url) as conn:
        return dict(conn.execute("SELECT id, state FROM pose_jobs WHERE id = ANY(%s)", (ids,)).fetchall())


def wait_final(url: str, ids: list[int], budget: float, *, poll: float = 0.25) -> bool:
    """Wait until every job is in a final state, at most ``budget`` seconds; True when they all are."""
    deadline = time.monotonic() + budget
    while True:
        try:
            now = states(url, ids)
            if all(now.get(i) in FINAL for i in ids):
                return True
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)


def wait_running(url: str, job_id: int, timeout: float, worker_pid: int | None = None) -> bool:
    """Wait until the job runs (on the worker with that pid, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connect(url) as conn:
            row = conn.execute("SELECT state, worker_id FROM pose_jobs WHERE id = %s", (job_id,)).fetchone()
        if row and row[0] == "running" and (worker_pid is None or f":{worker_pid}:" in (row[1] or "")):
            return True
        time.sleep(0.05)
    return False


def journal_runs(journal: Path) -> dict[str, list[tuple[float, float]]]:
    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    if journal.exists():
        for line in journal.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                entry = json.loads(line)
                runs[entry["key"]].append((entry["start"], entry["end"]))
    return runs


def overlapping(intervals: list[tuple[float, float]]) -> bool:
    ordered = sorted(intervals)
    return any(b[0] < a[1] for a, b in zip(ordered, ordered[1:], strict=False))


def tally(scenario: Scenario, url: str, ids: list[int], tally_: Tally) -> Tally:
    """Fill in the counts from pose_jobs, pose_job_events and the journal."""
    def read() -> tuple[list[Any], list[Any]]:
        with connect(url) as conn:
            jobs = conn.execute("SELECT id, state, error_kind, attempt, video_path, params->>'key' "
                                "FROM pose_jobs WHERE id = ANY(%s)", (ids,)).fetchall()
            events = conn.execute("SELECT job_id, to_state, error_kind FROM pose_job_events "
                                  "WHERE job_id = ANY(%s) ORDER BY id", (ids,)).fetchall()
        return jobs, events

    jobs, events = retrying(read)
    by_state = Counter(row[1] for row in jobs)
    succeeded_events = Counter(job_id for job_id, to_state, _ in events if to_state == "succeeded")
    runs = journal_runs(scenario.journal)
    concurrent = {row[0] for row in jobs if row[5] is not None and overlapping(runs.get(row[5], []))}
    twice = {job_id for job_id, n in succeeded_events.items() if n > 1} | concurrent
    tally_.submitted = len(ids)
    tally_.completed = sum(by_state[s] for s in FINAL)
    tally_.lost = len(ids) - tally_.completed
    tally_.run_twice = len(twice)
    tally_.other.setdefault("succeeded", by_state["succeeded"])
    failed = Counter(row[2] for row in jobs if row[1] == "failed")
    if failed:
        tally_.other["failed"] = ",".join(f"{k}:{v}" for k, v in sorted(failed.items()))
    retried = Counter(kind for _, to_state, kind in events if to_state == "queued" and kind)
    if retried:
        tally_.other["retries"] = ",".join(f"{k}:{v}" for k, v in sorted(retried.items()))
    reruns = sum(len(v) - 1 for v in runs.values() if len(v) > 1)
    if reruns:
        tally_.other["reran_after_loss"] = reruns  # sequential re-execution: at-least-once, not a duplicate
    if tally_.lost:
        stuck = Counter(row[1] for row in jobs if row[1] not in FINAL)
        tally_.other["stuck"] = ",".join(f"{k}:{v}" for k, v in sorted(stuck.items()))
    return tally_


def jitter(low: float, high: float) -> float:
    return random.uniform(low, high)
