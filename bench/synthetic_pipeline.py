"""A pipeline that makes up realistic pose data, fast, without reading a video.

``POSE_PIPELINE=bench.synthetic_pipeline:create`` (or ``--pipeline``); job params ``frames``, ``people``
and ``fps`` (bench/synthetic_pipeline_params.py). The video path is never opened. Every frame has
``people`` persons, each one track walking to and fro across a 1920×1080 frame, with what the pose
pipeline writes per person: 33 keypoints × [x_px, y_px, z, visibility, presence], 33 world points ×
[x_m, y_m, z_m] (a standing skeleton whose arms and legs swing), a bbox around the keypoints and a
score, rounded as worker/pipeline/io/result_document.py rounds them. The output is valid result@1
(tests/test_synthetic_pipeline.py validates it against web/result_document.py's ``Result``), so the
service around the pipeline (the child, the frames' way into PostgreSQL, the API) can be measured with
long videos in seconds.

It follows the pipeline contract (worker/pipeline/contract.py) in full: it streams (``emits_frames``:
each frame goes to ``emit_frame`` as it is made, so memory stays flat whatever the length) and it is
splittable (``probe`` and ``frame_range``). Deterministic per frame: frame i is the same whichever
call, or stretch of the video, makes it (its random numbers come from its block's own generator).

    .venv/bin/python -m bench.synthetic_pipeline [--frames 100000] [--people 1] [--runs 3]

prints the frames/s it makes (handed to a sink that drops them) and the frames/s through the child's
own interface (worker/pipeline/child.py ``run_one``: frames into the spool file as the worker reads
them, messages to a channel).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench.synthetic_pipeline_params import PARAMS
from worker.pipeline.contract import FrameSink, Pipeline, ProgressFn, VideoSpan
from worker.pipeline.io.keypoints import KEYPOINT_NAMES, SCHEMA, SKELETON

WIDTH, HEIGHT = 1920, 1080
SEED = 20261202
#: Frames made at a time, each block from its own generator (seeded by the block's number).
BLOCK_FRAMES = 256

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
    """One instance per child; each call makes one video's frames from its params alone.

    Streaming (``emits_frames``): each frame goes to ``emit_frame`` as it is made, a block of
    ``BLOCK_FRAMES`` frames at a time, so memory stays flat whatever the video's length; its
    ``keypoints`` (33 × 5), ``world`` (33 × 3) and ``bbox`` (4) are numpy float64 arrays, which the
    child's spool stores as they are (worker/frame_spool.py), and the rest plain Python numbers.
    Called without ``emit_frame`` it returns the whole document, numbers as lists.

    Splittable (contract.py): ``probe`` reads the length from the params, and ``frame_range`` makes
    only frames [first, stop) (stop None: to the end) with their absolute indexes and times, progress
    counting within the range; every frame is the same whichever
    range makes it, because its random numbers come from its block's own generator.
    """

    emits_frames = True

    def probe(self, video_path: str, params: dict[str, Any]) -> VideoSpan:
        opts = PARAMS.validate(params)
        return VideoSpan(frames=opts["frames"], fps=float(opts["fps"]))

    def __call__(
        self,
        video_path: str,
        params: dict[str, Any],
        progress: ProgressFn,
        emit_frame: FrameSink | None = None,
        frame_range: tuple[int, int | None] | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        opts = PARAMS.validate(params)  # InvalidParams (a ValueError): pipeline_error, as for the pose pipeline
        n_frames, n_people, fps = opts["frames"], opts["people"], float(opts["fps"])
        first, stop = frame_range if frame_range is not None else (0, None)
        stop = n_frames if stop is None else min(int(stop), n_frames)  # stop None: to the end
        if not 0 <= first <= stop:
            raise ValueError(f"frame_range {frame_range!r}: need 0 <= first <= stop")
        total = stop - first
        tracks = _Tracks(np.random.default_rng(SEED), n_people)
        frames: list[dict[str, Any]] = []
        done = 0
        progress(0, total)
        with contextlib.ExitStack() as stack:
            if emit_frame is None:
                stack.enter_context(_no_cyclic_gc())
            for block in range(first // BLOCK_FRAMES, -(-stop // BLOCK_FRAMES)):
                made = tracks.block(block, fps)
                lo, hi = max(first, made.first), min(stop, made.first + BLOCK_FRAMES)
                if emit_frame is not None:
                    for index in range(lo, hi):
                        emit_frame(made.frame(index))
                else:
                    frames.extend(made.frames_as_lists(lo, hi))
                done += hi - lo
                progress(done, total)
        elapsed = time.perf_counter() - started
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "video": {"width": WIDTH, "height": HEIGHT, "fps": fps, "frames": n_frames,
                      "duration_s": round(n_frames / fps, 6), "rotation": 0, "skipped_frames": 0},
            "model": {"name": "synthetic (bench.synthetic_pipeline)", "backend": "synthetic", "device": "cpu",
                      "weights_sha256": ""},
            "keypoint_names": list(KEYPOINT_NAMES),
            "skeleton": [list(bone) for bone in SKELETON],
            "timings": {"decode_s": 0.0, "inference_s": round(elapsed, 4), "total_s": round(elapsed, 4)},
        }
        if emit_frame is None:
            document["frames"] = frames
        return document


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Millions of new lists make CPython's cycle collector walk the growing document again and again
    (it took three quarters of the time). The document has no cycles, so the collector is paused while
    it is made, and what was made is moved out of its sight (gc.freeze) before it resumes; reference
    counting still frees the document once the child has written it. Only the whole-document call
    needs this: a streamed frame is gone before the next block."""
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

    def block(self, block: int, fps: float) -> _Block:
        """Frames [block × BLOCK_FRAMES, (block + 1) × BLOCK_FRAMES), always all of them, from the
        block's own generator: what a frame holds depends on its index alone."""
        rng = np.random.default_rng([SEED, block])
        k = len(KEYPOINT_NAMES)
        index = np.arange(block * BLOCK_FRAMES, (block + 1) * BLOCK_FRAMES)
        n, p = len(index), len(self.ids)
        t = index / fps
        stride = np.sin(2 * np.pi * self.stride_hz * t[:, None] + self.offset)  # (n, p)
        # uniform noise in [-1, 1) from random bytes (a tenth of the cost of normal draws), one (n, p, k)
        # plane per number, each number made in a contiguous plane of its own and interleaved at the end
        u = np.frombuffer(rng.bytes(8 * n * p * k + n * p), dtype=np.int8) * (1 / 128)
        noise, score_noise = u[:8 * n * p * k].reshape(8, n, p, k), u[8 * n * p * k:].reshape(n, p)
        swing = SWING * stride[..., None]  # (n, p, k): legs and arms forward and back
        wx = TEMPLATE[:, 0] + 0.007 * noise[0]  # ± 7 mm (about 4 mm standard deviation)
        wy = TEMPLATE[:, 1] + 0.007 * noise[1]
        wz = TEMPLATE[:, 2] + swing + 0.007 * noise[2]
        cx = self.centre_x + self.reach_x * np.sin(2 * np.pi * self.walk_hz * t[:, None] + self.offset)
        cy = self.base_y + 6.0 * np.abs(stride)  # a bob of the hips with each step
        scale = self.scale[None, :, None]
        x = cx[..., None] + scale * wx + 1.7 * noise[3]  # ± 1.7 px
        y = cy[..., None] + scale * wy + 1.7 * noise[4]
        z = scale * wz + 1.7 * noise[5]  # depth in x's pixel scale, as the pose pipeline writes it
        visibility = np.clip(0.93 + 0.07 * noise[6], 0.0, 1.0)
        presence = np.clip(0.98 + 0.017 * noise[7], 0.0, 1.0)
        bbox = np.stack([x.min(axis=2) - 12.0, y.min(axis=2) - 12.0, x.max(axis=2) + 12.0, y.max(axis=2) + 12.0],
                        axis=-1)  # (n, p, 4)
        score = np.clip(0.9 + 0.04 * stride + 0.035 * score_noise, 0.0, 1.0)
        image = np.stack([x.round(2), y.round(2), z.round(2), visibility.round(4), presence.round(4)], axis=-1)
        world = np.stack([wx, wy, wz], axis=-1).round(4)
        return _Block(int(index[0]), self.ids, t.round(6).tolist(), image, world, bbox.round(2),
                      score.round(4).tolist())


class _Block:
    """BLOCK_FRAMES frames' numbers, rounded as worker/pipeline/io/result_document.py rounds them."""

    def __init__(self, first: int, ids: list[int], times: list[float], keypoints: np.ndarray, world: np.ndarray,
                 bbox: np.ndarray, scores: list[list[float]]) -> None:
        self.first, self.ids, self.times = first, ids, times
        self.keypoints, self.world, self.bbox, self.scores = keypoints, world, bbox, scores

    def frame(self, index: int) -> dict[str, Any]:
        """A result@1 frame whose arrays are numpy views into the block (for emit_frame)."""
        f = index - self.first
        kp, world, bbox, scores = self.keypoints[f], self.world[f], self.bbox[f], self.scores[f]
        return {"index": index, "time_s": self.times[f], "people": [
            {"track_id": track, "bbox": bbox[j], "score": scores[j], "keypoints": kp[j], "world": world[j]}
            for j, track in enumerate(self.ids)]}

    def frames_as_lists(self, lo: int, hi: int) -> list[dict[str, Any]]:
        """Frames [lo, hi) as plain JSON values (for the whole document)."""
        a, b = lo - self.first, hi - self.first
        keypoints, points = self.keypoints[a:b].tolist(), self.world[a:b].tolist()
        boxes, ids = self.bbox[a:b].tolist(), self.ids
        return [
            {"index": lo + f, "time_s": self.times[a + f], "people": [
                {"track_id": ids[j], "bbox": boxes[f][j], "score": self.scores[a + f][j],
                 "keypoints": keypoints[f][j], "world": points[f][j]} for j in range(len(ids))]}
            for f in range(b - a)
        ]


def create() -> Pipeline:
    return SyntheticPipeline()


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from worker.child_protocol import JobRequest
    from worker.pipeline.child import Reporter, run_one

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--people", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="timed runs (median reported)")
    args = ap.parse_args(argv)
    pipeline = create()
    params = {"frames": args.frames, "people": args.people}
    made, through = [], []
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "wb") as channel:
        for _ in range(args.runs):
            t0 = time.perf_counter()
            pipeline("/nonexistent.mp4", params, lambda done, total: None, emit_frame=lambda frame: None)
            made.append(args.frames / (time.perf_counter() - t0))
            request = JobRequest(1, "/nonexistent.mp4", params, os.path.join(tmp, "result.json"))
            t0 = time.perf_counter()
            run_one(pipeline, request, Reporter(channel))
            through.append(args.frames / (time.perf_counter() - t0))
            spool = os.path.getsize(request.spool_path)
    print(f"synthetic pipeline, {args.frames} frames x {args.people} people: {statistics.median(made):,.0f} frames/s "
          f"made, {statistics.median(through):,.0f} frames/s through the child's interface (run_one: spool file "
          f"of {spool / 1e6:,.0f} MB and messages); median of {args.runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
