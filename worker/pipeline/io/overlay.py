"""``--overlay OUT.mp4``: the input video with every person's skeleton, box and track id drawn on it.

Meant for a human checking a result at a glance, so it favours legibility: one colour per track id,
bones drawn only between keypoints the model thinks are visible, line widths scaled to the frame.
Frames are drawn as the pipeline produces them (no second decode) and written at the container's
frame rate, so the overlay lines up with the original when played side by side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from worker.pipeline.io.result_document import SKELETON
from worker.pipeline.tracking.tracker import Person

#: Keypoints less visible than this are not drawn (they are guesses behind the body or off-frame).
MIN_VISIBILITY = 0.5
_PALETTE = (
    (66, 135, 245), (245, 66, 90), (60, 200, 90), (240, 200, 40), (190, 80, 230), (40, 210, 220),
    (250, 140, 40), (150, 150, 150),
)  # fmt: skip


def track_colour(track_id: int) -> tuple[int, int, int]:
    return _PALETTE[track_id % len(_PALETTE)]


def draw_people(image: np.ndarray, people: Sequence[Person]) -> np.ndarray:
    """Draw onto ``image`` (BGR, modified in place and returned)."""
    scale = max(image.shape[:2]) / 1000.0
    thickness = max(1, int(round(3 * scale)))
    radius = max(2, int(round(4 * scale)))
    for person in people:
        colour = track_colour(person.track_id)
        pts = person.keypoints[:, :2]
        visible = person.keypoints[:, 3] >= MIN_VISIBILITY
        ipts = np.round(pts).astype(np.int32)
        for a, b in SKELETON:
            if visible[a] and visible[b]:
                cv2.line(image, tuple(ipts[a]), tuple(ipts[b]), colour, thickness, cv2.LINE_AA)
        for p in ipts[visible]:
            cv2.circle(image, tuple(p), radius, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(image, tuple(p), radius, colour, max(1, thickness // 2), cv2.LINE_AA)
        x0, y0, x1, y1 = (int(round(v)) for v in person.bbox)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, max(1, thickness // 2))
        label = f"id {person.track_id}"
        font_scale = 0.8 * max(scale, 0.5)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        ty = max(y0, th + base + 2)
        cv2.rectangle(image, (x0, ty - th - base - 2), (x0 + tw + 4, ty), colour, -1)
        cv2.putText(image, label, (x0 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)  # fmt: skip
    return image


class OverlayWriter:
    """Writes annotated frames to an MP4 (``mp4v``, which every OpenCV build can encode)."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float | None) -> None:
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter.fourcc(*"mp4v"), fps or 30.0, (width, height))
        if not self._writer.isOpened():
            raise OSError(f"cannot write the overlay video {self.path}")

    def write(self, image: np.ndarray, people: Sequence[Person]) -> None:
        self._writer.write(draw_people(image.copy(), people))

    def close(self) -> None:
        self._writer.release()
