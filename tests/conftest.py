"""Shared fixtures: a real PostgreSQL per test and real worker daemons in real subprocesses.

The server is POSE_TEST_DATABASE_URL when set (CI: the machine's PostgreSQL), else an embedded
pgserver started for the session. Each test gets its own database cloned from a migrated template,
so workers in one test can never see another test's jobs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from jobs.database import libpq_url, upgrade
from jobs.sample_media import media_dir
from jobs.store import JobStore

REPO = Path(__file__).resolve().parent.parent
MEDIA = media_dir()
FAKE_PIPELINE = "tests.fake_pipelines:create"


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(path="/" + dbname))


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("POSE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    # unlike the service's own embedded server, the test session's one stops when the session ends
    server = pgserver.get_server(tmp_path_factory.mktemp("embedded-pg") / "pgdata", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(url), autocommit=True)


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str, template: str | None = None) -> Iterator[str]:
    """A uniquely named database on ``server_url`` (a copy of ``template`` if given), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield name
    finally:
        with _admin(server_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    with scratch_database(pg_server_url, "pose_tmpl") as name:
        upgrade(with_dbname(pg_server_url, name))
        yield name


@pytest.fixture
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    with scratch_database(pg_server_url, "pose_t", template_db) as name:
        yield with_dbname(pg_server_url, name)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    with scratch_database(pg_server_url, "pose_e") as name:
        yield with_dbname(pg_server_url, name)


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    s = JobStore.connect(database_url)
    yield s
    s.close()


class WorkerProcess:
    """`pose-service worker` as a real subprocess, with fast test timings."""

    def __init__(self, database_url: str, home: Path, args: list[str], env: dict[str, str]) -> None:
        self.log_path = home / f"worker-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "jobs.cli", "worker", *args]
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "POSE_DATABASE_URL": database_url, "POSE_HOME": str(home), **env},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_for(lambda: "worker ready: claiming jobs" in self.log() or self.proc.poll() is not None,
                 timeout, what=f"worker {self.pid} to start")
        assert self.proc.poll() is None, f"worker exited early:\n{self.log()}"

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


FAST = ["--lease-s", "2", "--heartbeat-s", "0.3", "--poll-s", "0.5", "--retry-base-s", "0.1",
        "--shutdown-grace-s", "3"]


@pytest.fixture
def start_worker(database_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker daemons on this test's database: ``start_worker(*extra_args, env={})``."""
    started: list[WorkerProcess] = []

    def start(*extra: str, env: dict[str, str] | None = None, ready: bool = True,
              pipeline: str = FAKE_PIPELINE, url: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(url or database_url, tmp_path, ["--pipeline", pipeline, *FAST, *extra], env or {})
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()
