"""The analysed tracks an analysis child hands its worker (worker/pipeline/analysis/pipeline.py writes
them, worker/analysis_job.py reads them for jobs/analyses.py to store).

Two files, written a track at a time: ``<path>`` has one JSON line per track with its facts
(``track_id``, ``first_frame``, ``frame_count``, ``filled``, ``outliers``, ``spins``) and where each of
its series lies in ``<path>.bin``: ``series`` is a list of ``[series, name, offset, count]`` (offset
and count in values), the values float32 little-endian, rounded as the document rounds them
(document.rounded_series), NaN for null. They are stored as ``real`` (float32) anyway, so nothing is
lost.

Why not the tracks as analysis@1 JSON lines: a 1-hour 60 fps track is about 16 million numbers,
which as one JSON line took the child over 2 GB to write and the worker over 2.5 GB to parse (every
number a Python object). As arrays, the child writes each series from its numpy array and the worker
reads one series at a time (a megabyte for that track), so the worker's memory does not grow with the
video's length.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from worker.pipeline.analysis.document import TrackAnalysis, rounded_series, spin_objects

VALUE = np.dtype("<f4")


def bin_path(path: Path) -> Path:
    return path.with_name(path.name + ".bin")


class TrackOutputWriter:
    """Appends analysed tracks to ``path`` and ``<path>.bin``; use as a context manager (the files are
    flushed to disk on a clean exit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in __exit__
        self._values: IO[bytes] = open(bin_path(path), "wb")  # noqa: SIM115 - closed in __exit__
        self._offset = 0

    def write(self, track: TrackAnalysis, stance: str) -> None:
        frames = track.frames
        placed = []
        for series, name, values in rounded_series(track):
            data = np.ascontiguousarray(values, dtype=VALUE)
            self._values.write(data.tobytes())
            placed.append([series, name, self._offset, int(data.size)])
            self._offset += int(data.size)
        facts = {"track_id": int(track.track_id), "first_frame": int(frames[0]) if frames.size else None,
                 "frame_count": int(frames.size), "filled": frames[track.filled].tolist(),
                 "outliers": frames[track.outliers].tolist(), "spins": spin_objects(track, stance), "series": placed}
        self._lines.write(json.dumps(facts, separators=(",", ":"), allow_nan=False) + "\n")

    def __enter__(self) -> TrackOutputWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        for fh in (self._values, self._lines):
            if exc_type is None:
                fh.flush()
                os.fsync(fh.fileno())
            fh.close()


@dataclass(frozen=True)
class TrackOutput:
    """One analysed track as read back: its facts, and its series read from the values file one at a
    time (:meth:`series`)."""

    track_id: int
    first_frame: int | None
    frame_count: int
    filled: list[int]
    outliers: list[int]
    spins: list[dict[str, Any]]
    placed: list[tuple[str, str, int, int]]
    values_path: Path

    def series(self) -> Iterator[tuple[str, str, NDArray[np.float32]]]:
        """``(series, name, values)`` in the order they were written (NaN: null)."""
        with open(self.values_path, "rb") as fh:
            for series, name, offset, count in self.placed:
                fh.seek(offset * VALUE.itemsize)
                values = np.fromfile(fh, dtype=VALUE, count=count)
                if values.size != count:
                    raise ValueError(f"{self.values_path} ends inside track {self.track_id}'s {series} {name}")
                yield series, name, values


def read_tracks(path: Path) -> Iterator[TrackOutput]:
    """The tracks of ``path``, one line at a time."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            facts = json.loads(line)
            yield TrackOutput(
                track_id=int(facts["track_id"]), first_frame=facts["first_frame"],
                frame_count=int(facts["frame_count"]), filled=list(facts["filled"]), outliers=list(facts["outliers"]),
                spins=list(facts["spins"]), values_path=bin_path(path),
                placed=[(str(s), str(n), int(o), int(c)) for s, n, o, c in facts["series"]])
