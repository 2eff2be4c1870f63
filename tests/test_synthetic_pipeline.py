"""bench/synthetic_pipeline.py: realistic pose data without a video, as a valid result@1 document, streamed
frame by frame and splittable into stretches (worker/pipeline/contract.py)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from bench.synthetic_pipeline import KEYPOINT_NAMES, SKELETON, create
from bench.synthetic_pipeline_params import PARAMS
from jobs.states import JobState
from tests.test_worker_outcomes import finished
from web.result_document import Result
from worker.pipeline.contract import VideoSpan
from worker.pipeline.params import InvalidParams, schema_for


def run(params: dict) -> tuple[dict, list[tuple[int, int | None]]]:
    seen: list[tuple[int, int | None]] = []
    document = create()("/no/such/video.mp4", params, lambda done, total: seen.append((done, total)))
    return document, seen


def test_a_small_document_is_valid_result_at_1_with_moving_tracks():
    document, seen = run({"frames": 12, "people": 3, "fps": 25})
    result = Result.model_validate(document)
    assert result.video.frames == len(result.frames) == 12 and result.video.fps == 25.0
    assert [f.index for f in result.frames] == list(range(12)) and result.frames[1].time_s == pytest.approx(0.04)
    assert all(len(f.people) == 3 for f in result.frames)
    assert {p.track_id for f in result.frames for p in f.people} == {1, 2, 3}  # one track per person
    for frame in result.frames:
        for person in frame.people:
            xs, ys = [k[0] for k in person.keypoints], [k[1] for k in person.keypoints]
            x0, y0, x1, y1 = person.bbox
            assert x0 <= min(xs) and max(xs) <= x1 and y0 <= min(ys) and max(ys) <= y1
            assert all(0 <= k[3] <= 1 and 0 <= k[4] <= 1 for k in person.keypoints) and 0 <= person.score <= 1
    first, last = result.frames[0].people[0], result.frames[-1].people[0]
    assert first.keypoints[0][:2] != last.keypoints[0][:2]  # the track moves
    assert seen[0] == (0, 12) and seen[-1] == (12, 12)  # the frame count comes first, for the deadline


def test_the_same_params_give_the_same_document_and_no_people_is_allowed():
    assert run({"frames": 5, "people": 2})[0]["frames"] == run({"frames": 5, "people": 2})[0]["frames"]
    empty, _ = run({"frames": 4, "people": 0})
    assert [f["people"] for f in Result.model_validate(empty).model_dump()["frames"]] == [[]] * 4
    assert Result.model_validate(run({"frames": 0})[0]).frames == []


def streamed(params: dict, frame_range: tuple[int, int | None] | None = None) -> tuple[dict, list[dict], list]:
    """Call it as the child does (``emit_frame``); frames with their numpy arrays as lists."""
    frames: list[dict] = []
    seen: list[tuple[int, int | None]] = []

    def keep(frame: dict) -> None:
        frames.append({**frame, "people": [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in p.items()}
                                           for p in frame["people"]]})

    document = create()("/no/such/video.mp4", params, lambda done, total: seen.append((done, total)),
                        emit_frame=keep, frame_range=frame_range)
    return document, frames, seen


def test_it_streams_the_same_frames_one_by_one():
    assert create().emits_frames
    params = {"frames": 700, "people": 3, "fps": 60}
    whole, _ = run(params)
    document, frames, seen = streamed(params)
    assert "frames" not in document and document["video"] == whole["video"]
    assert frames == whole["frames"]
    assert Result.model_validate({**document, "frames": frames})
    assert seen[0] == (0, 700) and seen[-1] == (700, 700)


def test_a_stretch_of_the_video_is_the_same_frames_whichever_segment_makes_it():
    params = {"frames": 1000, "people": 2, "fps": 60}
    _, everything, _ = streamed(params)
    assert create().probe("/no/such/video.mp4", params) == VideoSpan(frames=1000, fps=60.0)
    for first, stop in ((0, 300), (300, 650), (650, None), (250, 257), (999, 1200), (400, 400)):
        document, frames, seen = streamed(params, (first, stop))
        end = 1000 if stop is None else min(stop, 1000)
        assert frames == everything[first:end], (first, stop)
        assert [f["index"] for f in frames] == list(range(first, end))
        assert document["video"]["frames"] == 1000  # the video's length, not the stretch's
        assert seen[0] == (0, end - first) and seen[-1] == (end - first, end - first)  # progress within it
    with pytest.raises(ValueError, match="frame_range"):
        streamed(params, (5, 2))


def test_streaming_holds_a_block_of_frames_whatever_the_length():
    peaks = []
    for frames in (2000, 8000):
        tracemalloc.start()
        try:
            create()("/no/such/video.mp4", {"frames": frames, "people": 4}, lambda done, total: None,
                     emit_frame=lambda frame: None)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 1.2 * peaks[0], peaks


def test_names_and_bones_are_the_pose_pipelines():
    from worker.pipeline.io.result_document import KEYPOINT_NAMES as POSE_NAMES
    from worker.pipeline.io.result_document import SKELETON as POSE_SKELETON

    assert KEYPOINT_NAMES == POSE_NAMES and SKELETON == POSE_SKELETON


def test_params_are_declared_where_the_web_looks_for_them():
    assert schema_for("bench.synthetic_pipeline:create") is PARAMS
    with pytest.raises(InvalidParams, match="people"):
        PARAMS.validate({"people": 99})
    with pytest.raises(InvalidParams, match="unknown"):
        run({"frames": 3, "max_people": 2})


def test_rate(capsys):
    """Not a threshold: prints the rate (the bench line is `python -m bench.synthetic_pipeline`)."""
    t0 = time.perf_counter()
    document, _ = run({"frames": 5000, "people": 1})
    rate = len(document["frames"]) / (time.perf_counter() - t0)
    with capsys.disabled():
        print(f"\nsynthetic pipeline: {rate:,.0f} frames/s (5000 frames, 1 person)")
    assert rate > 0


def test_a_worker_runs_it_as_its_pipeline(store, start_worker):
    start_worker(pipeline="bench.synthetic_pipeline:create")
    job, _ = store.submit("/videos/none.mp4", params={"frames": 500, "people": 2})
    done = finished(store, job.id, timeout=60)
    assert done.state == JobState.SUCCEEDED and (done.frames_done, done.frames_total) == (500, 500)
    Result.model_validate(store.result(job.id))
