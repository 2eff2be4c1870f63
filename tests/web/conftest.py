"""Fixtures for the REST API tests: one migrated database for the session, emptied before each test,
the app under Starlette's TestClient, and a real uvicorn subprocess where real HTTP matters.

The server comes from tests/conftest.py's ``pg_server_url`` (POSE_TEST_DATABASE_URL, else an
embedded PostgreSQL). Truncating between tests is ~100x cheaper than a database per test, which keeps
this directory well under the suite's time budget.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what this project ships
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from jobs.database import libpq_url, upgrade
from jobs.job import Job
from jobs.settings import Settings
from jobs.store import JobStore
from tests.conftest import MEDIA, REPO, with_dbname
from web.app import create_app

VIDEO = MEDIA / "five_frames_720p.mp4"
TABLES = ("pose_jobs, pose_job_events, pose_workers, pose_uploads, pose_upload_chunks, pose_results, pose_api_tokens, "
          "pose_frame_rows")


@pytest.fixture(scope="session")
def web_db_url(pg_server_url: str) -> Iterator[str]:
    name = f"pose_web_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(pg_server_url, name)
    upgrade(url)
    yield url
    try:
        with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.OperationalError:  # the session's embedded server may already be going away
        pass


@pytest.fixture(scope="session")
def web_store(web_db_url: str) -> Iterator[JobStore]:
    store = JobStore.connect(web_db_url, pool_size=8)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    """Every test starts from empty tables (ids restart at 1)."""
    if "web_db_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("web_db_url")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A media root holding a real video, with traps around it: a file outside the root and a
    symlink inside the root that points out of it."""
    base = tmp_path_factory.mktemp("media")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    shutil.copy(VIDEO, root / "video.mp4")
    shutil.copy(VIDEO, root / "sub" / "other.mp4")
    outside = base / "outside"
    outside.mkdir()
    shutil.copy(VIDEO, outside / "secret.mp4")
    (root / "escape.mp4").symlink_to(outside / "secret.mp4")
    (root / "escape_dir").symlink_to(outside)
    (root / "inner_link.mp4").symlink_to(root / "sub" / "other.mp4")
    return root


@pytest.fixture
def make_client(
    web_db_url: str, web_store: JobStore, media_root: Path, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings_changes, app_options={...})``: the app in a TestClient (lifespan run)."""
    clients: list[TestClient] = []

    def make(*, app_options: dict[str, Any] | None = None, store: JobStore | None = None, **changes: Any) -> TestClient:
        settings = Settings(database_url=web_db_url, media_roots=(str(media_root),), home=tmp_path).replace(**changes)
        options = {"token_refresh_s": 0.0, "hybrid_timeout_s": 10.0, **(app_options or {})}
        app = create_app(settings, store or web_store, **options)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def video_job(client: TestClient, media_root: Path, **fields: Any) -> dict[str, Any]:
    r = client.post("/v1/jobs", json={"video_path": str(media_root / "video.mp4"), **fields})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def result_document(people: int = 1, frames: int = 1, width: int = 64, height: int = 48) -> dict[str, Any]:
    """A small but complete result@1 document (web/result_document.py's Result validates it)."""
    names = [f"kp{i}" for i in range(33)]
    person = {
        "track_id": 1,
        "bbox": [1.0, 2.0, width - 1.0, height - 2.0],
        "score": 0.9,
        "keypoints": [[width / 2, height / 2, 0.0, 0.99, 0.98]] * 33,
        "world": [[0.0, 0.0, 0.0]] * 33,
    }
    return {
        "schema": "pose-service/result@1",
        "video": {
            "width": width, "height": height, "fps": 1.0, "frames": frames, "duration_s": 1.0, "rotation": 0,
            "skipped_frames": 0,
        },
        "model": {"name": "test", "backend": "test", "device": "cpu", "weights_sha256": "0"},
        "keypoint_names": names,
        "skeleton": [[0, 1]],
        "frames": [{"index": i, "time_s": float(i), "people": [person] * people} for i in range(frames)],
        "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0},
    }


def run_job(store: JobStore, worker_id: str = "test-worker", *, document: dict[str, Any] | None = None,
            keep_analysis: bool = False) -> Job:
    """Claim the next job and finish it successfully, as a worker would (through the real SQL). The
    analysis job its success queues (migration 0011) is removed unless ``keep_analysis``, so tests of
    the job core see the queue they built."""
    store.register_worker(worker_id, host="testhost", pid=os.getpid(), gpu=None, mode="warm")
    job = store.claim(worker_id, 30.0)
    assert job is not None, "nothing to claim"
    store.record_progress(job, worker_id, 5, 5, 30.0)
    outcome = store.succeed(job, worker_id, json.dumps(document or result_document()), 5, 5)
    assert outcome.owned
    if not keep_analysis:
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM pose_jobs WHERE source_job_id = :id AND kind = 'analysis'"), {"id": job.id})
    return job


class ThreadWorker:
    """A stand-in worker in a thread: claims jobs via JobStore and finishes them with ``finish(job)``."""

    def __init__(self, store: JobStore, finish: Callable[[JobStore, Job, str], None], worker_id: str = "thread-w"):
        self.store, self.finish, self.worker_id = store, finish, worker_id
        self.stop = threading.Event()
        self.jobs: list[Job] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.store.register_worker(self.worker_id, host="testhost", pid=os.getpid(), gpu=None, mode="warm")
        while not self.stop.is_set():
            job = self.store.claim(self.worker_id, 30.0)
            if job is None:
                time.sleep(0.02)
                continue
            self.jobs.append(job)
            self.finish(self.store, job, self.worker_id)

    def __enter__(self) -> ThreadWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`pose-service web` as a real uvicorn subprocess."""

    def __init__(
        self,
        db_url: str,
        home: Path,
        env: dict[str, str],
        args: list[str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"web-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "jobs.cli", "web", "--port", str(self.port), *(args or [])],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "POSE_DATABASE_URL": db_url, "POSE_HOME": str(home), **env},
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"web server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"web server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def start_server(web_db_url: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        wait: bool = True,
        prefix: list[str] | None = None,
    ) -> LiveServer:
        """``prefix``: a command the server runs under (e.g. a shell that sets a resource limit)."""
        server = LiveServer(web_db_url, tmp_path, env or {}, args, prefix)
        servers.append(server)
        return server.wait_ready() if wait else server

    yield start
    for s in servers:
        s.stop()
