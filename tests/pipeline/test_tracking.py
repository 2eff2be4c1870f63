"""Several people, stable track ids, and the smoothing that video mode applies.

The multi-person video is made here: two crops of the runner, one 20 frames behind the other, side by
side in one 1920x1088 frame, so there are always exactly two people at full size who move differently.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from jobs.sample_media import media_dir
from worker.pipeline import pose
from worker.pipeline.blazepose.detector import Detections
from worker.pipeline.blazepose.landmarks import PoseLandmarks
from worker.pipeline.tracking.smoothing import OneEuroFilter, PoseSmoother
from worker.pipeline.tracking.tracker import StaticIdMatcher, VideoTracker

RUNNER = media_dir() / "runner_1080p.mp4"
FRAMES = 45
LAG = 20


@pytest.fixture(scope="module")
def two_runners(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cap = cv2.VideoCapture(str(RUNNER))
    crops = []
    for _ in range(FRAMES + LAG):
        ok, frame = cap.read()
        assert ok
        crops.append(frame[:, 240:1200].copy())  # the runner stays within x 530..950
    cap.release()
    path = tmp_path_factory.mktemp("multi") / "two_runners.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1920, 1088))
    for t in range(FRAMES):
        writer.write(np.concatenate([crops[t], crops[t + LAG]], axis=1))
    writer.release()
    return path


def track_sides(doc: dict) -> list[dict[int, str]]:
    """Per frame: track id -> which half of the frame the person is in."""
    out = []
    for frame in doc["frames"]:
        sides = {}
        for person in frame["people"]:
            x0, _, x1, _ = person["bbox"]
            sides[person["track_id"]] = "left" if (x0 + x1) / 2 < 960 else "right"
        out.append(sides)
    return out


@pytest.mark.parametrize("mode", ["video", "static"])
def test_two_people_keep_their_ids(pipeline: pose.PosePipeline, two_runners: Path, mode: str) -> None:
    doc = pipeline(str(two_runners), {"mode": mode}, lambda d, t: None)
    sides = track_sides(doc)
    assert len(sides) == FRAMES
    assert all(len(s) == 2 for s in sides), [len(s) for s in sides]
    first = sides[0]
    assert sorted(first.values()) == ["left", "right"]
    assert all(s == first for s in sides), "each id stays on its own person for the whole video"


def test_max_people_limits_tracks(pipeline: pose.PosePipeline, two_runners: Path) -> None:
    doc = pipeline(str(two_runners), {"mode": "video", "max_people": 1}, lambda d, t: None)
    ids = {p["track_id"] for f in doc["frames"] for p in f["people"]}
    assert all(len(f["people"]) == 1 for f in doc["frames"]) and len(ids) == 1


def test_smoothing_switch(pipeline: pose.PosePipeline, two_runners: Path) -> None:
    smooth = pipeline(str(two_runners), {"smoothing": True}, lambda d, t: None)
    raw = pipeline(str(two_runners), {"smoothing": False}, lambda d, t: None)

    def jitter(doc: dict) -> float:
        """Mean second difference of the left runner's landmarks (acceleration ~ jitter)."""
        tracks = [next(p for p in f["people"] if p["bbox"][0] < 960) for f in doc["frames"]]
        xy = np.array([np.array(p["keypoints"])[:, :2] for p in tracks])
        return float(np.abs(np.diff(xy, n=2, axis=0)).mean())

    first_smooth = np.array(smooth["frames"][0]["people"][0]["keypoints"])
    first_raw = np.array(raw["frames"][0]["people"][0]["keypoints"])
    np.testing.assert_allclose(first_smooth, first_raw)  # the first frame passes through the filter
    assert jitter(smooth) < jitter(raw)


# -- units ----------------------------------------------------------------------------------------------


def fake_landmarks(centres: list[tuple[float, float]], flags: list[float], height: float = 400.0) -> PoseLandmarks:
    """People as vertical lines of 33 points, with aux points that give a region of ~1.25 * height."""
    image, aux, world = [], [], []
    for cx, cy in centres:
        ys = np.linspace(cy - height / 2, cy + height / 2, 33)
        pts = np.stack([np.full(33, cx) + np.linspace(-40, 40, 33), ys, np.zeros(33), np.ones(33), np.ones(33)], 1)
        image.append(pts)
        aux.append([[cx, cy, 0.0], [cx, cy - height / 2, 0.0]])
        world.append(np.zeros((33, 3)))
    return PoseLandmarks(np.array(image), np.array(aux), np.array(world), np.array(flags, dtype=float))


def detections_at(centres: list[tuple[float, float]], height: float = 400.0) -> Detections:
    kps = np.array([[[cx, cy], [cx, cy - height / 2], [cx, cy - height / 2], [cx, cy - height]] for cx, cy in centres])
    boxes = np.array([[cx - 20, cy - height, cx + 20, cy - height + 40] for cx, cy in centres])
    return Detections(boxes, kps, np.linspace(0.9, 0.8, len(centres)))


def test_tracker_ignores_detections_of_tracked_people_and_adds_newcomers() -> None:
    tracker = VideoTracker(1920, 1080, max_people=3, redetect_every=5)
    assert tracker.wants_detection(0)
    regions = tracker.plan(0, detections_at([(500, 500)]))
    assert len(regions) == 1
    people = tracker.update(0.0, fake_landmarks([(500, 500)], [0.99]))
    assert [p.track_id for p in people] == [0]
    assert not tracker.wants_detection(1)  # tracking, and not on the re-detection cadence
    regions = tracker.plan(1, None)
    assert len(regions) == 1
    tracker.update(1 / 30, fake_landmarks([(505, 500)], [0.99]))
    assert tracker.wants_detection(5)  # cadence: fewer than max_people tracked
    # Re-detection finds the tracked person again (slightly off) and a newcomer.
    regions = tracker.plan(5, detections_at([(510, 505), (1400, 500)]))
    assert len(regions) == 2  # the tracked region plus the newcomer only
    people = tracker.update(5 / 30, fake_landmarks([(510, 500), (1400, 500)], [0.99, 0.97]))
    assert [p.track_id for p in people] == [0, 1]


def test_tracker_drops_lost_tracks_and_redetects_next_frame() -> None:
    tracker = VideoTracker(1920, 1080, max_people=2, redetect_every=100, grace=0)
    tracker.plan(0, detections_at([(500, 500), (1400, 500)]))
    assert [p.track_id for p in tracker.update(0.0, fake_landmarks([(500, 500), (1400, 500)], [0.9, 0.9]))] == [0, 1]
    tracker.plan(1, None)
    people = tracker.update(1 / 30, fake_landmarks([(500, 500), (1400, 500)], [0.9, 0.1]))  # second one lost
    assert [p.track_id for p in people] == [0]
    assert tracker.wants_detection(2)  # right after a loss, not waiting for the cadence
    tracker.plan(2, detections_at([(1400, 500)]))
    people = tracker.update(2 / 30, fake_landmarks([(500, 500), (1400, 500)], [0.9, 0.9]))
    assert [p.track_id for p in people] == [0, 2]  # a new id: we do not re-identify people


def test_tracker_rejects_duplicate_newcomer_and_merges_converged_tracks() -> None:
    tracker = VideoTracker(1920, 1080, max_people=4, grace=0)
    tracker.plan(0, detections_at([(500, 500), (1400, 500)]))
    tracker.update(0.0, fake_landmarks([(500, 500), (1400, 500)], [0.9, 0.9]))
    # Both regions end up on the same person: the younger track goes.
    tracker.plan(1, None)
    people = tracker.update(1 / 30, fake_landmarks([(500, 500), (502, 501)], [0.9, 0.9]))
    assert [p.track_id for p in people] == [0]
    # A detection far from the region's centre whose landmarks land on the tracked person is a duplicate.
    tracker.plan(10, detections_at([(700, 500)]))
    people = tracker.update(10 / 30, fake_landmarks([(500, 500), (503, 500)], [0.9, 0.9]))
    assert [p.track_id for p in people] == [0]


def test_static_ids_follow_boxes() -> None:
    matcher = StaticIdMatcher(1920, 1080)
    a = matcher(fake_landmarks([(500, 500), (1400, 500)], [0.9, 0.9]))
    assert [(p.track_id, round(p.bbox[0])) for p in a] == [(0, 460), (1, 1360)]
    b = matcher(fake_landmarks([(1410, 500), (510, 500), (900, 500)], [0.9, 0.9, 0.3]))  # order swapped
    assert [(p.track_id, round(p.bbox[0])) for p in b] == [(0, 470), (1, 1370)]  # low flag dropped
    c = matcher(fake_landmarks([(1400, 500), (520, 500), (521, 501)], [0.9, 0.9, 0.8]))  # + duplicate
    assert [p.track_id for p in c] == [0, 1]
    d = matcher(fake_landmarks([(1000, 500)], [0.9]))
    assert [p.track_id for p in d] == [2]


def test_one_euro_filter_matches_its_definition() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, derivate_cutoff=1.0)
    assert f(np.array([10.0]), 0.0)[0] == 10.0  # the first sample passes through
    # beta = 0: a plain exponential filter with alpha = 1 / (1 + tau / te), tau = 1 / (2 pi fc).
    alpha = 1 / (1 + 30 / (2 * np.pi))
    assert f(np.array([20.0]), 1 / 30)[0] == pytest.approx(10 + alpha * 10)
    assert f(np.array([99.0]), 1 / 30)[0] == 99.0  # a timestamp that does not advance is passed through


def test_pose_smoother_reduces_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(1)
    smoother = PoseSmoother(enabled=True)
    truth, noisy_out = [], []
    for i in range(60):
        x = 500 + 4 * i  # walking right at 120 px/s
        image = np.zeros((33, 5))
        image[:, 0] = x + rng.normal(0, 2, 33)
        image[:, 1] = np.linspace(300, 700, 33) + rng.normal(0, 2, 33)
        image[:, 3:] = 1
        aux = np.array([[x, 500, 0], [x, 300, 0]], dtype=float)
        out = smoother(i / 30, image, aux, np.zeros((33, 3)))
        truth.append(x)
        noisy_out.append((image[:, 0].copy(), out.image[:, 0].copy()))
    raw_err = np.mean([np.abs(r - t).mean() for (r, _), t in zip(noisy_out[20:], truth[20:], strict=True)])
    smooth_err = np.mean([np.abs(s - t).mean() for (_, s), t in zip(noisy_out[20:], truth[20:], strict=True)])
    assert smooth_err < raw_err  # less jitter, and no lag large enough to undo it
    off = PoseSmoother(enabled=False)
    img = np.ones((33, 5))
    assert off(0.0, img, np.array([[0, 0, 0], [0, 10, 0.0]]), np.zeros((33, 3))).image is img
