#!/usr/bin/env python3
"""People found per frame and id switches on composited footage (issue 12), with and without tiles
and track survival, in the same run:

    .venv/bin/python bench/finding_people.py [--out DIR]

The footage is the shared runner composited with OpenCV (tests/pipeline/footage.py, the same scenes
as tests/pipeline/test_finding_people.py): small in a 4K frame, four at different scales, two whose
paths cross (one in other clothes, or both the same), one passing behind a drawn panel, and a still
of ten. Each scene runs with the defaults (tiles chosen from the frame size, tracks kept 30 frames
while unseen), with ``track_grace: 0`` (tracks ended at once, nobody re-identified: the tracker
before issue 12) and with ``detect_scales: 0, track_grace: 0`` as well (the whole frame alone: the
pipeline before issue 12). "Found" is a runner with a reported person on her body (a person
counts for one runner at most); an id switch is a runner's reported id changing between two frames in
which she is found. Also the wall time of each run, on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.pipeline.footage import Placement, write_video  # noqa: E402
from tests.pipeline.test_finding_people import RED, crossing, ids_per_frame  # noqa: E402

Scene = tuple[str, int, int, int, Callable[[int], list[Placement]], Callable[[int, np.ndarray], None] | None, str]


def panel(t: int, image: np.ndarray) -> None:
    cv2.rectangle(image, (560, 120), (700, 680), (80, 80, 80), -1)


def still(t: int) -> list[Placement]:
    out = []
    for k in range(10):
        row, col = divmod(k, 5)
        size = (0.26, 0.2, 0.32, 0.17, 0.24)[col] * 1080
        out.append(Placement(23 * k, 200 + 380 * col + 60 * row, 300 + 480 * row, size))
    return out


SCENES: list[Scene] = [
    ("runner at 15 % of a 4K frame, running across", 3840, 2160, 24,
     lambda t: [Placement(t, 900 + 25 * t, 1400, 0.15 * 2160)], None, "video"),
    ("runner at 10 % of a 4K frame, running across", 3840, 2160, 24,
     lambda t: [Placement(t, 900 + 25 * t, 1400, 0.10 * 2160)], None, "video"),
    ("four runners at 45/30/20/14 % of 1920x1088", 1920, 1088, 30,
     lambda t: [Placement(t + 37 * k, 1920 * (k + 0.5) / 4, 1088 * 0.6, h * 1088)
                for k, h in enumerate((0.45, 0.30, 0.20, 0.14))], None, "video"),
    ("two runners crossing, other clothes (1280x720)", 1280, 720, 60, lambda t: crossing(t, RED), None, "video"),
    ("two runners crossing, same clothes (1280x720)", 1280, 720, 60, lambda t: crossing(t, None), None, "video"),
    ("runner behind a panel for ~10 frames (1280x720)", 1280, 720, 40,
     lambda t: [Placement(t, 300 + 16 * t, 400, 320)], panel, "video"),
    ("still of ten runners, 1920x1080, max_people 12", 1920, 1080, 1, still, None, "static"),
]

SETTINGS = {"defaults": {}, "tiles, no grace": {"track_grace": 0},
            "whole frame, no grace": {"detect_scales": 0, "track_grace": 0}}


def measure(
    pipeline: object, path: Path, boxes: list[list[np.ndarray]], params: dict
) -> tuple[float, float, int, int, float]:
    t0 = time.perf_counter()
    doc = pipeline(str(path), params)  # type: ignore[operator]
    elapsed = time.perf_counter() - t0
    ids = ids_per_frame(doc, boxes)
    present = sum(len(row) for row in ids)
    found = sum(i is not None for row in ids for i in row)
    switches = 0
    for k in range(len(ids[0])):
        seen = [row[k] for row in ids if row[k] is not None]
        switches += sum(a != b for a, b in zip(seen, seen[1:], strict=False))
    extra = sum(len(f["people"]) for f in doc["frames"]) - found
    return found / len(ids), present / len(ids), switches, extra, len(ids) / elapsed


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="keep the videos here (default: a temporary folder)")
    args = ap.parse_args(argv)
    from worker.pipeline.pose import create

    pipeline = create()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        print("| scene | setting | people found per frame (present) | id switches | others reported | frames/s |")
        print("|---|---|---|---|---|---|")
        for i, (name, width, height, frames, scene, draw, mode) in enumerate(SCENES):
            path = out / f"scene{i}.mp4"
            boxes = write_video(path, width, height, frames, scene, draw=draw)
            for label, params in SETTINGS.items():
                full = {**params, "mode": mode, **({"max_people": 12} if mode == "static" else {})}
                found, present, switches, extra, fps = measure(pipeline, path, boxes, full)
                print(f"| {name} | {label} | {found:.2f} ({present:.0f}) | {switches} | {extra} | {fps:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
