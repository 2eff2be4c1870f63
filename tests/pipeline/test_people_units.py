"""The pieces of issue 12 without any model: tile grids and the automatic scale choice, merging
detections by body, the keypoint-aware NMS, grace and re-identification in the tracker, and the
subject picker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tests.pipeline.test_tracking import detections_at, fake_landmarks
from worker.pipeline.blazepose.detector import Detections, weighted_nms
from worker.pipeline.blazepose.tiling import Sweep, TileGrid, auto_scales, level_tiles, merge_detections
from worker.pipeline.io.result_document import FrameResult
from worker.pipeline.tracking.subject import SubjectPicker, TrackSummary
from worker.pipeline.tracking.tracker import Person, VideoTracker


@pytest.mark.parametrize(
    ("size", "scales"),
    [((320, 240), 0), ((640, 360), 1), ((1280, 720), 1), ((1920, 1088), 1), ((2560, 1440), 1),
     ((3840, 2160), 2), ((1080, 1920), 1), ((7680, 4320), 3)],
)  # fmt: skip
def test_auto_scales_from_the_frame_size(size: tuple[int, int], scales: int) -> None:
    assert auto_scales(*size) == scales


def test_tiles_cover_the_frame_overlapping_by_half() -> None:
    tiles = level_tiles(1920, 1088, 1)
    assert len(tiles) == 21 and (tiles[:, 2] == 544).all() and (tiles[:, 3] == 0).all()
    xs, ys = np.unique(tiles[:, 0]), np.unique(tiles[:, 1])
    assert xs[0] - 272 == 0 and xs[-1] + 272 == 1920 and ys[0] - 272 == 0 and ys[-1] + 272 == 1088
    assert (np.diff(xs) <= 272 + 1e-9).all() and (np.diff(ys) <= 272 + 1e-9).all()
    assert len(level_tiles(3840, 2160, 2)) == 98
    assert len(TileGrid.for_frame(1920, 1088, 0).tiles) == 0


def test_the_rolling_sweep_visits_every_tile_once_per_period() -> None:
    grid = TileGrid.for_frame(1920, 1088)
    period = 63
    seen = np.concatenate([grid.rolling(f, period) for f in range(100, 100 + period)])
    assert len(seen) == len(grid.tiles) == 21
    assert len(np.unique(seen, axis=0)) == 21


def test_quiet_sweeps_grow_longer_and_a_change_restarts_them() -> None:
    grid = TileGrid.for_frame(1920, 1088)
    sweep = Sweep(grid, 21, max_factor=4)
    per_frame = [len(sweep.due(f)) for f in range(0, 21 + 42 + 84 + 84)]
    assert sum(per_frame[:21]) == 21 and sum(per_frame[21:63]) == 21  # one tile a frame, then every other
    assert sum(per_frame[63:147]) == 21 and sum(per_frame[147:]) == 21  # capped at 4 x 21 frames
    sweep.restart(1000)
    assert sum(len(sweep.due(f)) for f in range(1000, 1021)) == 21
    sweep.restart(2000, quiet=True)
    assert sum(len(sweep.due(f)) for f in range(2000, 2021)) == 11


def person(hip: tuple[float, float], height: float, score: float, side: float, clear: bool = True) -> Detections:
    """A detection of a person of ``height`` px with the hip centre at ``hip``, seen in a square of ``side``."""
    x, y = hip
    half = height / 2
    kps = np.array([[[x, y], [x, y - half], [x, y - 0.6 * half], [x, y - half]]])
    face = 0.2 * side
    box = np.array([[x - face / 2, y - half, x + face / 2, y - half + face]])
    return Detections(box, kps, np.array([score]), np.array([side]), np.array([clear]))


def test_merge_keeps_neighbours_apart_and_one_person_once() -> None:
    # the same runner from the letterbox and from two tiles, and her neighbour a third of a body away
    parts = [person((500, 500), 600, 0.9, 1920), person((505, 498), 600, 0.99, 1088),
             person((503, 502), 600, 0.97, 1088), person((700, 500), 600, 0.95, 1088)]
    merged = merge_detections(parts)
    assert len(merged) == 2
    hips = merged.keypoints[:, 0]
    # the letterbox's detection wins for the runner (coarsest reliable level), with its score
    assert sorted(hips[:, 0].tolist()) == [500.0, 700.0]
    assert sorted(merged.scores.tolist()) == [0.9, 0.95]


def test_merge_prefers_a_tile_where_the_person_is_reliably_large() -> None:
    # 140 px tall in the letterbox (7 % of 1920: below what the detector sees reliably), 28 % of a tile
    small_in_letterbox = person((1000, 700), 140, 0.6, 1920)
    in_tile = person((1010, 705), 150, 0.9, 544)
    merged = merge_detections([small_in_letterbox, in_tile])
    assert len(merged) == 1 and merged.keypoints[0, 0].tolist() == [1010.0, 705.0]


def test_a_single_square_is_the_detectors_own_answer() -> None:
    only = person((500, 500), 300, 0.9, 1920)
    assert merge_detections([only]) is only


def test_weighted_nms_keeps_neighbours_whose_face_boxes_overlap() -> None:
    """One figure just behind another, faces close (their same-sized face boxes overlap by IoU > 0.3),
    bodies apart: MediaPipe's weighted NMS averages them into one detection between them; ours keeps both."""
    boxes = np.array([[0.40, 0.20, 0.60, 0.40], [0.45, 0.25, 0.65, 0.45]])
    kps = np.array([[[0.50, 0.60], [0.50, 0.20], [0.50, 0.35], [0.50, 0.20]],
                    [[0.70, 0.62], [0.60, 0.25], [0.65, 0.45], [0.60, 0.25]]])  # fmt: skip
    _, k, s = weighted_nms(boxes, kps, np.array([0.9, 0.8]))
    assert len(s) == 2 and sorted(k[:, 0, 0].round(2).tolist()) == [0.5, 0.7]


def test_a_lost_track_comes_back_with_its_id_from_its_predicted_region() -> None:
    tracker = VideoTracker(1920, 1080, max_people=2, redetect_every=100, grace=5)
    tracker.plan(0, detections_at([(500, 500)]))
    tracker.update(0.0, fake_landmarks([(500, 500)], [0.9]))
    for f in range(1, 4):  # moving right 10 px a frame
        tracker.plan(f, None)
        tracker.update(f / 30, fake_landmarks([(500 + 10 * f, 500)], [0.9]))
    for f in range(4, 7):  # hidden: lost, then predicted where she should be, and not reported
        regions = tracker.plan(f, None)
        assert len(regions) == 1 and (f == 4 or regions[0, 0] == pytest.approx(500 + 10 * f, abs=3))
        assert tracker.update(f / 30, fake_landmarks([(500 + 10 * f, 500)], [0.1])) == []
        assert len(tracker) == 1 and tracker.active == 0
    tracker.plan(7, None)
    assert [p.track_id for p in tracker.update(7 / 30, fake_landmarks([(570, 500)], [0.9]))] == [0]


def test_a_newcomer_near_a_lost_tracks_prediction_takes_its_id_and_the_grace_ends() -> None:
    tracker = VideoTracker(1920, 1080, max_people=3, redetect_every=100, grace=3)
    tracker.plan(0, detections_at([(500, 500), (1400, 500)]))
    tracker.update(0.0, fake_landmarks([(500, 500), (1400, 500)], [0.9, 0.9]))
    tracker.plan(1, None)
    tracker.update(1 / 30, fake_landmarks([(500, 500), (1400, 500)], [0.9, 0.2]))  # 1 lost
    # a detection 150 px from where 1 should be: the region there is looked at instead of the guess
    regions = tracker.plan(2, detections_at([(1550, 500)]))
    assert len(regions) == 2 and regions[1, 0] == pytest.approx(1550)
    people = tracker.update(2 / 30, fake_landmarks([(500, 500), (1550, 500)], [0.9, 0.9]))
    assert [p.track_id for p in people] == [0, 1]
    for f in range(3, 8):  # gone for longer than the grace: the track ends
        tracker.plan(f, None)
        tracker.update(f / 30, fake_landmarks([(500, 500), (1550, 500)], [0.9, 0.1]))
    assert len(tracker) == 1


@dataclass(frozen=True)
class _P:
    track_id: int
    bbox: np.ndarray
    score: float
    keypoints: np.ndarray


def at(track_id: int, cx: float, height: float, wiggle: float = 0.0) -> Person:
    keypoints = np.zeros((33, 5))
    keypoints[:, 0] = cx + wiggle * np.sin(np.arange(33))
    keypoints[:, 1] = np.linspace(100, 100 + height, 33)
    bbox = np.array([cx - 20, 100, cx + 20, 100 + height])
    return Person(track_id, bbox, 0.9, keypoints, np.zeros((33, 3)))


@pytest.mark.parametrize(("subject", "chosen"), [("largest", 2), ("center", 1), ("most_active", 3)])
def test_subject_picker_keeps_one_track_after_the_warmup(subject: str, chosen: int) -> None:
    summary = TrackSummary(1000, 600)
    picker = SubjectPicker(subject, summary, gone_after=3, warmup=4)
    out: list[FrameResult] = []
    for f in range(10):
        people = [at(1, 500, 100), at(2, 100, 300), at(3, 900, 100, wiggle=10.0 * (f % 2))]
        summary.add(f, people)
        out += picker.push(FrameResult(f, f / 30, people))
    out += picker.flush()
    assert [f.index for f in out] == list(range(10))
    assert all([p.track_id for p in f.people] == [chosen] for f in out)
    tracks = {t["track_id"]: t for t in summary.tracks()}
    assert [t for t in tracks if tracks[t]["subject"]] == [chosen]
    assert tracks[2]["mean_height_px"] == 300 and tracks[1]["frames_seen"] == 10


def test_subject_picker_chooses_again_when_the_subject_is_gone() -> None:
    summary = TrackSummary(1000, 600)
    picker = SubjectPicker("largest", summary, gone_after=2, warmup=2)
    out: list[FrameResult] = []
    for f in range(8):
        people = [at(1, 500, 100)] + ([at(2, 100, 300)] if f < 3 else [])
        summary.add(f, people)
        out += picker.push(FrameResult(f, f / 30, people))
    assert [[p.track_id for p in f.people] for f in out] == [[2], [2], [2], [], [], [1], [1], [1]]
    assert [t["track_id"] for t in summary.tracks() if t["subject"]] == [1, 2]
