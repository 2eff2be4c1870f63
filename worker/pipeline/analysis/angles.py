"""Joint and segment angles: one table (:data:`ANGLES`) names each angle, its keypoints and its
convention; the code below computes them from it and docs/analysis.md is checked against it
(tests/analysis/test_docs.py), so the two cannot drift apart.

Each angle exists twice: ``<name>`` from the world landmarks (3D, metres, y down) and ``<name>_2d`` from
the image landmarks (pixels, y down), except where the table says otherwise. All in degrees.

Kinds:

* ``flexion``: 180° minus the angle at the middle point of three (0 = the three in a straight line);
  ``angle``: the angle at the middle point itself; ``ankle``: the angle at the middle point minus 90°
  (0 = foot square to the shank, positive = plantarflexion). Always in [0, 180] (ankle: [-90, 90]),
  so they never wrap; unsigned, because three points alone do not say to which side a joint bends.
* ``vertical``: the angle between the segment from the first to the second point and straight up
  (world: -y; image: up the picture), in [0, 180]; 0 = upright.
* ``segment``: the segment from the first point to the second against the horizontal. 3D: its
  elevation above the horizontal plane (x-z), in [-90, 90], positive when the second point is higher.
  2D: its direction in the picture, counter-clockwise from "pointing right", unwrapped over time so it
  is continuous (it may leave [-180, 180] on a body that turns over).

Points are keypoint names (worker/pipeline/io/keypoints.py) or a midpoint ``"a+b"`` of two of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from worker.pipeline.io.keypoints import KEYPOINT_NAMES

FloatArray = NDArray[np.float64]

_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


@dataclass(frozen=True)
class AngleDef:
    name: str
    kind: str  # flexion | angle | ankle | vertical | segment
    points: tuple[str, ...]
    zero: str
    positive: str


def _sides(name: str, kind: str, points: tuple[str, ...], zero: str, positive: str) -> tuple[AngleDef, ...]:
    return tuple(
        AngleDef(name.format(side=side), kind, tuple(p.format(side=side) for p in points), zero, positive)
        for side in ("left", "right")
    )


#: Every angle the analysis reports (3D name; the image one adds ``_2d``), written once.
ANGLES: tuple[AngleDef, ...] = (
    *_sides("{side}_knee", "flexion", ("{side}_hip", "{side}_knee", "{side}_ankle"),
            "leg straight", "knee bent (either way)"),
    *_sides("{side}_hip", "flexion", ("{side}_shoulder", "{side}_hip", "{side}_knee"),
            "thigh in line with the trunk", "thigh away from the trunk's line (flexed or extended)"),
    *_sides("{side}_ankle", "ankle", ("{side}_knee", "{side}_ankle", "{side}_foot_index"),
            "foot square to the shank", "plantarflexion (toes away from the shin); negative: dorsiflexion"),
    *_sides("{side}_elbow", "flexion", ("{side}_shoulder", "{side}_elbow", "{side}_wrist"),
            "arm straight", "elbow bent"),
    *_sides("{side}_shoulder", "angle", ("{side}_hip", "{side}_shoulder", "{side}_elbow"),
            "arm down along the trunk", "arm raised away from the trunk (180: overhead)"),
    AngleDef("neck", "flexion", ("left_hip+right_hip", "left_shoulder+right_shoulder", "left_ear+right_ear"),
             "head in line with the trunk", "head tilted away from the trunk's line (any direction)"),
    AngleDef("trunk_lean", "vertical", ("left_hip+right_hip", "left_shoulder+right_shoulder"),
             "trunk upright (hips below shoulders)", "leaning (any direction); 90: horizontal"),
    *_sides("{side}_thigh", "segment", ("{side}_hip", "{side}_knee"),
            "thigh horizontal", "3D: knee above hip; 2D: counter-clockwise in the picture"),
    *_sides("{side}_shank", "segment", ("{side}_knee", "{side}_ankle"),
            "shank horizontal", "3D: ankle above knee; 2D: counter-clockwise in the picture"),
    AngleDef("trunk", "segment", ("left_hip+right_hip", "left_shoulder+right_shoulder"),
             "trunk horizontal", "3D: shoulders above hips; 2D: counter-clockwise in the picture"),
    *_sides("{side}_arm", "segment", ("{side}_shoulder", "{side}_elbow"),
            "upper arm horizontal", "3D: elbow above shoulder; 2D: counter-clockwise in the picture"),
    *_sides("{side}_forearm", "segment", ("{side}_elbow", "{side}_wrist"),
            "forearm horizontal", "3D: wrist above elbow; 2D: counter-clockwise in the picture"),
    AngleDef("board", "segment", ("left_heel+left_foot_index", "right_heel+right_foot_index"),
             "feet level (board line horizontal)",
             "3D: right foot above left; 2D: counter-clockwise in the picture"),
)


def angle_names() -> list[str]:
    """Every series name, 3D then 2D for each angle of the table."""
    return [n for a in ANGLES for n in (a.name, f"{a.name}_2d")]


def point_indexes(point: str) -> tuple[int, ...]:
    """The keypoint indexes a table point averages (one, or two for ``"a+b"``)."""
    return tuple(_INDEX[p] for p in point.split("+"))


def used_keypoints() -> tuple[int, ...]:
    """Indexes of every keypoint some angle uses (the only ones worth cleaning)."""
    return tuple(sorted({i for a in ANGLES for p in a.points for i in point_indexes(p)}))


def _point(coords: FloatArray, point: str) -> FloatArray:
    """(T, D) positions of a table point from (T, 33, D) coordinates."""
    idx = point_indexes(point)
    return coords[:, idx[0]] if len(idx) == 1 else coords[:, list(idx)].mean(axis=1)


def _angle_between(u: FloatArray, v: FloatArray) -> FloatArray:
    """Unsigned angle in degrees between vectors (T, D), stable near 0 and 180."""
    dot = np.sum(u * v, axis=1)
    return np.asarray(np.degrees(np.arctan2(_cross_norm(u, v), dot)), dtype=np.float64)


def _cross_norm(u: FloatArray, v: FloatArray) -> FloatArray:
    """|u × v| for vectors (T, 2) or (T, 3)."""
    if u.shape[1] == 2:
        return np.asarray(np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]), dtype=np.float64)
    return np.asarray(np.linalg.norm(np.cross(u, v), axis=1), dtype=np.float64)


def unwrap_degrees(series: FloatArray) -> FloatArray:
    """``series`` (T,) in degrees made continuous (no 360° jumps) over its non-NaN samples; NaN stays."""
    out = series.copy()
    valid = ~np.isnan(series)
    if valid.any():
        out[valid] = np.unwrap(series[valid], period=360.0)
    return out


def compute(angle: AngleDef, coords: FloatArray) -> FloatArray:
    """One angle per frame (T,) from coordinates (T, 33, D): D = 3 (world) or 2 (image, y down)."""
    pts = [_point(coords, p) for p in angle.points]
    dims = coords.shape[2]
    if angle.kind in ("flexion", "angle", "ankle"):
        inner = _angle_between(pts[0] - pts[1], pts[2] - pts[1])
        return {"flexion": 180.0 - inner, "angle": inner, "ankle": inner - 90.0}[angle.kind]
    vector = pts[1] - pts[0]
    if angle.kind == "vertical":
        up = np.zeros(dims)
        up[1] = -1.0
        return _angle_between(vector, np.broadcast_to(up, vector.shape))
    if angle.kind == "segment":
        if dims == 3:
            return np.degrees(np.arctan2(-vector[:, 1], np.hypot(vector[:, 0], vector[:, 2])))
        return unwrap_degrees(np.degrees(np.arctan2(-vector[:, 1], vector[:, 0])))
    raise ValueError(f"unknown angle kind {angle.kind!r}")


def compute_all(world: FloatArray, image: FloatArray) -> dict[str, FloatArray]:
    """Every series of :func:`angle_names` from world (T, 33, 3) and image (T, 33, 2) coordinates."""
    out: dict[str, FloatArray] = {}
    for angle in ANGLES:
        out[angle.name] = compute(angle, world)
        out[f"{angle.name}_2d"] = compute(angle, image)
    return out


def angular_velocity(series: FloatArray, fps: float) -> FloatArray:
    """Degrees per second (T,), central differences (one-sided at the ends and next to NaN: NaN)."""
    out = np.full(series.shape, np.nan)
    if series.shape[0] >= 2:
        grad = np.gradient(series) * fps
        out[:] = grad
    return out
