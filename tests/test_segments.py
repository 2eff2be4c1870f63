"""One long video, many workers: a job longer than its segment length becomes a waiting parent of
segment jobs; the database moves the parent when they settle; the worker that claims it last stitches
the segments' frames into its own with continuous track ids (worker/segments.py, worker/stitch.py,
jobs/sql/segments.sql, migration 0007)."""

from __future__ import annotations

import psycopg
import pytest

from jobs.database import libpq_url
from jobs.job import Job
from jobs.states import ErrorKind, JobState
from jobs.store import JobStore, NotOwned
from tests.conftest import wait_for
from tests.test_worker_outcomes import finished
from worker.pipeline.params import InvalidParams, ParamsSchema, check_service_params, pipeline_params
from worker.segments import (
    MAX_SEGMENTS,
    OVERLAP_FRAMES,
    Cut,
    match_tracks,
    merge_documents,
    parent_track_ids,
    plan_segments,
)

SPLITTABLE = "tests.fake_pipelines:create_splittable"


# ---- planning and joining (pure) -------------------------------------------------------------------
def test_a_video_not_longer_than_the_segment_length_is_not_split():
    assert plan_segments(300, 30.0, 10.0) == []  # exactly 10 s
    assert plan_segments(301, 30.0, 0.0) == []  # 0: never split
    assert plan_segments(301, 30.0, 10.0) != []


def test_segments_cover_the_video_and_overlap_the_next_one():
    cuts = plan_segments(18_000, 30.0, 120.0)
    assert len(cuts) == 5
    assert [c.first for c in cuts] == [0, 3600, 7200, 10800, 14400]
    assert all(c.stop == nxt.first + OVERLAP_FRAMES for c, nxt in zip(cuts, cuts[1:], strict=False))
    assert cuts[-1] == Cut(14400, None)


def test_uneven_and_tiny_segment_lengths_stay_within_bounds():
    cuts = plan_segments(1001, 30.0, 10.0)  # 33.4 s in 10 s pieces: 4 even segments
    assert len(cuts) == 4 and cuts[0].first == 0 and len({c.first for c in cuts}) == 4
    many = plan_segments(216_000, 60.0, 0.01)
    assert len(many) == MAX_SEGMENTS
    assert all(b.first > a.first for a, b in zip(many, many[1:], strict=False))


def test_tracks_are_matched_by_their_boxes_in_the_overlap():
    earlier = {1: {f: [f, 0, f + 10, 20] for f in range(10)}, 2: {f: [100, 0, 110, 20] for f in range(10)}}
    later = {7: {f: [100, 0, 110, 20] for f in range(10)}, 8: {f: [f, 0, f + 10, 20] for f in range(10)},
             9: {f: [500, 500, 510, 520] for f in range(10)}}
    assert match_tracks(earlier, later) == {7: 2, 8: 1}


def test_parent_ids_continue_matched_tracks_and_number_new_ones():
    maps = parent_track_ids([[1, 2], [7, 8, 9], [3]], [{7: 2, 8: 1}, {3: 9}])
    assert maps == [{1: 1, 2: 2}, {7: 2, 8: 1, 9: 3}, {3: 3}]


def test_the_parent_document_adds_up_its_segments():
    def doc(frames: int, duration: float) -> dict:
        return {"schema": "pose-service/result@1",
                "video": {"width": 64, "height": 48, "fps": 30.0, "frames": frames, "duration_s": duration,
                          "rotation": 0, "skipped_frames": 1},
                "timings": {"decode_s": 1.0, "inference_s": 2.0, "total_s": 3.0}}

    merged = merge_documents([doc(130, 4.333), doc(100, 6.667)], 200)
    assert merged["video"]["frames"] == 200 and merged["video"]["skipped_frames"] == 2
    assert merged["video"]["duration_s"] == pytest.approx(6.667, abs=1e-3)
    assert merged["timings"] == {"decode_s": 2.0, "inference_s": 4.0, "total_s": 6.0}


def test_segment_s_is_a_service_param_checked_for_every_pipeline():
    schema = ParamsSchema({})
    assert schema.validate({"segment_s": 60}) == {}
    assert pipeline_params({"segment_s": 60, "max_people": 2}) == {"max_people": 2}
    with pytest.raises(InvalidParams, match="segment_s"):
        check_service_params({"segment_s": "soon"})
    with pytest.raises(InvalidParams, match="segment_s"):
        check_service_params({"segment_s": -1})


# ---- the family in SQL -----------------------------------------------------------------------------
def split_job(store: JobStore, frames: int = 300, cuts=((0, 130), (100, 230), (200, None))) -> tuple[Job, list]:
    parent, _ = store.submit("/videos/long.mp4", params={"segment_s": 3})
    claimed = store.claim("w1", 30.0)
    assert claimed is not None and claimed.id == parent.id and claimed.attempt == 1
    assert store.split(claimed, "w1", frames, list(cuts)).state == JobState.WAITING
    return claimed, store.segments(parent.id)


def test_split_makes_a_waiting_parent_and_queued_segments(store):
    parent, segments = split_job(store)
    job = store.get(parent.id)
    assert job is not None and job.state == JobState.WAITING and job.attempt == 0  # splitting cost no attempt
    assert (job.segment_count, job.frames_total, job.worker_id) == (3, 300, None)
    assert [(s.segment_index, s.segment_first, s.segment_stop, s.state, s.frames_total) for s in segments] == [
        (0, 0, 130, "queued", 130), (1, 100, 230, "queued", 130), (2, 200, None, "queued", 100)]
    seg = store.get(segments[0].id)
    assert seg is not None and seg.parent_id == parent.id and seg.params == {"segment_s": 3}
    assert store.split(parent, "w1", 300, [(0, None)]).state is None  # a repeat finds it waiting
    assert len(store.segments(parent.id)) == 3
    # clients list what they submitted; the segments are listed by their parent
    assert [j.id for j in store.list_jobs()] == [parent.id]
    assert [j.id for j in store.list_jobs(parent_id=parent.id)] == [s.id for s in reversed(segments)]


def test_combined_progress_counts_each_frame_once(store):
    parent, segments = split_job(store)
    for _ in segments:
        store.claim("w2", 30.0)
    for seg, done in zip(segments, (130, 50, 0), strict=True):  # the first one ran into its overlap
        job = store.get(segments[seg.segment_index].id)
        assert job is not None
        store.record_progress(job, "w2", done, job.frames_total, 30.0)
    job = store.get(parent.id, visible_to=None)
    assert job is not None
    assert job.frames_progress == 100 + 50  # segment 0 owns frames 0-99 only
    assert job.progress_percent == 50.0
    assert (job.segments_succeeded, job.segments_running) == (0, 3)


def run_segment(store: JobStore, worker: str = "w2", *, fail: ErrorKind | None = None) -> Job:
    job = store.claim(worker, 30.0)
    assert job is not None and job.parent_id is not None
    if fail is not None:
        store.fail(job, worker, fail, "unreadable", retry_base_s=0.1, retry_cap_s=0.1)
    else:
        store.succeed(job, worker, '{"schema":"pose-service/result@1"}', 1, 1)
    return job


def test_the_last_segment_to_succeed_queues_the_parent_to_stitch(store):
    parent, segments = split_job(store)
    run_segment(store)
    run_segment(store)
    assert store.get(parent.id).state == JobState.WAITING
    run_segment(store)
    again = store.get(parent.id)
    assert again.state == JobState.QUEUED and again.is_split
    claimed = store.claim("w3", 30.0)
    assert claimed.id == parent.id and claimed.attempt == 1


def test_a_segment_that_fails_for_good_fails_the_parent_and_cancels_the_rest(store, database_url):
    parent, segments = split_job(store)
    running = store.claim("w2", 30.0)  # segment 0 runs elsewhere
    run_segment(store, fail=ErrorKind.BAD_INPUT)  # segment 1: never retried
    job = store.get(parent.id)
    assert job.state == JobState.FAILED and job.error_kind == "bad_input"
    assert "segment 1" in job.error_message and "unreadable" in job.error_message
    states = {s.segment_index: (s.state, store.get(s.id).cancel_requested) for s in store.segments(parent.id)}
    assert states == {0: ("running", True), 1: ("failed", False), 2: ("cancelled", True)}
    # the running one hears it with its next progress too (a claim in flight may miss the cancel)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("UPDATE pose_jobs SET cancel_requested = false WHERE id = %s", (running.id,))
    assert store.record_progress(running, "w2", 1, 130, 30.0) is True


def test_cancelling_the_parent_cancels_its_segments(store):
    parent, segments = split_job(store)
    running = store.claim("w2", 30.0)
    assert store.cancel(parent.id).state == JobState.CANCELLED
    states = {s.segment_index: s.state for s in store.segments(parent.id)}
    assert states == {0: "running", 1: "cancelled", 2: "cancelled"}
    assert store.get(running.id).cancel_requested
    # a segment cancelled on its own cancels the family the same way
    other, segs = split_job(store)
    store.cancel(segs[1].id)
    assert store.get(other.id).state == JobState.CANCELLED
    assert {s.state for s in store.segments(other.id)} == {"cancelled"}


def test_retrying_a_failed_parent_splits_it_afresh(store):
    parent, segments = split_job(store)
    run_segment(store, fail=ErrorKind.BAD_INPUT)
    assert store.retry(segments[1].id) is None  # a segment is retried through its parent
    retried = store.retry(parent.id)
    assert retried is not None and retried.state == JobState.QUEUED
    assert (retried.segment_count, retried.frames_total) == (None, None)
    assert store.segments(parent.id) == []


# ---- through real workers --------------------------------------------------------------------------
def test_a_long_job_runs_as_segments_on_several_workers_and_stitches_into_one(store, database_url, start_worker):
    for _ in range(2):
        start_worker(pipeline=SPLITTABLE)
    job, _ = store.submit("/videos/long.mp4", params={"frames": 200, "people": 2, "segment_s": 2})
    done = finished(store, job.id, timeout=60)
    assert done.state == JobState.SUCCEEDED, done.error_message
    assert done.segment_count == 4 and done.frames_done == 200
    segments = store.segments(job.id)
    assert {s.state for s in segments} == {"succeeded"}
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute("SELECT frame_index, track_id, bbox[1] FROM pose_frame_people WHERE job_id = %s "
                            "ORDER BY frame_index, track_id", (job.id,)).fetchall()
        leftover = conn.execute("SELECT count(*) FROM pose_frame_rows WHERE job_id = ANY(%s)",
                                ([s.id for s in segments],)).fetchone()[0]
    # every frame once, the same two people throughout under the first segment's ids
    assert [r[0] for r in rows] == [f for f in range(200) for _ in (1, 2)]
    assert {r[1] for r in rows} == {1, 2}
    assert all(r[2] == pytest.approx(r[0] + r[1] / 10) for r in rows)  # each row is its own person's
    assert leftover == 0  # the segments' rows moved into the parent's
    result = store.result(job.id)
    assert result["video"]["frames"] == 200 and len(result["frames"]) == 200
    assert result["timings"]["total_s"] == pytest.approx(4.0)
    with psycopg.connect(libpq_url(database_url)) as conn:
        tracks = conn.execute("SELECT tracks FROM pose_results WHERE job_id = %s", (job.id,)).fetchone()[0]
    summary = {t["track_id"]: (t["first_frame"], t["last_frame"], t["frames"]) for t in tracks}
    assert summary == {1: (0, 199, 200), 2: (0, 199, 200)}


def test_a_failing_segment_fails_the_job_through_real_workers(store, start_worker):
    start_worker(pipeline=SPLITTABLE)
    job, _ = store.submit("/videos/long.mp4", params={"frames": 200, "segment_s": 2, "fail_from": 100,
                                                      "frame_s": 0.002})
    done = finished(store, job.id, timeout=60)
    assert done.state == JobState.FAILED and done.error_kind == "bad_input"
    assert "segment 2" in done.error_message
    wait_for(lambda: all(store.get(s.id).is_final for s in store.segments(job.id)), 20,
             what="the other segments to end")


def test_a_job_of_a_pipeline_that_cannot_split_runs_whole(store, start_worker):
    start_worker(pipeline="tests.fake_pipelines:create_streaming")
    job, _ = store.submit("/videos/long.mp4", params={"frames": 200, "segment_s": 1})
    done = finished(store, job.id)
    assert done.state == JobState.SUCCEEDED and done.segment_count is None and done.frames_done == 200


def test_a_stitch_that_is_not_recorded_leaves_nothing_behind_and_runs_again(store, database_url):
    from tests.fake_pipelines import person
    from worker.stitch import stitch

    parent, segments = split_job(store, frames=20, cuts=((0, 15), (10, None)))
    for _ in segments:
        seg = store.claim("w2", 30.0)
        first, stop = seg.segment_first, seg.segment_stop or 20
        frames = [{"index": i, "time_s": i / 30, "people": [{**person(i, 1), "track_id": 7 + seg.segment_index}]}
                  for i in range(first, stop)]
        assert store.store_frames(seg, "w2", frames, first_batch=True)
        store.succeed(seg, "w2", '{"schema":"pose-service/result@1","video":{"frames":1,"fps":30.0,'
                                 '"skipped_frames":0,"duration_s":1.0}}', len(frames), len(frames), frames_stored=True)
    claimed = store.claim("w3", 30.0)
    assert claimed.id == parent.id

    def rows() -> list[tuple]:
        with psycopg.connect(libpq_url(database_url)) as conn:
            return conn.execute("SELECT job_id, frame_index, track_id FROM pose_frame_rows ORDER BY 1, 2").fetchall()

    before = rows()
    with pytest.raises(NotOwned):  # another worker rescued it meanwhile: nothing of this stitch stays
        stitch(store, claimed, "someone-else")
    assert rows() == before
    assert stitch(store, claimed, "w3").state == JobState.SUCCEEDED
    assert rows() == [(parent.id, i, 7) for i in range(20)]  # one track; the segments' rows are gone


def test_a_one_frame_video_is_never_split():
    assert plan_segments(1, 30.0, 0.01) == []  # a 1-frame video at 30 fps is "longer" than 0.01 s
    assert len(plan_segments(2, 30.0, 0.01)) == 2


def test_the_child_asks_for_a_split_only_of_a_splittable_pipeline_and_a_long_enough_video():
    from worker.child_protocol import JobRequest
    from worker.pipeline.child import _split_span
    from worker.pipeline.contract import VideoSpan

    class Splittable:
        def __init__(self, frames: int) -> None:
            self.frames = frames

        def probe(self, video_path, params):
            return VideoSpan(self.frames, 30.0)

        def __call__(self, video_path, params, progress):
            return {}

    def ask(pipeline, after: float | None) -> VideoSpan | None:
        return _split_span(pipeline, JobRequest(1, "/v.mp4", {}, "/tmp/r.json", split_after_s=after))

    assert ask(Splittable(301), 10.0) == VideoSpan(301, 30.0)
    assert ask(Splittable(300), 10.0) is None  # exactly 10 s
    assert ask(Splittable(1), 0.01) is None  # one frame cannot be cut
    assert ask(Splittable(301), None) is None  # not asked (a segment, or segment_s 0)
    assert ask(lambda v, p, g: {}, 10.0) is None  # no probe: always whole
