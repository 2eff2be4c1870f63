"""Test footage made from the shared runner video with OpenCV: the runner composited into other frames
at known sizes and positions, as many times as a test needs, so that every test knows where each
person is (the truth comes from MediaPipe's landmarks in ../shared/reference).

A runner is pasted as the rectangle around her body (MediaPipe's landmarks, padded) cut from her own
frame, so each copy brings a little of the track behind her; a copy in front hides whatever lies
behind its rectangle. The background is the empty right part of the runner's first frame (the hall
and its track), stretched to the canvas, the same in every frame.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from jobs.sample_media import shared_dir

RUNNER = shared_dir() / "media" / "runner_1080p.mp4"
REFERENCE = shared_dir() / "reference" / "runner_1080p.mediapipe.static.json"
RUNNER_FRAMES = 180
PAD = 0.08  # of the body height, around the landmarks' box


@dataclass(frozen=True)
class RunnerCut:
    """One frame's runner: the padded patch and where her body is inside it (pixels of the patch)."""

    patch: np.ndarray
    body: np.ndarray  # x0, y0, x1, y1


@functools.lru_cache(maxsize=1)
def runner_cuts() -> tuple[RunnerCut, ...]:
    ref = json.loads(REFERENCE.read_text())
    cap = cv2.VideoCapture(str(RUNNER))
    cuts = []
    for frame in ref["frames"]:
        ok, image = cap.read()
        assert ok
        h, w = image.shape[:2]
        pts = np.array(frame["landmarks"])[:, :2] * [w, h]
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        pad = PAD * (y1 - y0)
        bx0, by0 = int(max(0, x0 - pad)), int(max(0, y0 - 1.5 * pad))
        bx1, by1 = int(min(w, x1 + pad)), int(min(h, y1 + pad))
        cuts.append(RunnerCut(image[by0:by1, bx0:bx1].copy(), np.array([x0 - bx0, y0 - by0, x1 - bx0, y1 - by0])))
    cap.release()
    return tuple(cuts)


@functools.lru_cache(maxsize=4)
def background(width: int, height: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(RUNNER))
    ok, image = cap.read()
    cap.release()
    assert ok
    return cv2.resize(image[:, 1000:], (width, height), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Placement:
    """A runner in one frame: which of her frames, her body's centre and height on the canvas (pixels),
    and an optional colour change (another person's clothes: BGR gains)."""

    runner_frame: int
    cx: float
    cy: float
    height: float
    tint: tuple[float, float, float] | None = None


def paste(canvas: np.ndarray, p: Placement) -> np.ndarray:
    """Paste one runner; returns her body box on the canvas ``[x0, y0, x1, y1]``."""
    cut = runner_cuts()[p.runner_frame % RUNNER_FRAMES]
    body_h = cut.body[3] - cut.body[1]
    s = p.height / body_h
    patch = cv2.resize(cut.patch, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if p.tint is not None:
        patch = np.clip(patch.astype(np.float32) * np.array(p.tint, np.float32) + 25.0 * np.array(p.tint), 0, 255)
        patch = patch.astype(np.uint8)
    body = cut.body * s
    ox = int(round(p.cx - (body[0] + body[2]) / 2))
    oy = int(round(p.cy - (body[1] + body[3]) / 2))
    h, w = canvas.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(0, ox), max(0, oy), min(w, ox + pw), min(h, oy + ph)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = patch[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return body + [ox, oy, ox, oy]


Scene = Callable[[int], Sequence[Placement]]  # frame index -> runners, back to front


def write_video(path: Path, width: int, height: int, frames: int, scene: Scene,
                draw: Callable[[int, np.ndarray], None] | None = None, fps: float = 30.0) -> list[list[np.ndarray]]:
    """Write the scene as an mp4; returns each frame's body boxes (in the scene's order)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    boxes = []
    for t in range(frames):
        canvas = background(width, height).copy()
        boxes.append([paste(canvas, p) for p in scene(t)])
        if draw is not None:
            draw(t, canvas)
        writer.write(canvas)
    writer.release()
    return boxes


def write_image(path: Path, width: int, height: int, placements: Sequence[Placement]) -> list[np.ndarray]:
    canvas = background(width, height).copy()
    boxes = [paste(canvas, p) for p in placements]
    cv2.imwrite(str(path), canvas)
    return boxes


def found(people: Sequence[dict], box: np.ndarray, min_iou: float = 0.3) -> dict | None:
    """The person of a result frame whose box overlaps the body box best (at least ``min_iou``)."""
    best, best_iou = None, min_iou
    for person in people:
        a = np.asarray(person["bbox"], dtype=float)
        ix = max(0.0, min(a[2], box[2]) - max(a[0], box[0]))
        iy = max(0.0, min(a[3], box[3]) - max(a[1], box[1]))
        inter = ix * iy
        union = (a[2] - a[0]) * (a[3] - a[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
        iou = inter / union if union > 0 else 0.0
        if iou >= best_iou:
            best, best_iou = person, iou
    return best
