"""Rotated person regions: where the landmark model looks.

A region is one row ``[cx, cy, size, angle]`` in pixels of the upright frame: a square of side ``size``
centred on the hip centre, rotated by ``angle`` radians (clockwise on screen, because y points down) so
that the body stands upright in the crop. Keeping regions in pixels, rather than in MediaPipe's
per-axis normalised coordinates, makes squareness and rotation exact on non-square frames while giving
the same numbers as MediaPipe's ``AlignmentPointsRectsCalculator`` followed by
``RectTransformationCalculator`` (square_long, scale 1.25).

Both sources of regions use two alignment points: the detector's keypoints 0 (mid-hip) and 1 (a point
whose distance encodes body size and whose direction encodes rotation), and the landmark model's two
auxiliary landmarks with the same meaning, which is what lets a track follow a person without the
detector.
"""

from __future__ import annotations

import numpy as np

#: Margin around the body that the landmark model was trained with (pose_detection_to_roi /
#: pose_landmarks_to_roi graphs).
REGION_SCALE = 1.25
#: The vector from hip centre to the scale point should point straight up in the crop.
TARGET_ANGLE = np.pi / 2

CX, CY, SIZE, ANGLE = range(4)


def normalize_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap to [-pi, pi) the way MediaPipe does, so rotations compare equal to its own."""
    return angle - 2 * np.pi * np.floor((angle + np.pi) / (2 * np.pi))


def regions_from_points(center: np.ndarray, scale_point: np.ndarray, scale: float = REGION_SCALE) -> np.ndarray:
    """Regions ``(N, 4)`` from alignment points ``(N, 2)`` each, in pixels.

    The size is twice the centre-to-scale-point distance (the model encodes the half extent of the body),
    enlarged by ``scale``; the angle turns the centre-to-scale-point vector to point up.
    """
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    scale_point = np.asarray(scale_point, dtype=np.float64).reshape(-1, 2)
    delta = scale_point - center
    size = 2.0 * np.hypot(delta[:, 0], delta[:, 1]) * scale
    angle = normalize_angle(TARGET_ANGLE - np.arctan2(-delta[:, 1], delta[:, 0]))
    return np.stack([center[:, 0], center[:, 1], size, angle], axis=1)


def bounding_boxes(points: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Tight ``[x0, y0, x1, y1]`` around ``(N, K, >=2)`` points, clipped to the frame when its size is given."""
    points = np.asarray(points, dtype=np.float64)
    boxes = np.concatenate([points[..., :2].min(axis=1), points[..., :2].max(axis=1)], axis=1)
    if width is not None and height is not None:
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` of ``[x0, y0, x1, y1]`` boxes; empty boxes overlap nothing."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])).clip(0)
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)
