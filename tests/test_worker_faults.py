"""Faults that used to strand jobs or kill workers: outages, lost replies, half-open connections,
refused results, exhausted resources, a pipeline that cannot load, a dead worker under `serve`.

Faults come from a private PostgreSQL (chaos/postgres.py: stopped and started at will, never the
machine's server) and a loopback TCP proxy that freezes or swallows replies (chaos/proxy.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from chaos.postgres import PrivatePostgres
from chaos.proxy import FreezingProxy
from jobs.settings import Settings
from jobs.states import JobState
from jobs.store import JobStore, Outcome
from tests.conftest import FAKE_PIPELINE, REPO, wait_for
from tests.test_serve import free_port
from tests.test_worker_outcomes import finished
from worker import db_retry
from worker.attempt import AttemptOutcome
from worker.daemon import WorkerDaemon


def running_on(store: JobStore, job_id: int, timeout: float = 15):
    return wait_for(lambda: (j := store.get(job_id)).state == JobState.RUNNING and j, timeout,
                    what=f"job {job_id} to run")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as pg:
        yield pg


def _outage_error() -> DBAPIError:
    return DBAPIError.instance("SELECT 1", {}, psycopg.OperationalError("connection refused"), psycopg.Error,
                               connection_invalidated=True)


# ---- 1. outages longer than a minute -------------------------------------------------------------
def test_recording_an_outcome_waits_out_an_outage_of_any_length(tmp_path: Path, monkeypatch):
    """The worker used to give up after 60 s of failures and die; now only shutdown gives up."""
    monkeypatch.setattr(db_retry, "backoff_delays", lambda: iter(lambda: 5.0, None))
    slept: list[float] = []
    monkeypatch.setattr(db_retry, "_sleep", lambda seconds, give_up: slept.append(seconds))
    daemon = WorkerDaemon(Settings(home=tmp_path), "postgresql://127.0.0.1:1/nowhere")
    calls = {"n": 0}

    class OutageThenUp:
        def fail(self, job, worker_id, kind, message, **_kw):
            calls["n"] += 1
            if calls["n"] <= 60:  # five minutes of outage at 5 s per try
                raise _outage_error()
            return Outcome(JobState.QUEUED)

    daemon.store.close()
    daemon.store = OutageThenUp()  # type: ignore[assignment]
    job = type("J", (), {"id": 1, "attempt": 1})()
    assert daemon._record(job, AttemptOutcome("failed", "timeout", "slow"), None) is None  # type: ignore[arg-type]
    assert calls["n"] == 61 and sum(slept) == 300.0


def test_worker_finishing_a_job_during_an_outage_records_it_afterwards(private_pg, start_worker):
    store = JobStore.connect(private_pg.url)
    worker = start_worker("--lease-s", "20", url=private_pg.url)
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 10, "frame_s": 0.1})
    running_on(store, job.id)
    private_pg.stop("immediate")
    time.sleep(6)  # the job ends early in the outage; its outcome waits in the worker
    private_pg.start()
    done = finished(store, job.id, timeout=30)
    assert done.state == JobState.SUCCEEDED and done.attempt == 1
    assert worker.proc.poll() is None
    assert "database reachable again" in worker.log()
    store.close()


def test_serve_restarts_a_worker_daemon_that_dies(database_url: str, store: JobStore, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "POSE_DATABASE_URL": database_url, "POSE_HOME": str(tmp_path / "home")}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "serve", "--port", str(port), "--workers", "1",
             "--pipeline", FAKE_PIPELINE, "--poll-s", "0.5", "--lease-s", "2", "--heartbeat-s", "0.3"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            first = wait_for(lambda: store.live_workers(2.0), 60, what="a worker to register")[0]
            os.kill(first["pid"], signal.SIGKILL)
            second = wait_for(lambda: [w for w in store.live_workers(2.0) if w["pid"] != first["pid"]], 30,
                              what="serve to restart the worker")[0]
            job, _ = store.submit("/videos/a.mp4", params={"behave": "ok"})
            done = finished(store, job.id)
            assert done.state == JobState.SUCCEEDED and str(second["pid"]) in done.worker_id
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                assert client.get("/readyz").status_code == 200
            assert "killed by SIGKILL" in log_path.read_text() and "restarting it in" in log_path.read_text()
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()


# ---- 2. a claim whose reply is lost --------------------------------------------------------------
def test_a_claim_whose_reply_is_lost_goes_back_to_the_queue_promptly(private_pg, start_worker):
    store = JobStore.connect(private_pg.url)
    with FreezingProxy("127.0.0.1", private_pg.port) as proxy:
        # only NOTIFY wakes this worker, so the claim the proxy swallows is the one for this job
        worker = start_worker("--poll-s", "60", "--lease-s", "30", url=proxy.url_for(private_pg.url))
        time.sleep(0.5)
        proxy.drop_next_reply("SKIP LOCKED", reset_after_s=0.5)
        t0 = time.monotonic()
        job, _ = store.submit("/videos/a.mp4", params={"behave": "ok"})
        done = finished(store, job.id, timeout=20)
        assert proxy.dropped_replies == 1
    assert done.state == JobState.SUCCEEDED and done.attempt == 1  # the lost claim gave its attempt back
    assert time.monotonic() - t0 < 10, "returned by the heartbeat, not by a lease expiry"
    states = [e["to_state"] for e in store.events(job.id)]
    assert states == ["queued", "running", "queued", "running", "succeeded"]
    assert "reply to its claim was lost" in worker.log()
    store.close()


def test_statements_that_claim_are_never_repeated_blindly():
    from jobs.queries import runs_once

    assert runs_once("claim_job") and runs_once("finish_succeeded_and_claim") and runs_once("submit_job")
    assert not runs_once("extend_lease") and not runs_once("get_visible_job")


# ---- 3. a half-open connection --------------------------------------------------------------------
def test_a_frozen_connection_does_not_suspend_the_deadline(private_pg, start_worker, tmp_path: Path):
    store = JobStore.connect(private_pg.url)
    with FreezingProxy("127.0.0.1", private_pg.port) as proxy:
        worker = start_worker("--lease-s", "30", url=proxy.url_for(private_pg.url))
        pidfile = tmp_path / "child.pid"
        job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 200, "frame_s": 0.05,
                                                       "pidfile": str(pidfile)}, timeout_s=2.5, max_attempts=1)
        running_on(store, job.id)
        wait_for(pidfile.exists, 10, what="the child to start")
        proxy.freeze()  # progress writes now go nowhere, and get no error
        child = int(pidfile.read_text())
        wait_for(lambda: "deadline of 2.5s passed" in worker.log(), 10, what="the deadline to be enforced")
        wait_for(lambda: not Path(f"/proc/{child}").exists(), 5, what="the child to be killed")
        proxy.thaw()
        done = finished(store, job.id, timeout=40)
    assert done.state == JobState.FAILED and done.error_kind == "timeout"
    assert worker.proc.poll() is None
    store.close()


def test_a_frozen_worker_stops_its_job_within_the_lease_and_another_runs_it(private_pg, start_worker,
                                                                            tmp_path: Path):
    store = JobStore.connect(private_pg.url)
    with FreezingProxy("127.0.0.1", private_pg.port) as proxy:
        frozen = start_worker("--lease-s", "3", url=proxy.url_for(private_pg.url))
        pidfile = tmp_path / "child.pid"
        job, _ = store.submit("/videos/a.mp4", params={"behave": "sleep", "seconds": 60, "pidfile": str(pidfile)})
        running_on(store, job.id)
        wait_for(pidfile.exists, 10, what="the child to start")
        child = int(pidfile.read_text())
        pidfile.unlink()
        proxy.freeze()
        t0 = time.monotonic()
        wait_for(lambda: not Path(f"/proc/{child}").exists(), 8, what="the frozen worker to stop its child")
        assert time.monotonic() - t0 < 3 + 2.5
        assert "lease could not be renewed" in frozen.log()
        start_worker(url=private_pg.url)  # rescues the expired lease and runs the job
        wait_for(lambda: (j := store.get(job.id)).attempt == 2 and j.state == JobState.RUNNING, 20,
                 what="the rescue")
        store.cancel(job.id)
        assert finished(store, job.id).state == JobState.CANCELLED
        proxy.thaw()
        wait_for(lambda: "returned it to the queue" in frozen.log() or "not recording" in frozen.log(), 30,
                 what="the frozen worker to catch up")
    assert frozen.proc.poll() is None
    assert [e["to_state"] for e in store.events(job.id)].count("succeeded") == 0
    store.close()


# ---- 4. a result PostgreSQL refuses -------------------------------------------------------------
def test_a_result_postgres_refuses_fails_the_attempt_and_the_worker_goes_on(store, start_worker):
    worker = start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "unstorable"})
    done = finished(store, job.id)
    assert done.state == JobState.FAILED and done.error_kind == "result_rejected"
    assert done.attempt == 1, "a refusal is not retried"
    assert "PostgreSQL refused the result document" in done.error_message
    nxt, _ = store.submit("/videos/b.mp4")
    assert finished(store, nxt.id).state == JobState.SUCCEEDED
    assert worker.proc.poll() is None


def test_refusals_are_not_outages():
    from sqlalchemy.exc import DataError, OperationalError

    too_big = psycopg.errors.ProgramLimitExceeded("total size of jsonb object elements exceeds the maximum")
    assert not db_retry.is_transient(OperationalError("INSERT", {}, too_big))  # class 54 is no outage
    assert not db_retry.is_transient(DataError("INSERT", {}, psycopg.errors.UntranslatableCharacter("\\u0000")))
    assert db_retry.is_transient(OperationalError("SELECT", {}, psycopg.errors.AdminShutdown("terminating")))
    assert db_retry.is_transient(_outage_error())


# ---- 5. exhausted resources ----------------------------------------------------------------------
@pytest.mark.parametrize("behave", ["memory_error", "oom", "result_disk_full"])
def test_exhausted_resources_are_their_own_retried_kind_and_leave_nothing_behind(store, start_worker, tmp_path,
                                                                                 behave):
    worker = start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": behave}, max_attempts=2)
    done = finished(store, job.id, timeout=30)
    assert done.state == JobState.FAILED and done.error_kind == "resource_exhausted", done.error_message
    assert done.attempt == 2, "retried"
    assert "Traceback" not in done.error_message
    nxt, _ = store.submit("/videos/b.mp4")
    assert finished(store, nxt.id).state == JobState.SUCCEEDED
    assert worker.proc.poll() is None
    # the worker removes a job's files right after recording it: give it that moment, then nothing may be left
    wait_for(lambda: not [p for p in (tmp_path / "work").rglob("*") if p.is_file()], 10,
             what="the worker's scratch files to be removed")


# ---- 6. the heartbeat racing a finish ------------------------------------------------------------
def test_no_false_lost_lease_errors_when_jobs_finish(store, start_worker):
    worker = start_worker("--heartbeat-s", "0.05")
    ids = [store.submit(f"/videos/{i}.mp4", params={"behave": "ok", "frames": 2, "frame_s": 0.01})[0].id
           for i in range(40)]
    for job_id in ids:
        assert finished(store, job_id).state == JobState.SUCCEEDED
    assert "lost the lease" not in worker.log()


# ---- 7. a pipeline that cannot load says why ------------------------------------------------------
def test_a_pipeline_that_cannot_load_says_why_in_the_log_readyz_and_pool(database_url, store, start_worker,
                                                                         tmp_path: Path):
    worker = start_worker(pipeline="tests.fake_pipelines:create_unavailable", ready=False)
    wait_for(lambda: "run `pose-service models fetch`" in worker.log(), 20, what="the reason in the log")
    from starlette.testclient import TestClient

    from web.app import create_app

    with TestClient(create_app(Settings(database_url=database_url, home=tmp_path, lease_s=2.0), store)) as client:
        ready = wait_for(lambda: (r := client.get("/readyz")).status_code == 503
                         and "models fetch" in r.text and r, 10, what="readyz to give the reason")
        assert "cannot run jobs" in ready.json()["error"]["message"]
        pool = client.get("/v1/pool").json()
        assert "run `pose-service models fetch`" in pool["workers"][0]["problem"]
    assert worker.proc.poll() is None, "the worker stays up and keeps retrying"


def test_the_kinds_a_child_reports_are_error_kinds():
    from jobs.states import ErrorKind
    from worker.child_protocol import CHILD_ERROR_KINDS

    assert {k.value for k in ErrorKind} >= CHILD_ERROR_KINDS
