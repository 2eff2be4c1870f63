#!/usr/bin/env python3
"""Sport analysis speed (worker/pipeline/analysis): time per 1,000 person-frames, beside inference.

    .venv/bin/python bench/analysis_speed.py [--frames 1800] [--people 2] [--fps 30] [--runs 5]
                                             [--result RESULT.json]

The data is bench/synthetic_pipeline.py's result@1 (people walking to and fro, arms and legs swinging,
the keypoints and world landmarks the pose pipeline writes); by default a one-minute 30 fps video of two
people, 3,600 person-frames. Two timings, median of ``--runs``:

* ``analyze()``: result@1 document in, analysis@1 document out (reading the frames into arrays per track,
  cleaning, angles raw and filtered, velocities, yaw, spins, and the JSON-ready lists);
* the array core alone (document.analyze_track on arrays already gathered per track).

Both are printed per 1,000 person-frames next to what the pose pipeline needs for as many (72.5
frames/s on this 2-core CPU, README "Benchmarks", one person per frame). With ``--result`` a real
result@1 file (e.g. from ``pose-service run VIDEO -o OUT.json``) is timed too, and the jitter of its knee
angles raw and filtered (series.jitter) is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.synthetic_pipeline import SyntheticPipeline  # noqa: E402
from worker.pipeline.analysis import PARAMS, analyze  # noqa: E402
from worker.pipeline.analysis.document import analyze_track, fps_of, tracks_from_result  # noqa: E402
from worker.pipeline.analysis.series import jitter  # noqa: E402

#: The pose pipeline end to end on runner_1080p.mp4, CPU (README "Benchmarks": bench/pipeline_fps.py).
PIPELINE_FPS = 72.5


def person_frames(document: dict[str, Any]) -> int:
    return sum(len(f["people"]) for f in document["frames"])


def timed(runs: int, fn: Any) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report(label: str, document: dict[str, Any], runs: int) -> None:
    n = person_frames(document)
    params = PARAMS.validate(None)
    fps = fps_of(document)
    tracks = list(tracks_from_result(document))
    whole = timed(runs, lambda: analyze(document))
    core = timed(runs, lambda: [analyze_track(t, fps, params) for t in tracks])
    inference = 1000.0 / PIPELINE_FPS
    print(f"{label}: {n} person-frames in {len(tracks)} tracks, median of {runs} runs")
    print(f"  analyze() (document in, document out): {whole * 1e3:.1f} ms = {whole / n * 1e6:.1f} ms per 1,000 "
          f"person-frames")
    print(f"  array core (analyze_track):            {core * 1e3:.1f} ms = {core / n * 1e6:.1f} ms per 1,000 "
          f"person-frames")
    print(f"  the pose pipeline at {PIPELINE_FPS} frames/s: {inference:.1f} s per 1,000 person-frames "
          f"-> analysis is {whole / n * 1000 / inference * 100:.2f} % of it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--result", type=Path, help="a result@1 JSON file to time and measure jitter on")
    args = parser.parse_args(argv)
    synthetic = SyntheticPipeline()("", {"frames": args.frames, "people": args.people, "fps": args.fps},
                                    lambda done, total: None)
    report(f"synthetic, {args.frames} frames x {args.people} people at {args.fps} fps", synthetic, args.runs)
    if args.result is not None:
        document = json.loads(args.result.read_text())
        report(str(args.result), document, args.runs)
        for track in analyze(document)["tracks"]:
            for name in ("left_knee", "right_knee", "left_knee_2d", "right_knee_2d"):
                raw = np.array([np.nan if v is None else v for v in track["angles_raw"][name]])
                filtered = np.array([np.nan if v is None else v for v in track["angles"][name]])
                print(f"  track {track['track_id']} {name}: jitter raw {jitter(raw):.3f} deg, filtered "
                      f"{jitter(filtered):.3f} deg, {jitter(raw) / jitter(filtered):.2f}x less")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
