"""A pipeline that makes up realistic pose data, fast, without reading a video.

``POSE_PIPELINE=bench.synthetic_pipeline:create`` (or ``--pipeline``); job params ``frames``, ``people``
and ``fps`` (bench/synthetic_pipeline_params.py). The video path is never opened. Every frame has
``people`` persons, each one track walking to and fro across a 1920×1080 frame, with what the pose
pipeline writes per person: 33 keypoints × [x_px, y_px, z, visibility, presence], 33 world points ×
[x_m, y_m, z_m] (a standing skeleton whose arms and legs swing), a bbox around the keypoints and a
score, rounded as worker/pipeline/io/result_document.py rounds them. The output is a valid result@1
document (tests/test_synthetic_pipeline.py validates it against web/result_document.py's ``Result``),
so the service around the pipeline (the child, the result's way into PostgreSQL, the API) can be
measured with long videos in seconds. Deterministic: the same params give the same document.

It follows the pipeline contract (worker/pipeline/contract.py) as it is: the whole document is
returned at the end, so memory grows with ``frames × people`` (about 15 KB of Python objects per
person-frame: 100,000 frames of one person take 1.7 GB).

    .venv/bin/python -m bench.synthetic_pipeline [--frames 100000] [--people 1] [--runs 3]

prints the frames/s of the pipeline call and of writing its document as the child does (json.dump).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench.synthetic_pipeline_params import PARAMS
from worker.pipeline.contract import Pipeline, ProgressFn
from worker.pipeline.io.keypoints import KEYPOINT_NAMES, SCHEMA, SKELETON

WIDTH, HEIGHT = 1920, 1080
SEED = 20261202

#: A person standing, in metres, hip-centred, y down, z towards the camera negative: the left side
#: of each pair (the right one mirrors x) and how far each point swings forward (z) in a stride.
_LEFT = {  # name: (x, y, z, swing)
    "eye_inner": (0.015, -0.65, -0.09, 0.0), "eye": (0.03, -0.65, -0.09, 0.0),
    "eye_outer": (0.045, -0.65, -0.08, 0.0), "ear": (0.075, -0.63, 0.0, 0.0), "mouth": (0.025, -0.58, -0.09, 0.0),
    "shoulder": (0.18, -0.45, 0.0, 0.02), "elbow": (0.22, -0.2, 0.0, 0.12), "wrist": (0.24, 0.02, -0.02, 0.25),
    "pinky": (0.25, 0.1, -0.03, 0.28), "index": (0.24, 0.11, -0.04, 0.28), "thumb": (0.22, 0.07, -0.05, 0.27),
    "hip": (0.1, 0.0, 0.0, 0.0), "knee": (0.1, 0.42, -0.02, -0.18), "ankle": (0.1, 0.82, 0.02, -0.3),
    "heel": (0.1, 0.87, 0.06, -0.32), "foot_index": (0.1, 0.9, -0.1, -0.32),
}  # fmt: skip


def _template() -> tuple[np.ndarray, np.ndarray]:
    """(33, 3) points and (33,) swings in KEYPOINT_NAMES order; arms and legs of a side swing oppositely,
    and the right side opposite to the left."""
    points, swing = np.zeros((len(KEYPOINT_NAMES), 3)), np.zeros(len(KEYPOINT_NAMES))
    for k, name in enumerate(KEYPOINT_NAMES):
        if name == "nose":
            points[k], swing[k] = (0.0, -0.62, -0.1), 0.0
            continue
        side, _, part = name.partition("_")
        if name.startswith("mouth_"):
            side, part = name.split("_")[1], "mouth"
        x, y, z, s = _LEFT[part]
        sign = 1.0 if side == "left" else -1.0
        points[k], swing[k] = (sign * x, y, z), sign * s
    return points, swing


TEMPLATE, SWING = _template()


class SyntheticPipeline:
    """One instance per child; each call makes one video's document from its params alone."""

    def __call__(self, video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
        started = time.perf_counter()
        opts = PARAMS.validate(params)  # InvalidParams (a ValueError): pipeline_error, as for the pose pipeline
        n_frames, n_people, fps = opts["frames"], opts["people"], float(opts["fps"])
        rng = np.random.default_rng(SEED)
        tracks = _Tracks(rng, n_people)
        chunk = max(64, 4096 // max(n_people, 1))
        frames: list[dict[str, Any]] = []
        progress(0, n_frames)
        with _no_cyclic_gc():
            for first in range(0, n_frames, chunk):
                index = np.arange(first, min(first + chunk, n_frames))
                frames.extend(tracks.frames(index, fps, rng))
                progress(len(frames), n_frames)
        elapsed = time.perf_counter() - started
        return {
            "schema": SCHEMA,
            "video": {"width": WIDTH, "height": HEIGHT, "fps": fps, "frames": n_frames,
                      "duration_s": round(n_frames / fps, 6), "rotation": 0, "skipped_frames": 0},
            "model": {"name": "synthetic (bench.synthetic_pipeline)", "backend": "synthetic", "device": "cpu",
                      "weights_sha256": ""},
            "keypoint_names": list(KEYPOINT_NAMES),
            "skeleton": [list(bone) for bone in SKELETON],
            "frames": frames,
            "timings": {"decode_s": 0.0, "inference_s": round(elapsed, 4), "total_s": round(elapsed, 4)},
        }


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Millions of new lists make CPython's cycle collector walk the growing document again and again
    (it took three quarters of the time). The document has no cycles, so the collector is paused while
    it is made, and what was made is moved out of its sight (gc.freeze) before it resumes; reference
    counting still frees the document once the child has written it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class _Tracks:
    """Each person's fixed traits: where it walks, how fast, how big it looks."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.ids = [int(i) + 1 for i in range(n)]
        self.scale = rng.uniform(280.0, 420.0, n)  # pixels per metre: 1.7 m is 480..710 px tall
        self.centre_x = rng.uniform(0.3, 0.7, n) * WIDTH
        self.reach_x = rng.uniform(0.05, 0.2, n) * WIDTH  # walks centre ± reach
        self.walk_hz = rng.uniform(0.02, 0.1, n)  # to and fro every 10..50 s
        self.stride_hz = rng.uniform(0.8, 1.1, n)
        self.offset = rng.uniform(0.0, 2 * np.pi, n)
        self.base_y = rng.uniform(0.45, 0.6, n) * HEIGHT

    def frames(self, index: np.ndarray, fps: float, rng: np.random.Generator) -> list[dict[str, Any]]:
        n, p = len(index), len(self.ids)
        t = index / fps
        stride = np.sin(2 * np.pi * self.stride_hz * t[:, None] + self.offset)  # (n, p)
        world = np.broadcast_to(TEMPLATE, (n, p, *TEMPLATE.shape)).copy()  # (n, p, 33, 3)
        world[..., 2] += SWING * stride[..., None]
        world += rng.normal(0.0, 0.004, world.shape)
        cx = self.centre_x + self.reach_x * np.sin(2 * np.pi * self.walk_hz * t[:, None] + self.offset)
        cy = self.base_y + 6.0 * np.abs(stride)  # a bob of the hips with each step
        scale = self.scale[None, :, None]
        image = np.empty((n, p, len(KEYPOINT_NAMES), 5))
        image[..., 0] = cx[..., None] + scale * world[..., 0]
        image[..., 1] = cy[..., None] + scale * world[..., 1]
        image[..., 2] = scale * world[..., 2]  # depth in x's pixel scale, as the pose pipeline writes it
        image[..., :3] += rng.normal(0.0, 1.0, (n, p, len(KEYPOINT_NAMES), 3))
        image[..., 3:] = np.clip(rng.normal((0.93, 0.98), (0.04, 0.01), (n, p, len(KEYPOINT_NAMES), 2)), 0.0, 1.0)
        xy = image[..., :2]
        bbox = np.concatenate([xy.min(axis=2) - 12.0, xy.max(axis=2) + 12.0], axis=-1)  # (n, p, 4)
        score = np.clip(0.9 + 0.04 * stride + rng.normal(0.0, 0.02, (n, p)), 0.0, 1.0)
        image[..., :3] = image[..., :3].round(2)
        image[..., 3:] = image[..., 3:].round(4)
        keypoints, points = image.tolist(), world.round(4).tolist()
        boxes, scores = bbox.round(2).tolist(), score.round(4).tolist()
        times, first, ids = t.round(6).tolist(), int(index[0]), self.ids
        return [
            {"index": first + f, "time_s": times[f], "people": [
                {"track_id": ids[j], "bbox": boxes[f][j], "score": scores[f][j], "keypoints": keypoints[f][j],
                 "world": points[f][j]} for j in range(p)]}
            for f in range(n)
        ]


def create() -> Pipeline:
    return SyntheticPipeline()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--people", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="timed runs (median reported)")
    args = ap.parse_args(argv)
    pipeline = create()
    params = {"frames": args.frames, "people": args.people}
    made, written = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        document = pipeline("/nonexistent.mp4", params, lambda done, total: None)
        made.append(args.frames / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        with open(os.devnull, "w", encoding="utf-8") as fh:  # as worker/pipeline/child.py writes it
            json.dump(document, fh, separators=(",", ":"), allow_nan=False)
        written.append(args.frames / (time.perf_counter() - t0))
        del document
    print(f"synthetic pipeline, {args.frames} frames x {args.people} people: "
          f"{statistics.median(made):,.0f} frames/s made, {statistics.median(written):,.0f} frames/s written as "
          f"JSON (json.dump, like the child); median of {args.runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
