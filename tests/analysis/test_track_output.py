"""The analysed tracks a child hands its worker (worker/pipeline/analysis/track_output.py): what is read
back is what the document holds, and storing a track holds one series at a time, however long the
track (memory as tracemalloc peaks, never times)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from jobs.analyses import _series_tuples, summary_of
from worker.pipeline.analysis.document import TrackAnalysis, track_object
from worker.pipeline.analysis.rotation import Yaw
from worker.pipeline.analysis.track_output import TrackOutputWriter, read_tracks

NAMES = [f"angle{i}" for i in range(24)]  # as many as the analysis has


def analysed(track_id: int, frames: int, first: int = 100) -> TrackAnalysis:
    rng = np.random.default_rng(track_id)

    def values() -> np.ndarray:
        v = rng.uniform(-180, 180, frames)
        v[::7] = np.nan  # nulls
        return v

    index = np.arange(first, first + frames, dtype=np.int64)
    filled, outliers = np.zeros(frames, dtype=bool), np.zeros(frames, dtype=bool)
    filled[3:6], outliers[10:11] = True, True
    return TrackAnalysis(track_id=track_id, frames=index, filled=filled, outliers=outliers,
                         angles={n: values() for n in NAMES}, angles_raw={n: values() for n in NAMES},
                         angular_velocity={n: values() for n in NAMES},
                         yaw=Yaw(body=values(), shoulders=values(), hips=values()), spins=[])


def test_tracks_read_back_as_the_document_has_them(tmp_path: Path) -> None:
    tracks = [analysed(1, 50), analysed(2, 0), analysed(3, 20, first=7)]
    with TrackOutputWriter(tmp_path / "out") as writer:
        for track in tracks:
            writer.write(track, "regular")
    read = list(read_tracks(tmp_path / "out"))
    assert [t.track_id for t in read] == [1, 2, 3]
    for track, back in zip(tracks, read, strict=True):
        document = track_object(track, "regular")
        assert back.frame_count == len(document["frames"]) and back.filled == document["filled"]
        assert back.outliers == document["outliers"] and back.spins == document["spins"]
        if document["frames"]:
            assert back.first_frame == document["frames"][0]
            assert summary_of(back)["last_frame"] == document["frames"][-1]
        for series, name, values in back.series():
            expected = document[name] if series == "yaw" else document[series][name]
            as_real = [None if v is None else float(np.float32(v)) for v in expected]  # stored as real
            assert [None if v != v else float(v) for v in values.tolist()] == as_real, (series, name)


def _storing_peak(tmp_path: Path, frames: int) -> int:
    path = tmp_path / f"out{frames}"
    with TrackOutputWriter(path) as writer:
        for track_id in (1, 2):
            writer.write(analysed(track_id, frames), "regular")
    tracemalloc.start()
    for track in read_tracks(path):
        for _row in _series_tuples(1, track):
            pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_storing_a_track_holds_one_series_at_a_time(tmp_path: Path) -> None:
    short, long = _storing_peak(tmp_path, 2_000), _storing_peak(tmp_path, 60_000)
    series_bytes = 60_000 * 8  # one series as float64
    all_series = (3 * len(NAMES) + 3) * series_bytes  # a track's series, which parsing the whole track would hold
    assert long < 12 * series_bytes < all_series / 6, (short, long)  # a few copies of one series at most
