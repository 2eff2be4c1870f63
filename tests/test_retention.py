"""Retention (POSE_RETENTION_DAYS, jobs/retention.py): per-frame rows of jobs that ended long ago go,
by dropping their partition of pose_frame_rows when every job in it is that old and by small DELETEs
otherwise; nothing of a queued, running or waiting job, or of one that ended recently, is touched;
passes are safe to run from many processes at once; the result route says 410 once frames are gone;
migration 0008 keeps the rows there are, both ways."""

from __future__ import annotations

import json
import threading
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobs.database import downgrade, libpq_url, upgrade
from jobs.result_stream import FramesDeleted, open_result
from jobs.retention import LOCK_KEY, RetentionDuty
from jobs.settings import Settings
from jobs.store import JobStore
from tests.conftest import wait_for
from tests.fake_pipelines import person

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what this project ships
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HEAD = {
    "schema": "pose-service/result@1",
    "video": {"width": 64, "height": 48, "fps": 30.0, "frames": 3, "duration_s": 0.1, "rotation": 0,
              "skipped_frames": 0},
    "model": {"name": "t", "backend": "test", "device": "cpu", "weights_sha256": "-"},
    "keypoint_names": [f"kp{i}" for i in range(33)],
    "skeleton": [[0, 1]],
    "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0},
}
FRAMES = 3  # two people each: 6 rows a job


def frame(i: int) -> dict[str, Any]:
    return {"index": i, "time_s": round(i / 30.0, 6), "people": [person(i, 1), person(i, 2)]}


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def next_ids_from(url: str, first: int) -> None:
    sql(url, f"ALTER TABLE pose_jobs ALTER COLUMN id RESTART WITH {int(first)}")


def add_partition(url: str, lo: int, hi: int) -> None:
    sql(url, "SELECT pose_frame_rows_add_partition(%s, %s)", (lo, hi))


def partitions(url: str) -> dict[str, tuple[int | None, int | None]]:
    return {name: (lo, hi) for name, lo, hi in sql(url, "SELECT name, lo, hi FROM pose_frame_partitions()")}


def rows(url: str, job_id: int) -> int:
    return int(sql(url, "SELECT count(*) FROM pose_frame_rows WHERE job_id = %s", (job_id,))[0][0])


def ended(url: str, job_id: int, state: str, days_ago: float) -> None:
    sql(url, "UPDATE pose_jobs SET state = %s, finished_at = now() - make_interval(secs => %s) WHERE id = %s",
        (state, days_ago * 86400, job_id))


def job(store: JobStore, url: str, state: str, days_ago: float | None = None, frames: bool = True) -> int:
    """A job with FRAMES frames stored (unless ``frames`` is False) that is now ``state``, ended
    ``days_ago`` days ago if that is given."""
    submitted, _ = store.submit("/videos/v.mp4")
    if state == "queued":
        return submitted.id
    claimed = store.claim("w", 60)
    assert claimed is not None and claimed.id == submitted.id
    if state == "succeeded":
        document = {**HEAD, "frames": [frame(i) for i in range(FRAMES)]}
        assert store.succeed(claimed, "w", json.dumps(document), FRAMES, FRAMES).owned
    elif frames:
        assert store.store_frames(claimed, "w", [frame(i) for i in range(FRAMES)], first_batch=True)
    if days_ago is not None:
        ended(url, claimed.id, state, days_ago)
    return claimed.id


def frames_deleted(url: str, job_id: int) -> bool:
    return bool(sql(url, "SELECT frames_deleted_at IS NOT NULL FROM pose_results WHERE job_id = %s", (job_id,))[0][0])


def later(days: float):  # noqa: ANN201 - a clock
    return lambda: datetime.now(UTC) + timedelta(days=days)


@pytest.fixture
def layout(store: JobStore, database_url: str) -> dict[str, int]:
    """Jobs 1001-1003 in one partition, all ended 8-10 days ago; jobs 1004-1007 in another that a
    running and a recent job hold back; jobs from 1008 in no partition (the DEFAULT one)."""
    # pose jobs alone: the analysis jobs their successes would queue (migration 0011) would take ids
    sql(database_url, "ALTER TABLE pose_jobs DISABLE TRIGGER pose_jobs_analysis_after_pose")
    next_ids_from(database_url, 1001)
    add_partition(database_url, 1001, 1004)
    add_partition(database_url, 1004, 1008)
    jobs = {
        "old_succeeded": job(store, database_url, "succeeded", 10),  # 1001
        "old_failed": job(store, database_url, "failed", 9),  # 1002, partial rows
        "old_cancelled": job(store, database_url, "cancelled", 8, frames=False),  # 1003
        "past_retention": job(store, database_url, "succeeded", 7.5),  # 1004: within the grace
        "past_grace": job(store, database_url, "succeeded", 9),  # 1005
        "recent": job(store, database_url, "succeeded", 1),  # 1006
        "running": job(store, database_url, "running"),  # 1007
        "default_old": job(store, database_url, "succeeded", 7.5),  # 1008
        "default_recent": job(store, database_url, "succeeded", 1),  # 1009
    }
    # a segment that ended long ago, of a parent still waiting for its other segments
    parent = sql(database_url, "INSERT INTO pose_jobs (video_path, state) VALUES ('/videos/long.mp4', 'waiting') "
                               "RETURNING id")[0][0]
    segment = sql(database_url, "INSERT INTO pose_jobs (video_path, parent_id, segment_index, segment_first, "
                                "segment_stop, state, attempt, finished_at) VALUES ('/videos/long.mp4', %s, 0, 0, 10, "
                                "'succeeded', 1, now() - interval '10 days') RETURNING id", (parent,))[0][0]
    sql(database_url, "INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s) VALUES (%s, 1, 0, 0)",
        (segment,))
    jobs.update(parent=parent, segment=segment, queued=job(store, database_url, "queued"))
    assert jobs["running"] == 1007 and jobs["default_old"] == 1008
    return jobs


def test_retention_removes_exactly_what_it_should(store: JobStore, database_url: str, layout: dict[str, int]) -> None:
    before = {name: rows(database_url, job_id) for name, job_id in layout.items()}
    assert before == {"old_succeeded": 6, "old_failed": 6, "old_cancelled": 0, "past_retention": 6, "past_grace": 6,
                      "recent": 6, "running": 6, "default_old": 6, "default_recent": 6, "parent": 0, "segment": 1,
                      "queued": 0}
    duty = RetentionDuty(store, 7, delete_batch_rows=4)  # two batches a job
    done = duty.run_once()

    # the first partition's jobs all ended more than 7 days ago: it is dropped whole (and the template's
    # partition of ids 1-1000, which has no job at all); the second is held back by a running job
    assert done.partitions_dropped == ["pose_frame_rows_1", "pose_frame_rows_1001"]
    assert "pose_frame_rows_1004" in partitions(database_url)
    # what cannot go by partition goes by DELETE: in the held-back partition only a job more than a day
    # past the retention, in the DEFAULT partition any job past it
    assert (done.jobs_deleted, done.rows_deleted) == (2, 12)
    after = {name: rows(database_url, job_id) for name, job_id in layout.items()}
    assert after == {**before, "old_succeeded": 0, "old_failed": 0, "past_grace": 0, "default_old": 0}
    assert {name for name in layout if name in ("old_succeeded", "past_grace", "default_old", "past_retention",
                                                "recent", "default_recent") and frames_deleted(database_url,
                                                                                              layout[name])} == {
        "old_succeeded", "past_grace", "default_old"}
    # the DEFAULT partition holds rows, so the partition added ahead starts well above the highest job id
    (added,) = done.partitions_added
    assert partitions(database_url)[added][0] > layout["queued"] + 1000
    assert sql(database_url, "SELECT count(*) FROM pg_constraint WHERE conname = 'pose_frame_rows_default_fence'"
               ) == [(0,)]

    # a result whose frames went says so; another still reads whole; the job and its summary stay
    with pytest.raises(FramesDeleted, match=f"job {layout['old_succeeded']}'s frames were deleted by retention"):
        open_result(store, layout["old_succeeded"])
    assert len(store.result(layout["past_retention"])["frames"]) == FRAMES
    assert store.get(layout["old_succeeded"]).state == "succeeded"
    tracks = sql(database_url, "SELECT tracks FROM pose_results WHERE job_id = %s", (layout["old_succeeded"],))[0][0]
    assert [t["track_id"] for t in tracks] == [1, 2]

    # nothing more to do now
    again = duty.run_once()
    assert not again.did_something and not again.skipped

    # two days later the job within the grace has passed it too; the recent ones are still kept
    done = RetentionDuty(store, 7, clock=later(2)).run_once()
    assert (done.partitions_dropped, done.jobs_deleted) == ([], 1)
    assert rows(database_url, layout["past_retention"]) == 0 and frames_deleted(database_url, layout["past_retention"])
    assert rows(database_url, layout["recent"]) == rows(database_url, layout["running"]) == 6
    assert rows(database_url, layout["default_recent"]) == 6 and rows(database_url, layout["segment"]) == 1


def test_a_held_back_partition_goes_whole_once_its_last_job_ended_long_enough_ago(
    store: JobStore, database_url: str, layout: dict[str, int]
) -> None:
    RetentionDuty(store, 7).run_once()
    assert "pose_frame_rows_1004" in partitions(database_url)
    ended(database_url, layout["running"], "succeeded", 7.2)  # (as if it had)
    ended(database_url, layout["recent"], "succeeded", 7.1)
    done = RetentionDuty(store, 7).run_once()
    assert done.partitions_dropped == ["pose_frame_rows_1004"] and done.rows_deleted == 0
    assert rows(database_url, layout["recent"]) == rows(database_url, layout["running"]) == 0
    assert frames_deleted(database_url, layout["recent"])
    # the waiting parent's segment keeps its rows until the parent ends too
    assert rows(database_url, layout["segment"]) == 1
    ended(database_url, layout["parent"], "failed", 8)
    done = RetentionDuty(store, 7).run_once()
    assert rows(database_url, layout["segment"]) == 0


def test_without_a_retention_nothing_is_removed_but_partitions_are_kept_ahead(
    store: JobStore, database_url: str, layout: dict[str, int]
) -> None:
    before = {name: rows(database_url, job_id) for name, job_id in layout.items()}
    done = RetentionDuty(store, None).run_once()
    assert done.partitions_dropped == [] and done.rows_deleted == 0 and len(done.partitions_added) == 1
    assert {name: rows(database_url, job_id) for name, job_id in layout.items()} == before


def test_partitions_are_added_a_day_of_jobs_ahead(store: JobStore, database_url: str) -> None:
    assert partitions(database_url) == {"pose_frame_rows_1": (1, 1001), "pose_frame_rows_default": (None, None)}
    next_ids_from(database_url, 950)
    store.submit("/videos/v.mp4")
    # 950 + a day's ids (here the least partition, 100) passes the last partition's end, 1000
    assert RetentionDuty(store, None).run_once().partitions_added == ["pose_frame_rows_1001"]
    assert partitions(database_url)["pose_frame_rows_1001"] == (1001, 1101)
    assert RetentionDuty(store, None).run_once().partitions_added == []
    # 300 more jobs today: partitions of 301 ids, until a day's worth lies beyond the highest id (1250)
    sql(database_url, "INSERT INTO pose_jobs (video_path) SELECT '/videos/v.mp4' FROM generate_series(1, 300)")
    assert RetentionDuty(store, None).run_once().partitions_added == ["pose_frame_rows_1101", "pose_frame_rows_1402"]
    assert partitions(database_url)["pose_frame_rows_1402"] == (1402, 1703)


def test_a_partition_is_added_without_scanning_a_busy_default_partition(store: JobStore, database_url: str) -> None:
    next_ids_from(database_url, 5000)  # beyond every partition: its rows go to the DEFAULT partition
    job_id = job(store, database_url, "running")
    assert sql(database_url, "SELECT DISTINCT tableoid::regclass::text FROM pose_frame_rows") == [
        ("pose_frame_rows_default",)]
    # a fence left by an interrupted pass is removed, and a new one used and removed again
    sql(database_url, "SELECT pose_frame_rows_fence_default(9000, 9100)")
    added = RetentionDuty(store, None).run_once().partitions_added
    assert added == ["pose_frame_rows_6001"] and partitions(database_url)[added[0]] == (6001, 6101)
    assert sql(database_url, "SELECT count(*) FROM pg_constraint WHERE conname = 'pose_frame_rows_default_fence'"
               ) == [(0,)]
    assert rows(database_url, job_id) == 6  # still there, still writable
    claimed = store.get(job_id)
    assert store.store_frames(claimed, "w", [frame(9)], first_batch=False)
    assert rows(database_url, job_id) == 8


def test_a_pass_skips_while_another_runs(store: JobStore, database_url: str, layout: dict[str, int]) -> None:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        assert RetentionDuty(store, 7).run_once().skipped
        assert rows(database_url, layout["old_succeeded"]) == 6
        other.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    assert not RetentionDuty(store, 7).run_once().skipped
    assert rows(database_url, layout["old_succeeded"]) == 0


def test_concurrent_passes_and_frame_writers_are_safe(store: JobStore, database_url: str,
                                                      layout: dict[str, int]) -> None:
    """Four passes at once (as four processes would run them) while a worker keeps storing frames of
    the running job: every pass ends cleanly, the work is done once, and no frame is lost."""
    running = store.get(layout["running"])
    stop, written, errors = threading.Event(), [FRAMES], list[BaseException]()

    def write() -> None:
        try:
            while not stop.is_set():
                assert store.store_frames(running, "w", [frame(written[0])], first_batch=False)
                written[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    passes: list[Any] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        own = JobStore.connect(database_url, pool_size=2)  # as another process would
        barrier.wait()
        try:
            passes.append(RetentionDuty(own, 7, delete_batch_rows=2).run_once())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    writer.join(10)
    assert errors == []
    assert len(passes) == 4
    assert sorted(name for p in passes for name in p.partitions_dropped) == ["pose_frame_rows_1",
                                                                           "pose_frame_rows_1001"]
    assert sum(p.rows_deleted for p in passes) == 12
    assert rows(database_url, layout["running"]) == 2 * written[0]
    assert rows(database_url, layout["recent"]) == 6


def test_worker_processes_run_retention_too(store: JobStore, database_url: str, start_worker) -> None:
    """A deployment without a web process (jobs inserted by SQL) still gets retention."""
    old = job(store, database_url, "succeeded", 10)
    start_worker(env={"POSE_RETENTION_DAYS": "7"})
    wait_for(lambda: rows(database_url, old) == 0, timeout=20, what="the worker's retention pass")
    assert frames_deleted(database_url, old)


def test_deleting_a_job_deletes_its_rows(store: JobStore, database_url: str) -> None:
    job_id = job(store, database_url, "succeeded", 1)
    assert rows(database_url, job_id) == 6
    sql(database_url, "DELETE FROM pose_jobs WHERE id = %s", (job_id,))
    assert rows(database_url, job_id) == 0


def test_the_result_route_says_410_once_the_frames_are_gone(store: JobStore, database_url: str, tmp_path) -> None:
    from web.app import create_app

    old = job(store, database_url, "succeeded", 10)
    kept = job(store, database_url, "succeeded", 1)
    app = create_app(Settings(database_url=database_url, home=tmp_path, retention_days=7.0), store)
    with TestClient(app, raise_server_exceptions=False) as client:  # its startup pass deletes them
        wait_for(lambda: frames_deleted(database_url, old), what="the web process's retention pass")
        for fmt in ("json", "ndjson", "csv"):
            r = client.get(f"/v1/jobs/{old}/result?format={fmt}")
            assert r.status_code == 410, r.text
            error = r.json()["error"]
            assert error["code"] == "frames_expired" and "deleted by retention" in error["message"]
        assert client.get(f"/v1/jobs/{old}").json()["state"] == "succeeded"
        assert len(client.get(f"/v1/jobs/{kept}/result").json()["frames"]) == FRAMES
        assert "410" in json.dumps(client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/result"])


# ---- migration 0008 ---------------------------------------------------------------------------------
def test_the_migration_keeps_the_rows_both_ways(empty_database_url: str) -> None:
    upgrade(empty_database_url, "0007_segments")
    job_id = sql(empty_database_url, "INSERT INTO pose_jobs (video_path, state, attempt) VALUES ('/v.mp4', "
                                     "'succeeded', 1) RETURNING id")[0][0]
    sql(empty_database_url, "INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s, track_id) "
                            "SELECT %s, 1, g, g / 30.0, 1 FROM generate_series(0, 9) AS g", (job_id,))
    upgrade(empty_database_url)
    # the table as it was is now the partition of the ids so far, its index adopted; one partition ahead
    assert partitions(empty_database_url) == {"pose_frame_rows_0": (None, job_id + 1),
                                              f"pose_frame_rows_{job_id + 1}": (job_id + 1, job_id + 1001),
                                              "pose_frame_rows_default": (None, None)}
    assert sql(empty_database_url, "SELECT tableoid::regclass::text, count(*) FROM pose_frame_rows GROUP BY 1") == [
        ("pose_frame_rows_0", 10)]
    assert sql(empty_database_url, "SELECT count(*) FROM pose_frame_people") == [(10,)]
    plan = json.dumps(sql(empty_database_url, "EXPLAIN (FORMAT JSON) SELECT * FROM pose_frame_rows "
                                              "WHERE job_id = %s AND attempt = 1", (job_id,)))
    assert "pose_frame_rows_0_job_idx" in plan and "pose_frame_rows_default" not in plan  # one partition read
    downgrade(empty_database_url, "0007_segments")
    assert sql(empty_database_url, "SELECT count(*) FROM pose_frame_people") == [(10,)]
    assert sql(empty_database_url, "SELECT relkind FROM pg_class WHERE relname = 'pose_frame_rows'") == [("r",)]
    assert sql(empty_database_url, "SELECT conname FROM pg_constraint WHERE conrelid = 'pose_frame_rows'::regclass"
               ) == [("pose_frame_rows_job_id_fkey",)]
    upgrade(empty_database_url)
