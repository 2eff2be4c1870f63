"""Made-up but well-formed results and analyses for the browser tests: a stick figure per track over
the 5-frame 720p clip, whose knees and elbows bend a little more each frame (so angle curves move)."""

from __future__ import annotations

from typing import Any

from worker.pipeline.io.keypoints import KEYPOINT_NAMES, SCHEMA, SKELETON

WIDTH, HEIGHT, FPS = 1280, 720, 30.0
#: a standing person, metres, hip-centred, y down (x, y, z) for the left side; the right mirrors x
_LEFT = {
    "nose": (0.0, -0.62, -0.1), "eye_inner": (0.015, -0.65, -0.09), "eye": (0.03, -0.65, -0.09),
    "eye_outer": (0.045, -0.65, -0.08), "ear": (0.075, -0.63, 0.0), "mouth": (0.025, -0.58, -0.09),
    "shoulder": (0.18, -0.45, 0.0), "elbow": (0.22, -0.2, 0.0), "wrist": (0.24, 0.02, -0.02),
    "pinky": (0.25, 0.1, -0.03), "index": (0.24, 0.11, -0.04), "thumb": (0.22, 0.07, -0.05),
    "hip": (0.1, 0.0, 0.0), "knee": (0.1, 0.42, -0.02), "ankle": (0.1, 0.82, 0.02),
    "heel": (0.1, 0.87, 0.06), "foot_index": (0.1, 0.9, -0.1),
}


def _point(name: str, bend: float) -> tuple[float, float, float]:
    side, _, base = name.partition("_")
    if side not in ("left", "right"):
        base, side = name, "left"
    x, y, z = _LEFT.get(base, _LEFT["nose"])
    if side == "right":
        x = -x
    if base in ("knee", "elbow"):
        z -= bend  # forward: the joint bends
    return x, y, z


def person(track_id: int, frame: int, centre_x: float) -> dict[str, Any]:
    bend = 0.05 + 0.04 * frame + 0.02 * track_id
    world = [list(_point(n, bend)) for n in KEYPOINT_NAMES]
    scale = 300.0
    keypoints = []
    for i, (x, y, z) in enumerate(world):
        visibility = 0.2 if KEYPOINT_NAMES[i].endswith("foot_index") else 0.95  # some faded joints
        keypoints.append([round(centre_x + x * scale, 2), round(360.0 + y * scale, 2), round(z * scale, 2),
                          visibility, 0.99])
    xs = [k[0] for k in keypoints]
    ys = [k[1] for k in keypoints]
    return {"track_id": track_id, "bbox": [min(xs), min(ys), max(xs), max(ys)], "score": 0.9,
            "keypoints": keypoints, "world": [[round(v, 4) for v in p] for p in world]}


def result_document(frames: int = 5, tracks: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """A result@1 document over the 5-frame 720p clip: one stick figure per track."""
    return {
        "schema": SCHEMA,
        "video": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "frames": frames, "duration_s": frames / FPS,
                  "rotation": 0, "skipped_frames": 0},
        "model": {"name": "browser-test", "backend": "test", "device": "cpu", "weights_sha256": "-"},
        "keypoint_names": list(KEYPOINT_NAMES),
        "skeleton": [list(e) for e in SKELETON],
        "frames": [{"index": i, "time_s": round(i / FPS, 6),
                    "people": [person(t, i, 400.0 + 480.0 * k) for k, t in enumerate(tracks)]}
                   for i in range(frames)],
        "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0},
    }
