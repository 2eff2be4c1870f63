"""The result document, ``pose-service/result@1`` (DESIGN.md section 5): what every client reads.

Keypoints are ``[x_px, y_px, z, visibility, presence]`` in pixels of the upright frame; ``z`` is depth
relative to the hip centre in the same pixel scale as ``x`` (negative is towards the camera), which is
MediaPipe's z multiplied by the frame width. World keypoints are metres, hip-centred, y down.
Numbers are rounded to what the model can resolve (0.01 px, 0.1 mm, 1e-4 for probabilities) so the
JSON stays small and diffs between runs stay quiet. Besides the section 5 fields, ``video`` carries
``skipped_frames``: frames the container announced that could not be decoded, and the document may
carry ``tracks``: one summary per track over the whole video (tracking/subject.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.pipeline.io.keypoints import KEYPOINT_NAMES, SCHEMA, SKELETON
from worker.pipeline.tracking.tracker import Person

__all__ = ["KEYPOINT_NAMES", "SCHEMA", "SKELETON", "FrameResult", "build_document"]

MODEL_NAME = "blazepose-full (mediapipe 0.10.21 pose_detection + pose_landmark_full)"


@dataclass(frozen=True)
class FrameResult:
    index: int
    time_s: float
    people: Sequence[Person]


def _person(person: Person) -> dict[str, Any]:
    kp = person.keypoints
    keypoints = np.concatenate([kp[:, :3].round(2), kp[:, 3:5].round(4)], axis=1)
    return {
        "track_id": int(person.track_id),
        "bbox": [round(float(v), 2) for v in person.bbox],
        "score": round(float(person.score), 4),
        "keypoints": keypoints.tolist(),
        "world": person.world.round(4).tolist(),
    }


def frame_object(frame: FrameResult) -> dict[str, Any]:
    """One entry of the document's ``frames``."""
    return {"index": int(frame.index), "time_s": round(float(frame.time_s), 6),
            "people": [_person(p) for p in frame.people]}


@dataclass(frozen=True)
class StreamedFrames:
    """What the document needs to know of frames that were emitted one by one instead of kept."""

    count: int
    last_time_s: float | None


def build_document(
    *,
    width: int,
    height: int,
    fps: float | None,
    rotation: int,
    frames: Sequence[FrameResult] | StreamedFrames,
    skipped_frames: int,
    device: str,
    weights_sha256: str,
    backend: str = "torch",
    decode_s: float,
    inference_s: float,
    total_s: float,
    tracks: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Assemble the document. ``duration_s`` is the span of the decoded frames plus one frame period.
    With StreamedFrames (the frames went out through the child's emit_frame) the document has no
    ``frames``: the worker stores them as they come and puts them back when the result is read."""
    if isinstance(frames, StreamedFrames):
        count, last_time = frames.count, frames.last_time_s
    else:
        count, last_time = len(frames), (frames[-1].time_s if frames else None)
    duration = 0.0 if last_time is None else last_time + (1.0 / fps if fps else 0.0)
    document = {
        "schema": SCHEMA,
        "video": {
            "width": int(width),
            "height": int(height),
            "fps": None if fps is None else round(float(fps), 6),
            "frames": count,
            "duration_s": round(duration, 6),
            "rotation": int(rotation),
            "skipped_frames": int(skipped_frames),
        },
        "model": {"name": MODEL_NAME, "backend": backend, "device": device, "weights_sha256": weights_sha256},
        "keypoint_names": list(KEYPOINT_NAMES),
        "skeleton": [list(edge) for edge in SKELETON],
        "frames": [] if isinstance(frames, StreamedFrames) else [frame_object(f) for f in frames],
        "timings": {
            "decode_s": round(decode_s, 4),
            "inference_s": round(inference_s, 4),
            "total_s": round(total_s, 4),
        },
    }
    if isinstance(frames, StreamedFrames):
        del document["frames"]
    if tracks is not None:
        document["tracks"] = list(tracks)
    return document
