"""Which way the body faces (yaw about the vertical), its cumulative rotation, and the spins in it.

Yaw is measured in the world landmarks' frame (x right, y down, z away from the camera, hip-centred),
whose vertical is the camera's vertical: yaw 0 = facing the camera, +90 = facing the picture's right,
positive = counter-clockwise seen from above = the athlete turning to their own left. The facing
direction of a left-right line (shoulders, hips) is horizontal and perpendicular to it; the body's yaw
is the mean of the shoulders' and the hips' facing directions (one of them alone where the other's
keypoints are missing). Yaw is unwrapped: a body that turns
twice goes from 0 to 720 (or -720), never jumping back by 360.

A spin is a stretch in which the unwrapped yaw keeps going one way (turns back of less than
``reversal_degrees`` do not end it) by at least ``min_degrees``, at a mean speed of at least
``min_rate_dps``. Its ``degrees`` is the rotation rounded to the nearest 180 (a 720 is 720 even if
the landing was 20° short); ``measured_degrees`` keeps the exact value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from worker.pipeline.analysis.angles import unwrap_degrees
from worker.pipeline.io.keypoints import KEYPOINT_NAMES

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

LEFT_SHOULDER, RIGHT_SHOULDER = KEYPOINT_NAMES.index("left_shoulder"), KEYPOINT_NAMES.index("right_shoulder")
LEFT_HIP, RIGHT_HIP = KEYPOINT_NAMES.index("left_hip"), KEYPOINT_NAMES.index("right_hip")
YAW_KEYPOINTS = (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP)


def facing(left: FloatArray, right: FloatArray) -> FloatArray:
    """The horizontal facing direction (T, 2) as (x, -z) of the body whose left and right points (T, 3)
    are given: the left-to-right line turned a quarter in the horizontal plane, not normalised."""
    line = left - right
    return np.stack([line[:, 2], line[:, 0]], axis=1)


def yaw_of(direction: FloatArray) -> FloatArray:
    """Yaw in degrees, (-180, 180], of facing directions (T, 2) from :func:`facing`."""
    return np.asarray(np.degrees(np.arctan2(direction[:, 0], direction[:, 1])), dtype=np.float64)


@dataclass(frozen=True)
class Yaw:
    """Unwrapped yaw series (T,), degrees: the body (mean), the shoulder line and the hip line."""

    body: FloatArray
    shoulders: FloatArray
    hips: FloatArray


def body_yaw(world: FloatArray) -> Yaw:
    """Yaw of world coordinates (T, 33, 3), each series unwrapped."""
    shoulders = facing(world[:, LEFT_SHOULDER], world[:, RIGHT_SHOULDER])
    hips = facing(world[:, LEFT_HIP], world[:, RIGHT_HIP])

    def unit(v: FloatArray) -> FloatArray:
        with np.errstate(all="ignore"):
            return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float64)

    # either line alone where the other is missing (arms and hands hide shoulders more often than hips)
    body = np.nansum(np.stack([unit(shoulders), unit(hips)]), axis=0)
    body[np.isnan(shoulders).any(axis=1) & np.isnan(hips).any(axis=1)] = np.nan
    return Yaw(body=unwrap_degrees(yaw_of(body)), shoulders=unwrap_degrees(yaw_of(shoulders)),
               hips=unwrap_degrees(yaw_of(hips)))


@dataclass(frozen=True)
class Spin:
    start: int  # position in the series (not a frame index)
    end: int
    measured_degrees: float  # signed: positive = counter-clockwise seen from above
    degrees: int  # |measured| rounded to the nearest 180

    def direction(self, stance: str) -> str:
        """``left``/``right`` (the athlete's own, seen from above: counter-clockwise is left), or for a
        known stance ``frontside``/``backside``: a regular rider (left foot forward) spins frontside
        counter-clockwise, a goofy one clockwise."""
        ccw = self.measured_degrees > 0
        if stance == "regular":
            return "frontside" if ccw else "backside"
        if stance == "goofy":
            return "backside" if ccw else "frontside"
        return "left" if ccw else "right"


def _legs(yaw: FloatArray, reversal: float) -> list[tuple[int, int]]:
    """Monotone stretches (start, extreme) of ``yaw`` (unwrapped, NaN skipped) with hysteresis: the
    direction changes only after a turn back of ``reversal`` degrees from the extreme so far."""
    idx = np.flatnonzero(~np.isnan(yaw))
    if idx.size == 0:
        return []
    legs: list[tuple[int, int]] = []
    hi = lo = start = extreme = int(idx[0])
    direction = 0
    for i in idx[1:]:
        y = yaw[i]
        if direction == 0:
            if y > yaw[hi]:
                hi = int(i)
            if y < yaw[lo]:
                lo = int(i)
            if yaw[hi] - yaw[lo] >= reversal:
                direction = 1 if hi > lo else -1
                start, extreme = (lo, hi) if direction > 0 else (hi, lo)
        elif direction * (y - yaw[extreme]) >= 0:
            extreme = int(i)
        elif direction * (yaw[extreme] - y) >= reversal:
            legs.append((start, extreme))
            start, extreme, direction = extreme, int(i), -direction
    if direction != 0:
        legs.append((start, extreme))
    return legs


def detect_spins(yaw: FloatArray, fps: float, *, min_degrees: float, reversal_degrees: float,
                 min_rate_dps: float) -> list[Spin]:
    """The spins in an unwrapped yaw series (T,), in order. A leg's start and end are moved in to where
    the rotation really runs: the last sample still within a twelfth of the leg (at most 15°) of the
    start's yaw, and the first within that of the end's."""
    spins = []
    for start, end in _legs(yaw, reversal_degrees):
        total = float(yaw[end] - yaw[start])
        if abs(total) < min_degrees:
            continue
        margin = min(15.0, abs(total) / 12.0)
        seg = np.arange(start, end + 1)
        ok = ~np.isnan(yaw[seg])
        seg = seg[ok]
        near_start = seg[np.abs(yaw[seg] - yaw[start]) <= margin]
        near_end = seg[np.abs(yaw[seg] - yaw[end]) <= margin]
        s, e = int(near_start.max()), int(near_end.min())
        if e <= s:
            s, e = start, end
        duration = (e - s) / fps
        if duration > 0 and abs(total) / duration < min_rate_dps:
            continue
        spins.append(Spin(start=s, end=e, measured_degrees=round(total, 1),
                          degrees=int(180 * round(abs(total) / 180.0))))
    return spins
