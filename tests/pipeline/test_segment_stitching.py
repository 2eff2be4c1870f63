"""Real footage through real workers, split: the runner video cut in two segments (params.segment_s)
comes back as one job with one track over the whole video, frame for frame what the whole video gives
where both runs did the same work, and two runners side by side keep their two ids across the cut."""

from __future__ import annotations

import statistics
from pathlib import Path

import psycopg

from jobs.database import libpq_url
from jobs.sample_media import media_dir
from jobs.states import JobState
from tests.pipeline.test_tracking import two_runners  # noqa: F401 - a fixture
from tests.test_worker_outcomes import finished

POSE = "worker.pipeline.pose:create"
RUNNER = media_dir() / "runner_1080p.mp4"  # 180 frames at 30 fps


def people_rows(url: str, job_id: int) -> list[tuple[int, int, list[float], list[float]]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute("SELECT frame_index, track_id, bbox, keypoints FROM pose_frame_people WHERE job_id = %s "
                            "ORDER BY frame_index, track_id", (job_id,)).fetchall()


def test_the_runner_cut_in_two_is_one_track_over_the_whole_video(store, database_url, start_worker, model_dir):
    start_worker(pipeline=POSE, env={"POSE_MODEL_DIR": str(model_dir)})
    split, _ = store.submit(str(RUNNER), params={"segment_s": 3})
    whole, _ = store.submit(str(RUNNER), params={"segment_s": 0})
    done = finished(store, split.id, timeout=240)
    assert done.state == JobState.SUCCEEDED, done.error_message
    assert done.segment_count == 2 and finished(store, whole.id, timeout=240).state == JobState.SUCCEEDED
    cut = [s.segment_first for s in store.segments(split.id)][1]
    stitched, reference = people_rows(database_url, split.id), people_rows(database_url, whole.id)
    assert [r[0] for r in stitched] == list(range(180))  # every frame once, one person in each
    assert {r[1] for r in stitched} == {r[1] for r in reference} and len({r[1] for r in stitched}) == 1
    # before the cut the first segment did exactly the whole run's work
    assert [r[3] for r in stitched[:cut]] == [r[3] for r in reference[:cut]]
    # after it the second segment started its tracker afresh: the same runner, within a few pixels
    offsets = [statistics.median(abs(a - b) for a, b in zip(s[3][0::5] + s[3][1::5], r[3][0::5] + r[3][1::5],
                                                            strict=True))
               for s, r in zip(stitched[cut:], reference[cut:], strict=True)]
    assert statistics.median(offsets) < 10.0  # pixels, in a 1920x1088 frame
    result = store.result(split.id)
    assert result["video"]["frames"] == 180 and result["video"]["fps"] == 30.0


def test_two_runners_keep_their_ids_across_the_cut(store, database_url, start_worker, model_dir,
                                                  two_runners: Path):  # noqa: F811
    start_worker(pipeline=POSE, env={"POSE_MODEL_DIR": str(model_dir)})
    job, _ = store.submit(str(two_runners), params={"segment_s": 1})  # 45 frames: two segments
    done = finished(store, job.id, timeout=240)
    assert done.state == JobState.SUCCEEDED, done.error_message
    assert done.segment_count == 2
    sides: dict[int, set[str]] = {}
    for _frame, track, bbox, _ in people_rows(database_url, job.id):
        sides.setdefault(track, set()).add("left" if (bbox[0] + bbox[2]) / 2 < 960 else "right")
    assert sorted(sides.values(), key=sorted) == [{"left"}, {"right"}]  # two ids, each one runner throughout
