"""The issue's synthetic motions through analyze(): a knee bending 0 → 90°, a trunk leaning 30°, an arm
swinging round, a body turning 720° at varying speed, each with noise and dropouts. Angles within 2°,
the spin counted in the right direction, no wrap-around jumps, filled gaps marked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.analysis import synthetic
from worker.pipeline.analysis import analyze
from worker.pipeline.analysis.angles import angle_names

FPS = 60.0
NOISE = {"noise_m": 0.004, "noise_px": 1.5}  # about what BlazePose jitters by on a still person


def series(track: dict[str, Any], name: str, key: str | None = "angles") -> np.ndarray:
    values = track[name] if key is None else track[key][name]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def test_knee_bend_0_to_90_seen_from_the_side() -> None:
    knee = synthetic.smooth_ramp(90, 0.0, 90.0, hold=30)
    world = np.stack([synthetic.pose(knee=k, yaw=90.0) for k in knee])  # side view: bending in the picture
    doc = synthetic.document(world, fps=FPS, **NOISE, low_visibility=[(60, 64)], missing=[100, 101, 102])
    track = analyze(doc)["tracks"][0]
    for name in ("left_knee", "right_knee", "left_knee_2d", "right_knee_2d"):
        got = series(track, name)
        assert not np.isnan(got).any(), name
        assert np.abs(got - knee).max() < 2.0, (name, np.abs(got - knee).max())
    # the dropouts were filled and say so
    assert set(range(60, 64)) | {100, 101, 102} <= set(track["filled"])
    assert len(track["filled"]) < 20
    # raw angles are kept beside the filtered ones, nulls where the pose stage had nothing trusted
    raw = series(track, "left_knee", "angles_raw")
    assert np.isnan(raw[[60, 63, 100, 102]]).all() and not np.isnan(raw[:60]).any()
    # angular velocity of the cosine ramp: at its middle (frame 30 + 45), pi/2 × 90° / 1.5 s
    velocity = series(track, "left_knee", "angular_velocity")
    assert velocity[73:78].mean() == pytest.approx(np.pi / 2 * 90 / 1.5, rel=0.05)
    assert np.abs(velocity[:25]).mean() < 10.0  # still, noise aside


def test_trunk_lean_30() -> None:
    lean = synthetic.smooth_ramp(60, 0.0, 30.0, hold=30)
    world = np.stack([synthetic.pose(lean=a, yaw=90.0) for a in lean])
    track = analyze(synthetic.document(world, fps=FPS, **NOISE, low_visibility=[(50, 55)]))["tracks"][0]
    for name in ("trunk_lean", "trunk_lean_2d"):
        assert np.abs(series(track, name) - lean).max() < 2.0, name
    # the trunk as a segment: 90° (upright) down to 60° above the horizontal; in the picture the body faces
    # right, so leaning forwards turns the trunk clockwise from 90° to 60°
    assert np.abs(series(track, "trunk") - (90.0 - lean)).max() < 2.0
    assert np.abs(series(track, "trunk_2d") - (90.0 - lean)).max() < 2.0


def test_arm_swinging_round_stays_continuous() -> None:
    """A straight left arm swung forwards and over, two full turns in the picture's plane: the 2D segment
    angles pass ±180° and must not jump back by 360."""
    arm = synthetic.smooth_ramp(240, 0.0, 720.0, hold=10)
    world = np.stack([synthetic.pose(arm=a, yaw=90.0) for a in arm])
    track = analyze(synthetic.document(world, fps=FPS, **NOISE))["tracks"][0]
    for name in ("left_arm_2d", "left_forearm_2d"):
        got = series(track, name)
        # hanging down in a body facing right is -90°; swung forwards = counter-clockwise in the picture
        assert np.abs(got - (-90.0 + arm)).max() < 2.0, name
        assert np.abs(np.diff(got)).max() < 15.0
    # the shoulder's (unsigned) angle follows the arm's position: 0 along the trunk, 180 overhead
    expected = np.degrees(np.arccos(np.cos(np.radians(arm))))
    shoulder = series(track, "left_shoulder")
    # not exact: the shoulder is 4 cm outside the hip's line, so the trunk line is not the arm's zero
    assert np.median(np.abs(shoulder - expected)) < 5.0 and np.abs(shoulder - expected).max() < 15.0


@pytest.mark.parametrize(("turn", "stance", "direction"), [
    (720.0, "unknown", "left"), (720.0, "regular", "frontside"), (720.0, "goofy", "backside"),
    (-540.0, "unknown", "right"), (-540.0, "regular", "backside"),
])
def test_spin_counted(turn: float, stance: str, direction: str) -> None:
    """A body turning at varying speed (cosine ease, peak over 900°/s) from facing the camera, riding with
    bent knees, with noise, a dropout and missing frames in the middle of the spin."""
    yaw = synthetic.smooth_ramp(90, 0.0, turn, hold=45)
    world = np.stack([synthetic.pose(knee=30.0, yaw=y) for y in yaw])
    doc = synthetic.document(world, fps=FPS, **NOISE, low_visibility=[(80, 83)], missing=[95, 96])
    track = analyze(doc, {"stance": stance})["tracks"][0]
    got = series(track, "yaw", None)
    truth = np.unwrap(np.radians(yaw))  # the truth is already continuous
    assert np.abs(got - np.degrees(truth)).max() < 4.0
    assert np.abs(np.diff(got)).max() < 30.0  # no wrap-around jumps (the peak speed is ~25° a frame)
    spins = track["spins"]
    assert len(spins) == 1, spins
    spin = spins[0]
    assert spin["degrees"] == abs(turn) and spin["direction"] == direction
    assert abs(spin["measured_degrees"] - turn) < 5.0
    assert 40 <= spin["start_frame"] <= 55 and 125 <= spin["end_frame"] <= 140, spin
    assert {80, 81, 82, 95, 96} <= set(track["filled"])
    # the knees do not care about the turn
    assert np.abs(series(track, "left_knee") - 30.0).max() < 2.0


def test_carving_back_and_forth_is_no_spin() -> None:
    """Turning 120° one way and back, repeatedly (a rider linking turns), is no spin."""
    t = np.arange(300) / FPS
    yaw = 60.0 * np.sin(2 * np.pi * 0.5 * t)
    world = np.stack([synthetic.pose(yaw=y) for y in yaw])
    assert analyze(synthetic.document(world, fps=FPS, **NOISE))["tracks"][0]["spins"] == []


def test_long_gap_stays_missing_and_document_shape() -> None:
    world = np.stack([synthetic.pose(knee=20.0)] * 120)
    doc = synthetic.document(world, fps=30.0, low_visibility=[(40, 60)], missing=[119])
    analysis = analyze(doc, {"max_gap_s": 0.2}, source={"job_id": 7})
    assert analysis["schema"] == "pose-service/analysis@1"
    assert analysis["provenance"]["source"] == {"job_id": 7}
    assert analysis["provenance"]["fps"] == 30.0 and analysis["provenance"]["params"]["max_gap_s"] == 0.2
    assert analysis["provenance"]["model"]["name"] == "synthetic" and analysis["provenance"]["version"]
    assert analysis["angle_names"] == angle_names()
    track = analysis["tracks"][0]
    assert track["frames"] == list(range(119))  # up to the last frame the person was seen
    knee = track["angles"]["left_knee"]
    assert all(v is None for v in knee[40:60]) and knee[39] is not None and knee[60] is not None
    assert not set(range(40, 60)) & set(track["filled"])
    assert set(track["angles"]) == set(angle_names())


@pytest.mark.parametrize(("fps", "frames", "turn"), [(25.0, 20, -540.0), (30.0, 30, 720.0), (30.0, 36, 1080.0)])
def test_fast_spin_on_phone_frame_rates(fps: float, frames: int, turn: float) -> None:
    """Spins of 0.8-1.2 s at 25-30 fps (peaks of 1,000-1,500°/s, 40-50° a frame): no frame of the turn may
    be taken for an outlier (a Hampel on the positions did, and put a 540's yaw 40° off)."""
    yaw = synthetic.smooth_ramp(frames, 0.0, turn, hold=20)
    world = np.stack([synthetic.pose(knee=30.0, yaw=y) for y in yaw])
    track = analyze(synthetic.document(world, fps=fps, **NOISE))["tracks"][0]
    assert np.abs(series(track, "yaw", None) - yaw).max() < 5.0
    assert [(s["degrees"], s["direction"]) for s in track["spins"]] == [(abs(turn), "left" if turn > 0 else "right")]
    assert len(track["outliers"]) <= 2


def test_yaw_from_the_hips_alone_while_the_shoulders_are_hidden() -> None:
    yaw = synthetic.smooth_ramp(40, 0.0, 360.0, hold=20)
    doc = synthetic.document(np.stack([synthetic.pose(yaw=y) for y in yaw]), fps=30.0, **NOISE)
    for frame in doc["frames"][25:60]:  # the shoulders untrusted for most of the turn (longer than max_gap_s)
        for keypoint in (11, 12):
            frame["people"][0]["keypoints"][keypoint][3] = 0.1
    track = analyze(doc)["tracks"][0]
    assert all(v is None for v in track["yaw_shoulders"][25:60])
    assert np.abs(series(track, "yaw", None) - yaw).max() < 5.0
    assert [s["degrees"] for s in track["spins"]] == [360]
