"""Sport analysis (worker/pipeline/analysis) on the real pose pipeline's output for runner_1080p.mp4:
the knee-angle series is periodic with the stride frequency measured from the ankles, the filter cuts
frame-to-frame jitter by a stated factor (1.8x), and a runner does not spin.

The clip is slow motion (one stride takes about 72 frames of its 30 fps), which the periods show."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from jobs.sample_media import shared_dir
from worker.pipeline import pose
from worker.pipeline.analysis import analyze
from worker.pipeline.analysis.series import jitter

RUNNER = shared_dir() / "media" / "runner_1080p.mp4"
#: The least reduction of jitter (raw / filtered, series.jitter) the defaults must give, knees and hips;
#: measured 2.2-2.5x on the four knee series, 2.0x on the hips (README, "Sport analysis (core)").
JITTER_REDUCTION = {"knee": 1.8, "hip": 1.7}


def period_frames(x: np.ndarray, lo: int = 10, hi: int = 150) -> float:
    """The series' dominant period in frames: the highest autocorrelation peak with a lag in [lo, hi],
    refined between frames by a parabola through it and its neighbours."""
    x = np.nan_to_num(x - np.nanmean(x))
    ac = np.correlate(x, x, mode="full")[x.size - 1:]
    ac /= ac[0]
    lags = np.arange(ac.size)
    peaks = [k for k in range(max(lo, 1), min(hi, ac.size - 1)) if ac[k - 1] < ac[k] >= ac[k + 1]]
    k = max(peaks, key=lambda i: ac[i])
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    return float(lags[k] + 0.5 * (a - c) / (a - 2 * b + c))


def values(seq: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in seq], dtype=np.float64)


@pytest.fixture(scope="module")
def runner(pipeline: pose.PosePipeline) -> tuple[dict[str, Any], dict[str, Any]]:
    result = pipeline(str(RUNNER), {"mode": "video"}, lambda done, total: None)
    return result, analyze(result, source=RUNNER.name)


def test_knee_angle_periodic_with_the_stride(runner: tuple[dict[str, Any], dict[str, Any]]) -> None:
    result, analysis = runner
    assert [t["track_id"] for t in analysis["tracks"]] == [0]
    track = analysis["tracks"][0]
    assert len(track["frames"]) == result["video"]["frames"]
    keypoints = np.array([f["people"][0]["keypoints"] for f in result["frames"]])
    ankles = keypoints[:, 27, 0] - keypoints[:, 28, 0]  # left minus right ankle, across the picture
    stride = period_frames(ankles)
    print(f"stride from the ankles: {stride:.1f} frames ({30.0 / stride:.3f} Hz at 30 fps)")
    assert 60 < stride < 90  # slow motion: about 72 frames
    for name in ("left_knee", "right_knee", "left_knee_2d", "right_knee_2d"):
        knee = values(track["angles"][name])
        assert np.nanmax(knee) - np.nanmin(knee) > 60, name  # the knees really bend and stretch
        print(f"{name}: period {period_frames(knee):.1f} frames")
        assert period_frames(knee) == pytest.approx(stride, rel=0.1), name
    # the two knees are half a stride apart: the left one's series shifted by half a period matches the right's
    left, right = values(track["angles"]["left_knee"]), values(track["angles"]["right_knee"])
    half = int(round(stride / 2))
    same = np.corrcoef(left[half:], right[:-half])[0, 1]
    assert same > 0.7, same


def test_filter_cuts_jitter(runner: tuple[dict[str, Any], dict[str, Any]]) -> None:
    track = runner[1]["tracks"][0]
    for name in ("left_knee", "right_knee", "left_knee_2d", "right_knee_2d", "left_hip", "right_hip"):
        raw, filtered = values(track["angles_raw"][name]), values(track["angles"][name])
        ratio = jitter(raw) / jitter(filtered)
        print(f"{name}: jitter raw {jitter(raw):.3f}°, filtered {jitter(filtered):.3f}°, {ratio:.2f}x")
        assert ratio >= JITTER_REDUCTION[name.split("_")[1]], (name, ratio)
        # filtering smooths, it does not flatten the motion: the swing of the angle is kept
        assert np.nanmax(filtered) - np.nanmin(filtered) > 0.85 * (np.nanmax(raw) - np.nanmin(raw)), name


def test_a_runner_does_not_spin(runner: tuple[dict[str, Any], dict[str, Any]]) -> None:
    track = runner[1]["tracks"][0]
    assert track["spins"] == []
    yaw = values(track["yaw"])
    assert np.nanmax(yaw) - np.nanmin(yaw) < 90  # seen from one side throughout
