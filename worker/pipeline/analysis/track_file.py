"""The file in which a worker hands an analysis child the keypoints of a stored pose job, a track at a
time (worker/analysis_job.py writes it, worker/pipeline/analysis/pipeline.py reads it).

Two files: ``<path>`` is JSON (``fps``, ``model``, ``source`` and ``tracks``: for each, its
``track_id``, first record and record count) and ``<path>.bin`` the records, one per person-frame,
grouped by track and in frame order within a track (:data:`RECORD`: frame index, time, the 33 × 5
image keypoints and 33 × 3 world landmarks, float64 parsed from the numbers as PostgreSQL prints them,
i.e. as the result document has them).
The reader reads one track's records at a time, so the child holds one track's series, never the
whole video; the writer takes a page of frames at a time (all tracks), spreading the rows over a
spill file per track that it joins at the end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worker.pipeline.analysis.document import TrackInput
from worker.pipeline.io.keypoints import KEYPOINT_NAMES

N = len(KEYPOINT_NAMES)
#: (frame_index, time_s, keypoints: 165 comma-separated numbers or None, world: 99 or None)
Row = tuple[int, float, str | None, str | None]
RECORD = np.dtype([("frame", "<i8"), ("time", "<f8"), ("keypoints", "<f8", (N, 5)), ("world", "<f8", (N, 3))])


def _numbers(text: str | None, width: int) -> np.ndarray[Any, Any]:
    """(N, width) float64 from PostgreSQL's text of a real[] (NaN when the array is missing or short)."""
    values = np.array(text.split(","), dtype=np.float64) if text else np.empty(0)
    if values.size != N * width:
        return np.full((N, width), np.nan)
    return values.reshape(N, width)


@dataclass
class TrackFileWriter:
    """Takes rows in any order of tracks (a page of frames at a time, each track's rows in frame order),
    appends each track's to a spill file of its own, and at :meth:`close` joins them, in track order,
    into ``<path>.bin`` and writes the index ``<path>``: one pass over the rows, a page in memory."""

    path: Path
    fps: float | None
    model: Any
    source: Any
    counts: dict[int, int] = field(default_factory=dict)

    def _spill(self, track_id: int) -> Path:
        return self.path.with_name(f"{self.path.name}.track{track_id}")

    def add_rows(self, track_id: int, rows: Sequence[Row]) -> None:
        """Rows ``(frame_index, time_s, keypoints (165 values), world (99 values))`` of ``track_id``, in
        frame order, after its rows of earlier calls (a missing or short array is NaN)."""
        if not rows:
            return
        records = np.zeros(len(rows), dtype=RECORD)
        records["frame"] = [r[0] for r in rows]
        records["time"] = [r[1] for r in rows]
        records["keypoints"] = [_numbers(r[2], 5) for r in rows]
        records["world"] = [_numbers(r[3], 3) for r in rows]
        with open(self._spill(track_id), "ab") as fh:
            fh.write(records.tobytes())
        self.counts[track_id] = self.counts.get(track_id, 0) + len(rows)

    def close(self) -> None:
        tracks, start = [], 0
        with open(self.path.with_name(self.path.name + ".bin"), "wb") as out:
            for track_id in sorted(self.counts):
                spill = self._spill(track_id)
                with open(spill, "rb") as fh:
                    shutil.copyfileobj(fh, out)
                spill.unlink()
                tracks.append({"track_id": track_id, "start": start, "count": self.counts[track_id]})
                start += self.counts[track_id]
        index = {"fps": self.fps, "model": self.model, "source": self.source, "tracks": tracks}
        self.path.write_text(json.dumps(index), encoding="utf-8")

    def discard(self) -> None:
        """Remove the spill files of an abandoned write."""
        for track_id in self.counts:
            self._spill(track_id).unlink(missing_ok=True)

    @property
    def person_frames(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class TrackFile:
    """An index read back: the tracks are read one at a time by :meth:`iter_tracks`."""

    path: Path
    fps: float | None
    model: Any
    source: Any
    tracks: list[dict[str, int]]

    @classmethod
    def open(cls, path: str | Path) -> TrackFile:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(Path(path), index["fps"], index["model"], index["source"], index["tracks"])

    @property
    def person_frames(self) -> int:
        return sum(t["count"] for t in self.tracks)

    def fps_from_times(self) -> float | None:
        """The frame rate from the first track's times, for a source whose document names none."""
        for track in self.tracks:
            records = self._records(track)
            if records.size >= 2 and records["time"][-1] > records["time"][0]:
                return float((records["frame"][-1] - records["frame"][0]) / (records["time"][-1] - records["time"][0]))
        return None

    def _records(self, track: dict[str, int]) -> np.ndarray[Any, Any]:
        return np.fromfile(self.path.with_name(self.path.name + ".bin"), dtype=RECORD, count=track["count"],
                           offset=track["start"] * RECORD.itemsize)

    def iter_tracks(self) -> Iterator[TrackInput]:
        for track in self.tracks:
            records = self._records(track)
            yield TrackInput(track_id=int(track["track_id"]), frames=records["frame"].astype(np.int64),
                             keypoints=records["keypoints"], world=records["world"])
