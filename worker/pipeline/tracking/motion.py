"""Where a person is going: a constant-velocity estimate of a track's region, for the frames in which
the person is not seen (hidden, crossing behind someone, a missed detection).

The velocity is the least-squares slope of the region's centre over the last ``HISTORY`` frames in
which the person was seen (frame indexes, so gaps count as time); a slope over several frames is
steady where a one-frame difference is not, and frames of an occlusion never enter it. The size is
held: people do not change size quickly, and a guessed growth compounds badly over a gap.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from worker.pipeline.blazepose.regions import CX, CY, SIZE

HISTORY = 8
#: A predicted region moves at most this fraction of its size per frame (a bad slope stays harmless).
MAX_SPEED = 0.25


class RegionMotion:
    """Constant-velocity model of one track's region ``[cx, cy, size, angle]``."""

    def __init__(self) -> None:
        self._frames: deque[int] = deque(maxlen=HISTORY)
        self._centres: deque[tuple[float, float]] = deque(maxlen=HISTORY)
        self._last: np.ndarray | None = None

    def observe(self, frame_index: int, region: np.ndarray) -> None:
        if self._frames and frame_index <= self._frames[-1]:
            return
        self._frames.append(frame_index)
        self._centres.append((float(region[CX]), float(region[CY])))
        self._last = np.asarray(region, dtype=np.float64).copy()

    def velocity(self) -> np.ndarray:
        """Pixels per frame ``(vx, vy)`` of the centre."""
        if len(self._frames) < 2:
            return np.zeros(2)
        t = np.asarray(self._frames, dtype=np.float64)
        xy = np.asarray(self._centres)
        t = t - t.mean()
        v = (t[:, None] * (xy - xy.mean(0))).sum(0) / (t * t).sum()
        assert self._last is not None
        limit = MAX_SPEED * self._last[SIZE]
        speed = float(np.hypot(*v))
        velocity: np.ndarray = v * (limit / speed) if speed > limit else v
        return velocity

    def predict(self, frame_index: int) -> np.ndarray:
        """The region expected at ``frame_index`` (after the last observation)."""
        if self._last is None:
            raise ValueError("no observation yet")
        region = self._last.copy()
        region[[CX, CY]] += self.velocity() * (frame_index - self._frames[-1])
        return region

    @property
    def last_frame(self) -> int:
        return self._frames[-1] if self._frames else -1
