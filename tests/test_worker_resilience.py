"""Nothing lost, nothing run twice: many workers, kill -9, cancel, SIGTERM, a database restart."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from chaos.postgres import PrivatePostgres
from jobs.database import libpq_url
from jobs.states import JobState
from jobs.store import JobStore
from tests.conftest import wait_for
from tests.test_worker_outcomes import finished


def running_on(store: JobStore, job_id: int):
    return wait_for(lambda: (j := store.get(job_id)).state == JobState.RUNNING and j, 15,
                    what=f"job {job_id} to run")


def test_several_workers_drain_hundreds_of_jobs_none_twice_none_lost(store, start_worker):
    workers = [start_worker(ready=False) for _ in range(4)]
    for worker in workers:
        worker.wait_ready()
    ids = [store.submit(f"/videos/{i}.mp4", params={"behave": "ok", "frames": 2, "frame_s": 0.002})[0].id
           for i in range(300)]
    wait_for(lambda: store.count_by_state()["succeeded"] == 300, 120, interval=0.2, what="all jobs to finish")
    with store.engine.connect() as conn:
        from sqlalchemy import text

        runs = Counter(r.job_id for r in conn.execute(
            text("SELECT job_id FROM pose_job_events WHERE to_state = 'running'")))
        ran_on = Counter(r.worker_id for r in conn.execute(text("SELECT worker_id FROM pose_jobs")))
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    assert len(ran_on) == 4, f"every worker should have taken part: {ran_on}"
    assert all(w.proc.poll() is None for w in workers)


def test_kill_9_mid_job_then_completes_exactly_once_elsewhere(store, start_worker, tmp_path: Path):
    victim = start_worker()
    pidfile = tmp_path / "first-child.pid"
    job, _ = store.submit("/videos/a.mp4", params={"behave": "sleep", "seconds": 4,
                                                   "pidfile": str(pidfile)})
    first = running_on(store, job.id)
    assert str(victim.pid) in first.worker_id
    wait_for(pidfile.exists, 10, what="the child to write its pid")
    orphan = int(pidfile.read_text())
    pidfile.unlink()
    victim.signal(signal.SIGKILL)
    victim.wait()
    # the child dies with its worker (PR_SET_PDEATHSIG) instead of sleeping on unsupervised
    wait_for(lambda: not Path(f"/proc/{orphan}").exists() or "zombie" in Path(f"/proc/{orphan}/status").read_text(),
             1.5, what="the orphaned child to die")
    rescuer = start_worker()
    done = finished(store, job.id, timeout=30)
    assert done.state == JobState.SUCCEEDED and done.attempt == 2
    assert str(rescuer.pid) in done.worker_id
    events = store.events(job.id)
    assert [e["to_state"] for e in events].count("succeeded") == 1
    lost = [e for e in events if e["error_kind"] == "worker_lost"]
    assert len(lost) == 1 and lost[0]["to_state"] == "queued"
    assert "lease expired" in lost[0]["error_message"]


def test_poison_job_stops_after_max_attempts_as_worker_lost(store, start_worker):
    job, _ = store.submit("/videos/poison.mp4", params={"behave": "sleep", "seconds": 60}, max_attempts=2)
    for attempt in (1, 2):
        victim = start_worker()
        wait_for(lambda a=attempt, pid=victim.pid: (j := store.get(job.id)).state == JobState.RUNNING
                 and j.attempt == a and str(pid) in j.worker_id, 20, what=f"attempt {attempt}")
        victim.signal(signal.SIGKILL)
        victim.wait()
    start_worker()  # a live worker rescues the expired lease: attempts are used up
    done = finished(store, job.id, timeout=30)
    assert done.state == JobState.FAILED and done.error_kind == "worker_lost" and done.attempt == 2


def test_cancel_queued_job_is_immediate(store):
    job, _ = store.submit("/videos/a.mp4")
    cancelled = store.cancel(job.id)
    assert cancelled.state == JobState.CANCELLED and cancelled.finished_at is not None
    assert store.cancel(job.id) is None  # already final
    assert store.claim("w", 10) is None


def test_cancel_running_job_kills_the_child_within_a_second(store, start_worker, tmp_path: Path):
    start_worker()
    pidfile = tmp_path / "child.pid"
    job, _ = store.submit("/videos/a.mp4", params={"behave": "sleep", "seconds": 60, "pidfile": str(pidfile)})
    running_on(store, job.id)
    wait_for(pidfile.exists, 10, what="the child to write its pid")
    child_pid = int(pidfile.read_text())
    t0 = time.monotonic()
    assert store.cancel(job.id).cancel_requested
    done = finished(store, job.id)
    assert time.monotonic() - t0 < 1.0
    assert done.state == JobState.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
    nxt, _ = store.submit("/videos/b.mp4")
    assert finished(store, nxt.id).state == JobState.SUCCEEDED


def test_sigterm_lets_the_running_job_finish(store, start_worker):
    worker = start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 10, "frame_s": 0.1})
    queued_after, _ = store.submit("/videos/b.mp4", priority=-1)
    running_on(store, job.id)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert store.get(job.id).state == JobState.SUCCEEDED
    assert store.get(queued_after.id).state == JobState.QUEUED  # stopped claiming


def test_sigterm_past_grace_releases_the_job_without_spending_an_attempt(store, start_worker):
    worker = start_worker()
    job, _ = store.submit("/videos/a.mp4", params={"behave": "sleep", "seconds": 60}, max_attempts=1)
    running_on(store, job.id)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    released = store.get(job.id)
    assert released.state == JobState.QUEUED and released.attempt == 0 and released.worker_id is None
    assert [e["to_state"] for e in store.events(job.id)] == ["queued", "running", "queued"]
    workers = store.live_workers(lease_s=60)
    assert all(str(worker.pid) not in w["id"] for w in workers)


def test_raw_sql_insert_is_picked_up_by_notify(database_url, store, start_worker):
    # a 30 s poll: only the NOTIFY from the insert trigger can explain a fast pickup
    start_worker("--poll-s", "30")
    latencies = []
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for _ in range(5):
            job_id = conn.execute("INSERT INTO pose_jobs (video_path) VALUES ('/abs/video.mp4') RETURNING id"
                                  ).fetchone()[0]
            done = finished(store, job_id)
            assert done.state == JobState.SUCCEEDED
            latencies.append((done.started_at - done.created_at).total_seconds())
    assert max(latencies) < 0.5, latencies


def test_worker_refuses_a_database_without_the_schema(empty_database_url, start_worker):
    worker = start_worker(url=empty_database_url, ready=False)
    assert worker.wait(30) == 2
    assert "Run `pose-service db upgrade` first" in worker.log()


@pytest.fixture
def private_postgres():
    """A PostgreSQL of this test's own, so it can be stopped and restarted; stopped and removed
    afterwards even though the restarts replaced its postmaster (pgserver's own handle could not)."""
    with PrivatePostgres() as pg:
        yield pg.url, pg.outage
        pid = pg.postmaster_pid()
    assert pid is None or not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text(), \
        "the private server outlived its test"


def test_worker_survives_a_postgres_restart(private_postgres, start_worker):
    url, outage = private_postgres
    store = JobStore.connect(url)
    worker = start_worker("--poll-s", "30", url=url)
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 30, "frame_s": 0.1})
    running_on(store, job.id)
    outage(2.0)
    done = finished(store, job.id, timeout=30)
    assert done.state == JobState.SUCCEEDED and done.attempt == 1
    # the listener reconnected and LISTENs again: a new job is picked up without waiting for a poll
    wait_for(lambda: "listening for jobs and cancel requests again" in worker.log(), 20, what="re-LISTEN")
    nxt, _ = store.submit("/videos/b.mp4")
    done = finished(store, nxt.id)
    assert (done.started_at - done.created_at).total_seconds() < 1.0
    assert worker.proc.poll() is None
    store.close()


def test_store_calls_succeed_right_after_a_postgres_restart(private_postgres):
    url, outage = private_postgres
    store = JobStore.connect(url, pool_size=3)
    job, _ = store.submit("/videos/a.mp4")
    idle = [store.engine.raw_connection() for _ in range(3)]
    for conn in idle:
        conn.close()  # three pooled connections that the restart will kill
    outage(0.2)
    assert store.get(job.id).id == job.id  # a dead connection costs one retry, not an error
    store.close()
