"""What a person looks like, cheaply: a colour histogram of the torso, to tell two people apart when
their positions alone cannot (a crossing, a person coming back after being hidden).

The torso is the quadrilateral of the shoulders and hips (landmarks 11, 12, 24, 23), where the
clothes are and the background is least; it is cut out at no more than 32 px a side and counted in a
4 x 4 x 4 BGR histogram (hue alone is noise on dark clothes). Two histograms compare by their
Bhattacharyya distance: 0 for identical colours, 1 for nothing in common.
"""

from __future__ import annotations

import cv2
import numpy as np

TORSO = (11, 12, 24, 23)
BINS = 4
SIDE = 32
#: Torsos with less area than this (pixels) are too small to describe.
MIN_AREA = 64.0


def torso_histogram(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray | None:
    """The normalised ``BINS**3`` histogram of the torso of ``keypoints`` (33, >=2 pixels) in a BGR
    ``image``; None when the torso is too small or outside the frame."""
    quad = np.asarray(keypoints, dtype=np.float64)[list(TORSO), :2]
    if not np.isfinite(quad).all():
        return None
    h, w = image.shape[:2]
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 4 or y1 - y0 < 4 or cv2.contourArea(quad.astype(np.float32)) < MIN_AREA:
        return None
    scale = min(1.0, SIDE / max(x1 - x0, y1 - y0))
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    roi = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(mask, np.round((quad - [x0, y0]) * scale).astype(np.int32), 255)
    if not mask.any():
        return None
    hist = cv2.calcHist([roi], [0, 1, 2], mask, [BINS] * 3, [0, 256] * 3).ravel()
    total = float(hist.sum())
    if total <= 0:
        return None
    normalised: np.ndarray = hist / total
    return normalised


def distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Bhattacharyya distance of two histograms, None when either is unknown."""
    if a is None or b is None:
        return None
    bc = float(np.sqrt(a * b).sum())
    return float(np.sqrt(max(0.0, 1.0 - min(1.0, bc))))


def blend(model: np.ndarray | None, sample: np.ndarray | None, rate: float) -> np.ndarray | None:
    """A track's appearance after one more sample (exponential average)."""
    if sample is None:
        return model
    if model is None:
        return sample
    mixed: np.ndarray = (1.0 - rate) * model + rate * sample
    out: np.ndarray = mixed / mixed.sum()
    return out
