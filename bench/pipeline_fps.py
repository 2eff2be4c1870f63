#!/usr/bin/env python3
"""End-to-end pose throughput: our torch pipeline against MediaPipe's own runtime, in the same run.

    .venv/bin/python bench/pipeline_fps.py [--video V] [--runs N] [--mode video|static] [--no-mediapipe]
                                           [--detect-scales auto,0,1,2]

"End to end" means what a job costs: decoding the video, running both models, tracking/smoothing and
building the result document (serialised to JSON), from an already loaded pipeline. MediaPipe runs the
loop of ../shared/reference/make_mediapipe_reference.py (OpenCV decode, RGB conversion,
``solutions.pose.Pose(model_complexity=1)``, landmarks collected into lists, JSON at the end) in a
side virtual environment with ``mediapipe==0.10.21``, created on first use under
``~/.cache/pose-service/bench-mediapipe-venv`` (mediapipe is never a dependency of the service).

Runs alternate between the two so that background load hits both alike; the median of each is
reported, with the ratio ours / MediaPipe. ``--detect-scales`` measures ours once per tiling setting
in every pass (``auto``: the pipeline's default for the frame size; 0: the whole frame alone, as
MediaPipe; 1, 2: that many finer scales of tiles), so the cost of tiling is read against MediaPipe
and against the untiled pipeline in the same run. With CUDA available, the GPU throughput is printed
too, per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jobs.sample_media import media_dir  # noqa: E402

SHARED_MEDIA = media_dir()
DEFAULT_VIDEO = SHARED_MEDIA / "runner_1080p.mp4"
WARMUP_VIDEO = SHARED_MEDIA / "five_frames_720p.mp4"
MEDIAPIPE = "mediapipe==0.10.21"
DEFAULT_VENV = Path.home() / ".cache" / "pose-service" / "bench-mediapipe-venv"

# The reference script's loop, timed from opening the video to the JSON document being written.
MEDIAPIPE_LOOP = r"""
import json, sys, time
import cv2
from mediapipe.python import solutions

video, static = sys.argv[1], sys.argv[2] == "static"
pose = solutions.pose.Pose(static_image_mode=static, model_complexity=1, smooth_landmarks=True,
                           enable_segmentation=False)
for run in ("warm-up", "timed"):
    pose.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    cap = cv2.VideoCapture(video)
    frames, n = [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        r = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        rec = {"index": n, "landmarks": None, "world_landmarks": None}
        if r.pose_landmarks is not None:
            rec["landmarks"] = [[p.x, p.y, p.z, p.visibility, p.presence] for p in r.pose_landmarks.landmark]
            rec["world_landmarks"] = [[p.x, p.y, p.z, p.visibility] for p in r.pose_world_landmarks.landmark]
        frames.append(rec)
        n += 1
    json.dumps({"frames": frames})
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"frames": n, "seconds": elapsed, "cpu_seconds": cpu}))
"""


def ensure_mediapipe_venv(venv: Path) -> Path:
    """The side environment's python, creating it (once) with pip if needed."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import mediapipe, cv2; assert mediapipe.__version__ == '0.10.21'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with {MEDIAPIPE} (one time) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", MEDIAPIPE], check=True)
    subprocess.run(check, check=True)
    return python


class MediaPipeRunner:
    """Runs MediaPipe's loop in the side environment; each pass is a fresh process (warm-up, then timed)."""

    def __init__(self, python: Path, video: Path, mode: str) -> None:
        fd, self._script = tempfile.mkstemp(suffix="_mediapipe_loop.py")
        with os.fdopen(fd, "w") as fh:
            fh.write(MEDIAPIPE_LOOP)
        self._cmd = [str(python), self._script, str(video), mode]
        self._env = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
        self.results: list[float] = []
        self.cpu_ms: list[float] = []  # CPU time per frame, all of its threads

    def run_once(self) -> float:
        out = subprocess.run(self._cmd, capture_output=True, text=True, env=self._env, check=True).stdout
        last = json.loads(out.strip().splitlines()[-1])
        fps = last["frames"] / last["seconds"]
        self.results.append(fps)
        self.cpu_ms.append(1000 * last["cpu_seconds"] / last["frames"])
        return fps

    def close(self) -> None:
        os.unlink(self._script)


def run_ours(
    pipeline: object, video: Path, mode: str, device: str, scales: str = "auto"
) -> tuple[float, dict, float]:
    """frames/s, the document, and CPU milliseconds per frame (this process, all of its threads)."""
    params: dict[str, object] = {"mode": mode, "device": device}
    if scales != "auto":
        params["detect_scales"] = int(scales)
    t0, c0 = time.perf_counter(), time.process_time()
    doc = pipeline(str(video), params, lambda done, total: None)  # type: ignore[operator]
    json.dumps(doc)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames = doc["video"]["frames"]
    return frames / elapsed, doc, 1000 * cpu / frames


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--runs", type=int, default=5, help="timed passes of each (default 5)")
    ap.add_argument("--mode", choices=("video", "static"), default="video")
    ap.add_argument("--no-mediapipe", action="store_true", help="only measure our pipeline")
    ap.add_argument("--mediapipe-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--detect-scales", default="auto",
                    help="comma-separated tiling settings to measure: auto (default) and/or 0..3")
    args = ap.parse_args(argv)
    settings = [s.strip() for s in args.detect_scales.split(",") if s.strip()]

    import torch

    from worker.pipeline.pose import create

    pipeline = create()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), {os.cpu_count()} CPUs")
    run_ours(pipeline, WARMUP_VIDEO, args.mode, "cpu")
    for scales in settings:
        run_ours(pipeline, args.video, args.mode, "cpu", scales)

    mediapipe = None
    if not args.no_mediapipe:
        mediapipe = MediaPipeRunner(ensure_mediapipe_venv(args.mediapipe_venv), args.video, args.mode)

    ours: dict[str, list[float]] = {s: [] for s in settings}
    ours_cpu: dict[str, list[float]] = {s: [] for s in settings}
    for i in range(args.runs):
        line = f"pass {i + 1}:"
        for scales in settings:
            fps, doc, cpu_ms = run_ours(pipeline, args.video, args.mode, "cpu", scales)
            ours[scales].append(fps)
            ours_cpu[scales].append(cpu_ms)
            line += f" ours[scales {scales}] {fps:6.1f}"
        if mediapipe is not None:
            line += f"   mediapipe {mediapipe.run_once():6.1f}"
        print(line + " frames/s", flush=True)

    frames = doc["video"]["frames"]
    print(f"\n{args.video.name}: {frames} frames, {doc['video']['width']}x{doc['video']['height']}, mode {args.mode}")
    mp = statistics.median(mediapipe.results) if mediapipe is not None else None
    for scales in settings:
        median = statistics.median(ours[scales])
        spread = f"min {min(ours[scales]):.1f}, max {max(ours[scales]):.1f}"
        ratio = f"   ours / mediapipe {median / mp:.2f}x" if mp else ""
        print(f"ours (torch, CPU, detect_scales {scales}): median {median:6.1f} frames/s ({spread}){ratio}")
    if mediapipe is not None:
        print(f"mediapipe 0.10.21 (CPU): median {mp:6.1f} frames/s (min {min(mediapipe.results):.1f}, "
              f"max {max(mediapipe.results):.1f})")
    # CPU time per frame (every thread of the process: decoding, inference, helpers) moves far less with
    # other load on the machine than frames/s does, so it tells a change of cost from a noisy pass.
    mp_cpu = statistics.median(mediapipe.cpu_ms) if mediapipe is not None else None
    for scales in settings:
        cpu_ms = statistics.median(ours_cpu[scales])
        ratio = f"   mediapipe / ours {mp_cpu / cpu_ms:.2f}x" if mp_cpu else ""
        print(f"CPU per frame, ours (detect_scales {scales}): median {cpu_ms:6.2f} ms{ratio}")
    if mp_cpu is not None:
        print(f"CPU per frame, mediapipe: median {mp_cpu:6.2f} ms")
        mediapipe.close()
    if torch.cuda.is_available():
        for scales in settings:
            run_ours(pipeline, args.video, args.mode, "cuda", scales)  # warm-up: cuDNN autotuning, uploads
            gpu = [run_ours(pipeline, args.video, args.mode, "cuda", scales)[0] for _ in range(args.runs)]
            print(f"ours (torch, CUDA {torch.cuda.get_device_name()}, detect_scales {scales}): "
                  f"median {statistics.median(gpu):6.1f} frames/s")
    else:
        print("CUDA: not available on this machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
