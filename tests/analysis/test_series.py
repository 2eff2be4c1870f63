"""series.py and the edges of analyze(): gaps, Hampel, zero lag, one-euro, tiny and empty inputs, and
no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.analysis import synthetic
from worker.pipeline.analysis import analyze, series
from worker.pipeline.analysis.angles import unwrap_degrees


def test_fill_gaps_short_interior_only() -> None:
    x = np.arange(20, dtype=np.float64)[:, None] * 2.0
    x[[0, 5, 6, 12, 13, 14, 15, 19]] = np.nan
    filled, mask = series.fill_gaps(x, max_gap=3)
    assert np.flatnonzero(mask[:, 0]).tolist() == [5, 6]
    assert filled[5, 0] == 10.0 and filled[6, 0] == 12.0
    assert np.isnan(filled[[0, 12, 15, 19], 0]).all()  # the ends and the 4-frame gap stay missing


def test_hampel_replaces_a_spike_and_keeps_a_ramp() -> None:
    rng = np.random.default_rng(3)
    x = np.linspace(0.0, 1.0, 100)[:, None] + rng.normal(0, 0.002, (100, 1))
    x[40] += 0.3
    outliers, medians = series.hampel(x, 7, 3.0, floor=0.01)
    assert np.flatnonzero(outliers[:, 0]).tolist() == [40]
    assert abs(medians[40, 0] - 40 / 99) < 0.02


def test_hampel_marks_the_whole_point() -> None:
    x = np.zeros((30, 6))
    x[10, 4] = 5.0  # point 1 (columns 3-5), its y
    outliers, _ = series.hampel(x, 5, 3.0, floor=0.1, groups=2)
    assert outliers[10].tolist() == [False, False, False, True, True, True]


def test_butterworth_has_no_lag_and_removes_noise() -> None:
    fps = 60.0
    t = np.arange(300) / fps
    truth = np.sin(2 * np.pi * 1.0 * t)
    noisy = truth + np.random.default_rng(0).normal(0, 0.05, t.size)
    out = series.butterworth(noisy[:, None], fps, 6.0)[:, 0]
    assert np.sqrt(np.mean((out - truth) ** 2)) < 0.03 and np.abs(out - truth).max() < 0.1
    lag = np.argmax(np.correlate(out - out.mean(), truth - truth.mean(), "full")) - (t.size - 1)
    assert lag == 0
    assert series.jitter(out) < series.jitter(noisy) / 4


def test_butterworth_keeps_nan_and_filters_each_stretch() -> None:
    x = np.ones((50, 1))
    x[20:30] = np.nan
    x[48] = 1.0
    out = series.butterworth(x, 30.0, 6.0)
    assert np.isnan(out[20:30]).all() and np.allclose(out[~np.isnan(x[:, 0])], 1.0)


def test_one_euro_smooths_and_follows() -> None:
    fps = 30.0
    noisy = np.r_[np.zeros(60), np.ones(60)][:, None] + np.random.default_rng(1).normal(0, 0.02, (120, 1))
    noisy[70] = np.nan
    out = series.one_euro(noisy, fps, min_cutoff=1.0, beta=0.5)
    assert series.jitter(out[:60]) < series.jitter(noisy[:60]) / 2
    assert np.isnan(out[70, 0]) and abs(out[110, 0] - 1.0) < 0.05


def test_unwrap_degrees_across_nan() -> None:
    x = np.array([170.0, 179.0, np.nan, -175.0, -160.0])
    assert unwrap_degrees(x)[[0, 1, 3, 4]].tolist() == [170.0, 179.0, 185.0, 200.0]


@pytest.mark.parametrize("flt", ["butterworth", "one_euro", "none"])
def test_tiny_tracks_and_filters(flt: str) -> None:
    world = np.stack([synthetic.pose(knee=40.0)] * 3)
    for frames in (1, 2, 3):
        doc = synthetic.document(world[:frames], fps=25.0)
        track = analyze(doc, {"filter": flt})["tracks"][0]
        assert track["frames"] == list(range(frames))
        assert abs(track["angles"]["left_knee"][0] - 40.0) < 0.5
        assert track["spins"] == []


def test_no_people_no_frames_no_fps() -> None:
    doc = synthetic.document(np.stack([synthetic.pose()] * 4), fps=30.0, missing=[0, 1, 2, 3])
    assert analyze(doc)["tracks"] == []
    del doc["frames"]
    with pytest.raises(ValueError, match="no frames"):
        analyze(doc)
    doc = synthetic.document(np.stack([synthetic.pose()] * 4), fps=30.0)
    doc["video"]["fps"] = None
    assert analyze(doc)["provenance"]["fps"] == pytest.approx(30.0)
    doc["frames"] = doc["frames"][:1]
    with pytest.raises(ValueError, match="fps"):
        analyze(doc)


def test_two_tracks_apart() -> None:
    a = synthetic.document(np.stack([synthetic.pose(knee=10.0)] * 20), fps=30.0, track_id=3)
    b = synthetic.document(np.stack([synthetic.pose(knee=50.0)] * 20), fps=30.0, track_id=1, missing=range(10))
    for fa, fb in zip(a["frames"], b["frames"], strict=True):
        fa["people"] += fb["people"]
    tracks = analyze(a)["tracks"]
    assert [t["track_id"] for t in tracks] == [1, 3]
    assert tracks[0]["frames"] == list(range(10, 20)) and abs(tracks[0]["angles"]["left_knee"][0] - 50.0) < 0.5


def test_imports_no_torch() -> None:
    code = ("import sys, worker.pipeline.analysis, worker.pipeline.analysis.document; "
            "assert 'torch' not in sys.modules and not any(m.startswith(('jobs', 'web')) for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
