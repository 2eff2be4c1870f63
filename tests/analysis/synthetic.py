"""A synthetic BlazePose skeleton moved through known motions, as result@1 documents.

The body is built in its own frame (metres, hip-centred, y down, facing -z, its left at +x), posed by
joint rotations, turned about the vertical by a yaw (positive: counter-clockwise seen from above, the
athlete turning to their left; rotation.py's convention) and seen by an orthographic camera (pixels =
centre + scale × world x, y), so image and world angles are the same when the motion is in the picture's
plane. Noise, low-visibility dropouts and missing frames are added on request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from worker.pipeline.io.keypoints import KEYPOINT_NAMES, SCHEMA, SKELETON

FloatArray = NDArray[np.float64]
I = {name: i for i, name in enumerate(KEYPOINT_NAMES)}  # noqa: E741

#: Standing pose, body frame (x: the body's left, y: down, z: behind).
STANDING: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, -0.66, -0.10), "left_eye_inner": (0.02, -0.69, -0.09), "left_eye": (0.035, -0.69, -0.085),
    "left_eye_outer": (0.05, -0.69, -0.08), "right_eye_inner": (-0.02, -0.69, -0.09),
    "right_eye": (-0.035, -0.69, -0.085), "right_eye_outer": (-0.05, -0.69, -0.08),
    "left_ear": (0.075, -0.67, 0.0), "right_ear": (-0.075, -0.67, 0.0), "mouth_left": (0.025, -0.62, -0.09),
    "mouth_right": (-0.025, -0.62, -0.09), "left_shoulder": (0.18, -0.50, 0.0),
    "right_shoulder": (-0.18, -0.50, 0.0), "left_elbow": (0.20, -0.22, 0.0), "right_elbow": (-0.20, -0.22, 0.0),
    "left_wrist": (0.20, 0.04, 0.0), "right_wrist": (-0.20, 0.04, 0.0), "left_pinky": (0.21, 0.12, 0.0),
    "right_pinky": (-0.21, 0.12, 0.0), "left_index": (0.20, 0.13, 0.0), "right_index": (-0.20, 0.13, 0.0),
    "left_thumb": (0.19, 0.10, -0.02), "right_thumb": (-0.19, 0.10, -0.02), "left_hip": (0.10, 0.0, 0.0),
    "right_hip": (-0.10, 0.0, 0.0), "left_knee": (0.10, 0.45, 0.0), "right_knee": (-0.10, 0.45, 0.0),
    "left_ankle": (0.10, 0.90, 0.0), "right_ankle": (-0.10, 0.90, 0.0), "left_heel": (0.10, 0.95, 0.05),
    "right_heel": (-0.10, 0.95, 0.05), "left_foot_index": (0.10, 0.95, -0.15),
    "right_foot_index": (-0.10, 0.95, -0.15),
}  # fmt: skip

UPPER = [n for n in KEYPOINT_NAMES if STANDING[n][1] < -0.01 or n.split("_")[-1] in
         ("elbow", "wrist", "pinky", "index", "thumb")]


def standing() -> FloatArray:
    return np.array([STANDING[n] for n in KEYPOINT_NAMES], dtype=np.float64)


def rot_x(deg: float) -> FloatArray:
    """Rotation about the body's left-right axis; positive takes a point below the pivot backwards
    (+z) and a point above it forwards (-z)."""
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def rot_yaw(deg: float) -> FloatArray:
    """Turn about the vertical, counter-clockwise seen from above: the left shoulder (+x) goes to +z."""
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])


def rotate(pose: FloatArray, names: Sequence[str], pivot: str, matrix: FloatArray) -> None:
    """Rotate the named points of ``pose`` (in place) about the point ``pivot``."""
    idx = [I[n] for n in names]
    centre = pose[I[pivot]].copy()
    pose[idx] = (pose[idx] - centre) @ matrix.T + centre


def pose(*, knee: float = 0.0, lean: float = 0.0, arm: float = 0.0, yaw: float = 0.0) -> FloatArray:
    """A posed skeleton (33, 3), hip-centred: both knees flexed by ``knee`` degrees (feet go back), the
    upper body leaning forwards by ``lean`` about the hip centre, the left arm (straight) swung forwards
    and up by ``arm`` about the shoulder, then the whole body turned by ``yaw``."""
    p = standing()
    for side in ("left", "right"):
        rotate(p, [f"{side}_ankle", f"{side}_heel", f"{side}_foot_index"], f"{side}_knee", rot_x(knee))
    rotate(p, ["left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb"], "left_shoulder",
           rot_x(-arm))
    if lean:
        hip_centre = p[[I["left_hip"], I["right_hip"]]].mean(axis=0)
        idx = [I[n] for n in UPPER]
        p[idx] = (p[idx] - hip_centre) @ rot_x(lean).T + hip_centre
    return p @ rot_yaw(yaw).T


def document(world: FloatArray, *, fps: float, noise_m: float = 0.0, noise_px: float = 0.0,
             low_visibility: Sequence[tuple[int, int]] = (), missing: Sequence[int] = (),
             scale: float = 400.0, seed: int = 0, track_id: int = 1) -> dict[str, Any]:
    """A result@1 document of one person whose world landmarks per frame are ``world`` (T, 33, 3):
    Gaussian noise on world (metres) and image (pixels) coordinates, visibility 0.05 on the frames in
    the ``low_visibility`` [start, stop) ranges, and the person absent from the ``missing`` frames."""
    rng = np.random.default_rng(seed)
    t = world.shape[0]
    noisy_world = world + rng.normal(0.0, noise_m, world.shape) if noise_m else world
    image = np.empty((t, 33, 5))
    image[:, :, 0] = 960.0 + scale * world[:, :, 0]
    image[:, :, 1] = 540.0 + scale * world[:, :, 1]
    image[:, :, 2] = scale * world[:, :, 2]
    if noise_px:
        image[:, :, :2] += rng.normal(0.0, noise_px, (t, 33, 2))
    image[:, :, 3] = 0.99
    image[:, :, 4] = 0.99
    for start, stop in low_visibility:
        image[start:stop, :, 3] = 0.05
    gone = set(missing)
    frames = []
    for i in range(t):
        people = [] if i in gone else [{
            "track_id": track_id, "bbox": [0.0, 0.0, 1.0, 1.0], "score": 0.99,
            "keypoints": image[i].tolist(), "world": noisy_world[i].tolist()}]
        frames.append({"index": i, "time_s": i / fps, "people": people})
    return {"schema": SCHEMA,
            "video": {"width": 1920, "height": 1080, "fps": fps, "frames": t, "duration_s": t / fps,
                      "rotation": 0, "skipped_frames": 0},
            "model": {"name": "synthetic", "backend": "none", "device": "cpu", "weights_sha256": ""},
            "keypoint_names": list(KEYPOINT_NAMES), "skeleton": [list(e) for e in SKELETON],
            "frames": frames, "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0}}


def smooth_ramp(n: int, start: float, stop: float, hold: int = 0) -> FloatArray:
    """``n`` values from ``start`` to ``stop`` along a cosine ease (speed varying from 0 to a peak and
    back), ``hold`` frames of ``start`` before and of ``stop`` after."""
    u = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))
    ramp = start + (stop - start) * u
    return np.concatenate([np.full(hold, start), ramp, np.full(hold, stop)])
