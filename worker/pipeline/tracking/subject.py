"""Per-track summaries, and the athlete of interest (``params.subject``).

:class:`TrackSummary` follows every person the pipeline reports and describes each track at the end
(the result document's ``tracks``, so a client can pick a rider): first and last frame, frames seen,
frames predicted (frames between the first and the last in which the track was alive but its person
not seen: bridged by the tracker's grace period), mean height and score, how much the body moves, how
far from the frame's centre it stays, and whether it was the subject.

:class:`SubjectPicker` keeps one person per frame for ``subject`` = ``largest`` (tallest box on
average), ``most_active`` (keypoints moving most relative to the body's height) or ``center``
(closest to the frame's centre on average). Frames leave the pipeline as they are made (a long video
is never held), so the choice cannot wait for the whole video: the first ``warmup`` frames are held,
the subject is chosen among the tracks seen in them, and those frames and every later one keep only
that track. When the subject has been gone for longer than the tracker's grace, the choice is made
again among the tracks seen in the latest frame, by the same measure over everything seen of them.
All tracks stay in the summary either way, the subjects marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

#: Frames held before the subject is chosen (1 s at 30 fps).
SUBJECT_WARMUP = 30


class _PersonLike(Protocol):
    @property
    def track_id(self) -> int: ...
    @property
    def bbox(self) -> np.ndarray: ...
    @property
    def score(self) -> float: ...
    @property
    def keypoints(self) -> np.ndarray: ...


class _FrameLike(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def people(self) -> Sequence[Any]: ...


@dataclass
class _Stats:
    first: int
    last: int
    seen: int = 0
    height: float = 0.0
    score: float = 0.0
    offset: float = 0.0
    motion: float = 0.0
    moves: int = 0
    previous: np.ndarray | None = field(default=None, repr=False)
    subject: bool = False


class TrackSummary:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._diag = math.hypot(width, height) or 1.0
        self._stats: dict[int, _Stats] = {}

    def add(self, frame_index: int, people: Sequence[_PersonLike]) -> None:
        for p in people:
            tid = int(p.track_id)
            s = self._stats.get(tid)
            if s is None:
                s = self._stats[tid] = _Stats(frame_index, frame_index)
            x0, y0, x1, y1 = (float(v) for v in p.bbox)
            tall = max(y1 - y0, 1.0)
            s.last = frame_index
            s.seen += 1
            s.height += tall
            s.score += float(p.score)
            s.offset += math.hypot((x0 + x1 - self.width) / 2, (y0 + y1 - self.height) / 2) / self._diag
            xy = np.asarray(p.keypoints, dtype=np.float64)[:, :2]
            if s.previous is not None:
                centred = xy - xy.mean(0)
                before = s.previous - s.previous.mean(0)
                s.motion += float(np.linalg.norm(centred - before, axis=1).mean()) / tall
                s.moves += 1
            s.previous = xy

    def measure(self, track_id: int, subject: str) -> float:
        """Higher is more the subject."""
        s = self._stats[track_id]
        if subject == "largest":
            return s.height / s.seen
        if subject == "most_active":
            return s.motion / s.moves if s.moves else 0.0
        if subject == "center":
            return -s.offset / s.seen
        raise ValueError(f"unknown subject {subject!r}")

    def mark_subject(self, track_id: int) -> None:
        self._stats[track_id].subject = True

    def tracks(self) -> list[dict[str, Any]]:
        """The document's ``tracks``, by track id."""
        return [
            {
                "track_id": tid,
                "first_frame": s.first,
                "last_frame": s.last,
                "frames_seen": s.seen,
                "frames_predicted": s.last - s.first + 1 - s.seen,
                "mean_height_px": round(s.height / s.seen, 2),
                "mean_score": round(s.score / s.seen, 4),
                "activity": round(s.motion / s.moves, 5) if s.moves else 0.0,
                "centre_offset": round(s.offset / s.seen, 5),
                "subject": s.subject,
            }
            for tid, s in sorted(self._stats.items())
        ]


class SubjectPicker:
    """Filters frames (objects with ``index`` and ``people``) down to the subject's person."""

    def __init__(self, subject: str, summary: TrackSummary, gone_after: int, warmup: int = SUBJECT_WARMUP) -> None:
        self.subject = subject
        self.summary = summary
        self.gone_after = max(1, gone_after)
        self.warmup = max(1, warmup)
        self._held: list[Any] = []
        self._chosen: int | None = None
        self._absent = 0
        self._decided = False

    def _choose(self, among: set[int]) -> None:
        if among:
            self._chosen = max(sorted(among), key=lambda t: self.summary.measure(t, self.subject))
            self.summary.mark_subject(self._chosen)
        else:
            self._chosen = None
        self._absent = 0

    def _keep(self, frame: Any) -> Any:
        people = [p for p in frame.people if p.track_id == self._chosen]
        return type(frame)(frame.index, frame.time_s, people)

    def push(self, frame: _FrameLike) -> list[Any]:
        """The frames that can leave now (none during the warm-up, then this one)."""
        if not self._decided:
            self._held.append(frame)
            if len(self._held) < self.warmup:
                return []
            return self.flush()
        ids = {p.track_id for p in frame.people}
        if self._chosen is None or self._chosen not in ids:
            self._absent += 1
            if self._chosen is None or self._absent > self.gone_after:
                self._choose(ids)
        else:
            self._absent = 0
        return [self._keep(frame)]

    def flush(self) -> list[Any]:
        """Decide (if not yet) and release what is held."""
        if not self._decided:
            self._decided = True
            self._choose({p.track_id for f in self._held for p in f.people})
        held, self._held = self._held, []
        return [self._keep(f) for f in held]
