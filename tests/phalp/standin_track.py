"""A stand-in for 4D-Humans' track.py, copied into a fake checkout by the tests (tests/phalp/).

Same command line as the real one (Hydra overrides ``key=value``); it reads ``video.source`` (an .mp4,
as PHALP's IO_Manager insists) with OpenCV, writes what the real one writes, where it writes it:
``<video.output_dir>/results/demo_input.pkl``, a dict from each frame's image path to a frame dict
with per-track lists aligned with ``tid``, dumped with ``joblib.dump(compress=3)`` (shapes as
phalp/trackers/PHALP.py and phalp/models/hmar/hmar.py make them). What it does is steered by the file
named in STANDIN_MODE_FILE (ok, no_output, exit1, hang, bad_shape, missing_key); each run appends
one JSON line to STANDIN_RECORD: its argv, working directory, pid and what it read.

Numbers that make the result checkable by hand: the input is W × H; the track 7 is detected in every
frame with bbox [W/4, H/4, 10 + t, 20] (x0, y0, w, h) and every 2D joint at (0.5, 0.25) of the padded
square but joint 0 at ((t + 1) / 100, 0.5); in the last frame of a clip of two frames or more a
track 9 is predicted, not detected (tracked_time 2).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cv2
import joblib
import numpy as np


def hydra_unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return value


def joints_3d() -> np.ndarray:
    j = np.zeros((45, 3), dtype=np.float32)
    j[:, 1] = -0.5  # everything half a metre above the hips ...
    j[12] = (0.1, 0.0, 0.02)  # ... but OpenPose's left hip
    j[9] = (-0.1, 0.0, -0.02)  # and right hip
    j[10] = (-0.1, 0.45, 0.1)  # right knee
    j[44] = 0.0  # PHALP's appended zero row
    return j


def track(t: int, tid: int, width: int, height: int, image_path: str) -> dict:
    two_d = np.tile(np.array([0.5, 0.25], dtype=np.float32), 45)
    two_d[0:2] = ((t + 1) / 100, 0.5)
    return {
        "tid": tid,
        "bbox": np.array([width / 4, height / 4, 10 + t, 20], dtype=np.float64),
        "conf": np.float32(0.9),
        "smpl": {"global_orient": np.eye(3, dtype=np.float32)[None],
                 "body_pose": np.tile(np.eye(3, dtype=np.float32), (23, 1, 1)),
                 "betas": np.arange(10, dtype=np.float32) / 10},
        "3d_joints": joints_3d(),
        "2d_joints": two_d,
        "camera": np.array([0.01, 0.02, 10.0], dtype=np.float32),
        "camera_bbox": np.array([1.0, 0.0, 0.0], dtype=np.float32),
        "center": np.array([width / 2, height / 2]), "scale": np.array([10.0, 20.0]), "size": [height, width],
        "img_path": image_path, "img_name": image_path.rsplit("/", 1)[-1], "class_name": 0, "annotations": [],
        "mask": {"size": [height, width], "counts": "xyz"}, "extra_data": None,
    }


def build(images: list[np.ndarray], out: str, mode: str) -> dict:
    height, width = images[0].shape[:2]
    data = {}
    for t, image in enumerate(images):
        key = f"{out}/_DEMO/input/img/{t + 1:06d}.jpg"
        people = [(track(t, 7, width, height, key), 0)]
        if len(images) >= 2 and t == len(images) - 1:
            people.append((track(t, 9, width, height, key), 2))
        frame = {"time": t, "shot": 0, "frame_path": key, "tracked_ids": [7], "tracked_bbox": [people[0][0]["bbox"]]}
        for name in ("tid", "bbox", "conf", "smpl", "3d_joints", "2d_joints", "camera", "camera_bbox", "center",
                     "scale", "size", "img_path", "img_name", "class_name", "annotations", "mask", "extra_data"):
            frame[name] = [p[name] for p, _ in people]
        frame["tracked_time"] = [ghost for _, ghost in people]
        if len(images) <= 5:
            frame["frame"] = image  # PHALP keeps the raw image of clips no longer than n_init
        if mode == "bad_shape":
            frame["3d_joints"] = [j[:44] for j in frame["3d_joints"]]
        if mode == "missing_key":
            del frame["smpl"]
        data[key] = frame
    return data


def main() -> int:
    overrides = {}
    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        overrides[key] = hydra_unquote(value)
    mode_file = os.environ.get("STANDIN_MODE_FILE")
    mode = Path(mode_file).read_text().strip() if mode_file else "ok"
    source, out = overrides["video.source"], overrides["video.output_dir"]
    if not source.endswith(".mp4"):
        print(f"Invalid source path {source}")  # what PHALP does with anything but .mp4 (then exits 0)
        return 0
    capture = cv2.VideoCapture(source)
    images = []
    while len(images) < int(overrides["video.end_frame"]):
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    with open(source, "rb") as fh:
        head = fh.read(12)
    entry = {"argv": sys.argv, "cwd": os.getcwd(), "pid": os.getpid(), "mode": mode, "frames": len(images),
             "width": images[0].shape[1] if images else 0, "height": images[0].shape[0] if images else 0,
             "source_is_mp4": head[4:8] == b"ftyp"}
    with open(os.environ["STANDIN_RECORD"], "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    print(f"Tracking : input {len(images)} frames", flush=True)
    if mode == "hang":
        time.sleep(600)
    if mode == "exit1":
        print("RuntimeError: something broke", file=sys.stderr)
        return 1
    if mode == "no_output":  # PHALP's track() prints the exception and returns: exit status 0
        print("CUDA error: an illegal memory access was encountered")
        return 0
    rendezvous = os.environ.get("STANDIN_RENDEZVOUS")
    if rendezvous:  # wait until two runs are inside track.py at once (the concurrency test)
        Path(rendezvous, str(os.getpid())).touch()
        deadline = time.monotonic() + 60
        while len(os.listdir(rendezvous)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    os.makedirs(f"{out}/results", exist_ok=True)
    joblib.dump(build(images, out, mode), f"{out}/results/demo_input.pkl", compress=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
