"""Per-frame pose data: frames leave the child as they are produced, the worker COPYs them into
pose_frame_rows while the job runs (fenced by job, worker and attempt), and results stream back out
of the database a page at a time. Memory is checked as growth bounds (tracemalloc peaks), never as
times."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
from pathlib import Path

import psycopg
from sqlalchemy import text

from chaos.proxy import FreezingProxy
from jobs.database import libpq_url
from jobs.job import Job
from jobs.queries import query
from jobs.result_stream import CSV_HEADER, PAGE_FRAMES, FrameWindow, ResultFormat, open_result
from jobs.states import JobState
from jobs.store import JobStore
from tests.conftest import wait_for
from tests.fake_pipelines import StreamingPipeline, person
from tests.test_worker_faults import private_pg  # noqa: F401 - a fixture
from tests.test_worker_outcomes import finished
from web.result_document import Result
from worker.child_protocol import ChildMessage, JobRequest
from worker.frame_spool import BlockEncoder
from worker.frame_writer import FrameWriter
from worker.pipeline.child import Reporter, run_one

STREAMING = "tests.fake_pipelines:create_streaming"
HEAD = {
    "schema": "pose-service/result@1",
    "video": {"width": 64, "height": 48, "fps": 30.0, "frames": 0, "duration_s": 0.0, "rotation": 0,
              "skipped_frames": 0},
    "model": {"name": "t", "backend": "test", "device": "cpu", "weights_sha256": "-"},
    "keypoint_names": [f"kp{i}" for i in range(33)],
    "skeleton": [[0, 1]],
    "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0},
}


def frame(i: int, people: int = 2) -> dict:
    return {"index": i, "time_s": round(i / 30.0, 6), "people": [person(i, t) for t in range(1, people + 1)]}


def view_rows(url: str, job_id: int) -> list[tuple]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute("SELECT frame_index, track_id FROM pose_frame_people WHERE job_id = %s "
                            "ORDER BY frame_index, track_id", (job_id,)).fetchall()


def table_attempts(url: str, job_id: int) -> set[int]:
    with psycopg.connect(libpq_url(url)) as conn:
        return {r[0] for r in conn.execute("SELECT DISTINCT attempt FROM pose_frame_rows WHERE job_id = %s",
                                           (job_id,))}


def stored_job(store: JobStore, frames: int, people: int = 2, batch: int = 256) -> Job:
    job, _ = store.submit("/videos/long.mp4")
    claimed = store.claim("w", 60)
    assert claimed is not None and claimed.id == job.id
    for start in range(0, frames, batch):
        chunk = [frame(i, people) for i in range(start, min(frames, start + batch))]
        assert store.store_frames(claimed, "w", chunk, first_batch=start == 0)
    head = {**HEAD, "video": {**HEAD["video"], "frames": frames}}
    assert store.succeed(claimed, "w", json.dumps(head), frames, frames, frames_stored=True).owned
    return claimed


# ---- the worker stores frames while the job runs ----------------------------------------------------
def test_frames_are_stored_while_the_job_runs_and_the_result_is_result_at_1(store, database_url, start_worker):
    start_worker(pipeline=STREAMING)
    job, _ = store.submit("/videos/a.mp4", params={"frames": 120, "people": 2, "empty_every": 7, "frame_s": 0.02})
    partial = wait_for(lambda: store.get(job.id).state == JobState.RUNNING and len(view_rows(database_url, job.id)),
                       20, what="rows while the job runs")
    assert 0 < partial < 240 - 2 * 18
    assert store.get(job.id).frames_done > 0
    done = finished(store, job.id)
    assert done.state == JobState.SUCCEEDED and done.frames_done == 120
    rows = view_rows(database_url, job.id)
    assert len(rows) == 2 * (120 - 18)  # frames 0, 7, 14 ... have nobody
    document = store.result(job.id)
    Result.model_validate(document)
    assert [f["index"] for f in document["frames"]] == list(range(120))
    assert document["frames"][7]["people"] == []
    assert document["frames"][1] == json.loads(json.dumps(frame(1)))
    with psycopg.connect(libpq_url(database_url)) as conn:
        tracks, head = conn.execute("SELECT tracks, document FROM pose_results WHERE job_id = %s",
                                    (job.id,)).fetchone()
    assert "frames" not in head
    assert [(t["track_id"], t["frames"], t["first_frame"], t["last_frame"]) for t in tracks] == [
        (1, 102, 1, 118), (2, 102, 1, 118)]  # 119 = 7 × 17 has nobody


def test_a_retried_attempt_starts_clean(store, database_url, start_worker):
    start_worker(pipeline=STREAMING)
    job, _ = store.submit("/videos/a.mp4", params={"frames": 300, "people": 1, "frame_s": 0.01,
                                                   "fail_after_frames": True}, max_attempts=1)
    wait_for(lambda: store.get(job.id).state == JobState.RUNNING and view_rows(database_url, job.id), 20,
             what="rows while the job runs")
    assert finished(store, job.id).state == JobState.FAILED
    assert table_attempts(database_url, job.id) == {1}
    assert view_rows(database_url, job.id) == []  # a failed attempt's rows are not the job's result
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE pose_jobs SET params = '{\"frames\": 5, \"people\": 1}' WHERE id = %s", (job.id,))
    assert store.retry(job.id) is not None
    assert table_attempts(database_url, job.id) <= {1}  # the retry deleted them, unless its attempt 1 began
    assert finished(store, job.id).state == JobState.SUCCEEDED
    assert [r[0] for r in view_rows(database_url, job.id)] == list(range(5))


def test_a_frozen_database_holds_up_neither_the_frames_nor_the_deadline(private_pg, start_worker):  # noqa: F811
    """Frames stream into a database whose connection then freezes mid-job: only the writer thread
    waits; the supervision loop still kills the child at its deadline."""
    store = JobStore.connect(private_pg.url)
    with FreezingProxy("127.0.0.1", private_pg.port) as proxy:
        worker = start_worker("--lease-s", "30", url=proxy.url_for(private_pg.url), pipeline=STREAMING)
        job, _ = store.submit("/videos/a.mp4", params={"frames": 3000, "people": 2, "frame_s": 0.002},
                              timeout_s=3, max_attempts=1)
        wait_for(lambda: view_rows(private_pg.url, job.id), 10, what="frames stored while the job runs")
        proxy.freeze()
        wait_for(lambda: "deadline of 3s passed" in worker.log(), 10, what="the deadline to be enforced")
        proxy.thaw()
        done = finished(store, job.id, timeout=40)
    assert done.state == JobState.FAILED and done.error_kind == "timeout"
    assert worker.proc.poll() is None
    assert view_rows(private_pg.url, job.id) == []
    store.close()


# ---- fencing ----------------------------------------------------------------------------------------
def test_a_rescued_attempts_rows_are_never_visible(store, database_url):
    job, _ = store.submit("/videos/a.mp4")
    first = store.claim("wA", 0.3)
    assert store.store_frames(first, "wA", [frame(0), frame(1)], first_batch=True)
    assert len(view_rows(database_url, job.id)) == 4  # partial results of the running attempt
    time.sleep(0.5)
    assert store.rescue_expired(retry_base_s=0.001, retry_cap_s=0.001) == [(job.id, "queued", 1)]
    assert view_rows(database_url, job.id) == []
    assert not store.store_frames(first, "wA", [frame(2)], first_batch=False), "fenced out"
    time.sleep(0.05)
    second = store.claim("wB", 30)
    assert second.id == job.id and second.attempt == 2
    assert view_rows(database_url, job.id) == []
    assert store.store_frames(second, "wB", [frame(5, people=1)], first_batch=True)
    assert table_attempts(database_url, job.id) == {2}, "the new attempt cleared the old one's rows"
    assert not store.store_frames(first, "wA", [frame(3)], first_batch=True)
    assert not store.succeed(first, "wA", json.dumps(HEAD), 2, 2, frames_stored=True).owned
    assert store.succeed(second, "wB", json.dumps(HEAD), 1, 1, frames_stored=True).owned
    assert view_rows(database_url, job.id) == [(5, 1)]
    assert [f["index"] for f in store.result(job.id)["frames"]] == [5]


def test_an_attempt_given_back_takes_its_frames_with_it(store, database_url):
    """A released attempt (graceful shutdown) or one a worker's heartbeat returns leaves its number to
    the next attempt; its frames must not show up as that attempt's."""
    job, _ = store.submit("/videos/a.mp4")
    first = store.claim("w", 30)
    assert store.store_frames(first, "w", [frame(0), frame(1)], first_batch=True)
    assert store.release(first, "w").owned
    again = store.claim("w", 30)
    assert again.attempt == first.attempt == 1
    assert view_rows(database_url, job.id) == [] and table_attempts(database_url, job.id) == set()
    assert store.store_frames(again, "w", [frame(0)], first_batch=True)
    assert store.worker_heartbeat("w", None) == [(job.id, 0)]  # running under w, but not w's current job
    assert table_attempts(database_url, job.id) == set()


def test_a_repeated_batch_is_stored_once(store, database_url):
    job, _ = store.submit("/videos/a.mp4")
    claimed = store.claim("w", 30)
    assert store.store_frames(claimed, "w", [frame(0)], first_batch=True)
    for _ in range(2):  # the reply to the first was lost, say
        assert store.store_frames(claimed, "w", [frame(1), frame(2)], first_batch=False)
    assert [r[0] for r in view_rows(database_url, job.id)] == [0, 0, 1, 1, 2, 2]


# ---- formats and windows ----------------------------------------------------------------------------
def _read(store: JobStore, job_id: int, fmt: ResultFormat = ResultFormat.JSON, window: str | None = None) -> str:
    pieces = open_result(store, job_id, fmt=fmt, window=FrameWindow.parse(window))
    assert pieces is not None
    return "".join(pieces)


def test_windows_and_formats(store):
    job = stored_job(store, 600, people=2)
    whole = json.loads(_read(store, job.id))
    Result.model_validate(whole)
    assert [f["index"] for f in whole["frames"]] == list(range(600))
    window = json.loads(_read(store, job.id, window="250:520"))
    assert [f["index"] for f in window["frames"]] == list(range(250, 520))
    assert window["frames"] == whole["frames"][250:520] and window["video"] == whole["video"]
    assert [f["index"] for f in json.loads(_read(store, job.id, window="598:"))["frames"]] == [598, 599]
    assert json.loads(_read(store, job.id, window="700:800"))["frames"] == []
    lines = _read(store, job.id, ResultFormat.NDJSON, "10:20").splitlines()
    assert [json.loads(line) for line in lines] == whole["frames"][10:20]
    csv = _read(store, job.id, ResultFormat.CSV, "3:5").splitlines(keepends=True)
    assert csv[0] == CSV_HEADER and len(csv) == 1 + 2 * 2 * 33
    assert csv[1 + 33 + 5] == "3,0.1,2,5,kp5,3.2,5,0.25,0.75,0.875,0.5,5,-0.25\n"


def test_people_of_every_shape_read_back_as_stored(store):
    """PostgreSQL writes each person's JSON text (pose_person_text, migration 0012): the pose pipeline's
    shape (33 × 5 keypoints, 33 × 3 world points) takes a fast path, any other shape the general one,
    and both give back what was stored, with the fields a backend adds after the pose fields."""
    people = [person(0, 1),
              {**person(0, 2), "keypoints": [[1.5, -2.5, 0.0, 1.0, 0.125]] * 17, "world": [[0.5, 0.25, 1e-07]] * 17},
              {**person(0, 3), "bbox": [], "keypoints": [], "world": [], "ghost": True, "smpl": {"betas": [0.5, 1.5]}},
              {**person(0, 4), "keypoints": [[3.4028235e+38, 1.1754944e-38, -0.0, 123456.79, 0.1]] * 33}]
    frames = [{"index": 0, "time_s": 0.0, "people": people}, {"index": 1, "time_s": 0.033333, "people": []}]
    job, _ = store.submit("/videos/shapes.mp4")
    claimed = store.claim("w", 60)
    assert claimed is not None and claimed.id == job.id
    assert store.store_frames(claimed, "w", frames, first_batch=True)
    assert store.succeed(claimed, "w", json.dumps(HEAD), 2, 2, frames_stored=True).owned
    for fmt in (ResultFormat.JSON, ResultFormat.NDJSON):
        text = _read(store, job.id, fmt)
        read = json.loads(text)["frames"] if fmt is ResultFormat.JSON else [json.loads(x) for x in text.splitlines()]
        assert read == frames


def test_people_text_is_inlined_into_the_page_query(store):
    """The person text functions are plain SQL that the planner inlines (declared STABLE like the
    functions they call): a call per row instead would cost several times the CPU per MB."""
    with store.engine.begin() as conn:
        raw = conn.execute(text("EXPLAIN (VERBOSE, FORMAT JSON) " + str(query("result_people_page"))),
                           {"id": 1, "attempt": 1, "first": 0, "stop": 10}).scalar_one()
    plan = json.dumps(raw)
    assert "format(" in plan
    assert "pose_person_text" not in plan and "pose_points_text(" not in plan, plan


def test_frame_windows_parse():
    assert FrameWindow.parse("3:9") == FrameWindow(3, 9)
    assert FrameWindow.parse(":9") == FrameWindow(0, 9) and FrameWindow.parse("4:") == FrameWindow(4, None)
    assert FrameWindow.parse("7") == FrameWindow(7, 8) and FrameWindow.parse(None) == FrameWindow()
    for bad in ("9:3", "a:b", "-1:4", "1:2:3"):
        try:
            FrameWindow.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


# ---- constant memory ------------------------------------------------------------------------------
def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_a_result_takes_the_same_memory_whatever_its_length(store):
    short, long = stored_job(store, 750, people=2), stored_job(store, 3000, people=2)
    for fmt in ResultFormat:
        sizes, peaks = [], []
        for job in (short, long):
            size = 0

            def consume(job_id=job.id, fmt=fmt):
                nonlocal size
                for piece in open_result(store, job_id, fmt=fmt):
                    size += len(piece)

            peaks.append(_peak(consume))
            sizes.append(size)
        assert sizes[1] > 3.9 * sizes[0] and sizes[1] > 5_000_000, fmt
        # four times the frames, not more memory; the page read ahead while one is formatted
        # (jobs/result_stream.py) may or may not be in memory at the peak of either, so a page of slack
        page = sizes[0] * PAGE_FRAMES / 750
        assert peaks[1] < 1.3 * peaks[0] + page, (fmt, peaks, sizes)
        assert peaks[1] < sizes[1] / 4, (fmt, peaks, sizes)


def test_the_child_holds_a_bounded_window_of_frames(tmp_path: Path):
    peaks, spooled = [], []
    for frames in (750, 3000):
        channel = io.BytesIO()
        request = JobRequest(1, "/videos/a.mp4", {"frames": frames, "people": 2}, str(tmp_path / f"r{frames}.json"))
        peaks.append(_peak(lambda request=request, channel=channel: run_one(StreamingPipeline(), request,
                                                                            Reporter(channel))))
        spooled.append(Path(request.spool_path).stat().st_size)
        messages = [ChildMessage.decode(line) for line in channel.getvalue().splitlines()]
        batches = [m for m in messages if m.type == "frames"]
        assert batches[-1].end == spooled[-1] and batches[-1].done == frames and len(batches) >= frames // 64
        assert messages[-1].type == "done" and messages[-1].done == frames
        assert "frames" not in json.loads(Path(request.result_path).read_text())
    assert spooled[1] > 5_000_000
    assert peaks[1] < 1.3 * peaks[0] and peaks[1] < spooled[1] / 20, (peaks, spooled)


def _spool(path: Path, frames: int) -> int:
    """Write a spool of ``frames`` frames as the child does (blocks of 64); returns the offset after
    the first half."""
    half = 0
    block = BlockEncoder()
    with open(path, "wb") as fh:
        for i in range(frames):
            block.add(frame(i))
            if block.frames == 64 or i == frames // 2 - 1 or i == frames - 1:
                block.write(fh)
            if i == frames // 2 - 1:
                half = fh.tell()
    return half


def test_the_writer_stores_a_spool_a_batch_at_a_time(store, tmp_path: Path):
    peaks, sizes = [], []
    for frames in (750, 3000):
        job, _ = store.submit(f"/videos/{frames}.mp4")
        claimed = store.claim("w", 60)
        spool = tmp_path / f"frames{frames}"
        half = _spool(spool, frames)

        def write(claimed=claimed, spool=spool, half=half, frames=frames) -> None:
            writer = FrameWriter(store, claimed, "w", spool, give_up=lambda: False)
            writer.announce(half)
            writer.announce(spool.stat().st_size)
            writer.finish()
            assert writer.stored == frames and writer.error is None and not writer.lost

        peaks.append(_peak(write))
        sizes.append(spool.stat().st_size)
        assert store.succeed(claimed, "w", json.dumps(HEAD), frames, frames, frames_stored=True).owned
        assert len(store.result(job.id)["frames"]) == frames
    assert peaks[1] < 1.3 * peaks[0] and peaks[1] < sizes[1] / 2, (peaks, sizes)


# ---- migration 0006 moves stored results' frames into rows, and back -------------------------------
def test_migration_moves_stored_frames_into_rows_and_back(empty_database_url):
    from jobs.database import downgrade, upgrade

    upgrade(empty_database_url, "0005_stats_per_owner")
    document = {**HEAD, "frames": [frame(0), {"index": 1, "time_s": 0.033333, "people": []},
                                   {**frame(2, people=1), "people": [{**person(2, 1), "mean_bgr": [1, 2, 3]}]}]}
    with psycopg.connect(libpq_url(empty_database_url), autocommit=True) as conn:
        job_id = conn.execute("INSERT INTO pose_jobs (video_path, state, attempt) VALUES ('/v.mp4', 'succeeded', 1) "
                              "RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO pose_results (job_id, document) VALUES (%s, %s)", (job_id, json.dumps(document)))
    upgrade(empty_database_url)
    with psycopg.connect(libpq_url(empty_database_url), autocommit=True) as conn:
        head, tracks = conn.execute("SELECT document, tracks FROM pose_results").fetchone()
        assert head == HEAD and [t["track_id"] for t in tracks] == [1, 2]
        assert conn.execute("SELECT count(*) FROM pose_frame_people").fetchone()[0] == 3
    store = JobStore.connect(empty_database_url)
    try:
        assert store.result(job_id) == json.loads(json.dumps(document))
    finally:
        store.close()
    downgrade(empty_database_url, "0005_stats_per_owner")
    with psycopg.connect(libpq_url(empty_database_url), autocommit=True) as conn:
        assert conn.execute("SELECT document FROM pose_results").fetchone()[0] == json.loads(json.dumps(document))
