"""A pipeline for the /pose/hybrid tests, run by the real worker in its real child process.

It decodes the staged video with OpenCV, as the pose pipeline would, and reports one "person" whose
keypoints sit at the frame's centre, so the test can check that the image it sent is the frame the
worker read. The document is a valid result@1 (web/result_document.py): the frame's mean colour and
the job's params ride as extra fields of the person, where DESIGN.md section 5 lets backends add
their own.
"""

from __future__ import annotations

from typing import Any

from worker.pipeline.contract import BadInput, ProgressFn


def run(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    import cv2

    cap = cv2.VideoCapture(video_path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise BadInput(f"{video_path}: no frames")
    height, width = frames[0].shape[:2]
    progress(len(frames), len(frames))
    person = {
        "track_id": 1,
        "bbox": [0.0, 0.0, float(width), float(height)],
        "score": 0.9,
        "keypoints": [[width / 2, height / 2, 0.0, 0.99, 0.99]] * 33,
        "world": [[0.0, 0.0, 0.0]] * 33,
        "mean_bgr": [float(c) for c in frames[0].reshape(-1, 3).mean(axis=0)],
        "params": params,
    }
    return {
        "schema": "pose-service/result@1",
        "video": {
            "width": width, "height": height, "fps": fps or None, "frames": len(frames),
            "duration_s": len(frames) / fps if fps else 0.0, "rotation": 0, "skipped_frames": 0,
        },
        "model": {"name": "test-hybrid", "backend": "test", "device": "cpu", "weights_sha256": "-"},
        "keypoint_names": [f"kp{i}" for i in range(33)],
        "skeleton": [],
        "frames": [{"index": 0, "time_s": 0.0, "people": [person]}],
        "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0},
    }


def create():
    return run
