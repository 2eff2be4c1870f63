"""Keypoints a user uploads for analysis (``POST /v1/analyses``): a result@1 JSON document or a TRC
file, read into the tracks :func:`worker.pipeline.analysis.analyze` takes, or refused with a message
saying what is wrong (:class:`BadKeypoints`).

The web checks an upload with :func:`read_keypoints` before it accepts it (422 instead of a job that
fails later) and the analysis child reads it again with the same function: one reader, one set of
rules. Stdlib and numpy only.

TRC (OpenSim's marker file, the format Pose2Sim and Sports2D write): tab-separated, six header lines
(``PathFileType``; the keys ``DataRate CameraRate NumFrames NumMarkers Units ...`` and their values;
``Frame# Time <marker> ...``; ``X1 Y1 Z1 ...``; a blank line), then one row per frame. Markers are
matched to BlazePose's keypoints by name: ours (``left_knee``, as `pose-service export --format trc`
writes them) or Pose2Sim's (``LKnee``, ``RBigToe``, ...); other markers are ignored. Coordinates are
OpenSim's (Y up, Z towards the viewer) in ``Units`` (m or mm) and become world landmarks (metres, y
down, z away from the camera: x, −Y, −Z). An empty field or ``NaN`` is a marker not seen in that frame.
``Frame#`` counts from 1 (frame index + 1). A TRC file has no image coordinates, so its 2D angles are
null; it describes one person (track 0).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.pipeline.analysis.document import TrackInput, fps_of, tracks_from_result
from worker.pipeline.io.keypoints import KEYPOINT_NAMES
from worker.pipeline.io.keypoints import SCHEMA as RESULT_SCHEMA

N = len(KEYPOINT_NAMES)

#: Pose2Sim's marker names (HALPE/COCO body models) for the BlazePose keypoints they share.
POSE2SIM_NAMES = {
    "Nose": "nose", "LEye": "left_eye", "REye": "right_eye", "LEar": "left_ear", "REar": "right_ear",
    "LShoulder": "left_shoulder", "RShoulder": "right_shoulder", "LElbow": "left_elbow", "RElbow": "right_elbow",
    "LWrist": "left_wrist", "RWrist": "right_wrist", "LHip": "left_hip", "RHip": "right_hip",
    "LKnee": "left_knee", "RKnee": "right_knee", "LAnkle": "left_ankle", "RAnkle": "right_ankle",
    "LHeel": "left_heel", "RHeel": "right_heel", "LBigToe": "left_foot_index", "RBigToe": "right_foot_index",
}  # fmt: skip
UNITS = {"m": 1.0, "mm": 0.001, "cm": 0.01}


class BadKeypoints(ValueError):
    """The upload cannot be analysed; the message says why (a 422 at submit, ``bad_input`` in a job)."""


@dataclass(frozen=True)
class Keypoints:
    """An upload, read: what it is, its frame rate, the pose model it names (None for TRC) and its tracks."""

    kind: str  # "result" | "trc"
    fps: float
    model: Any
    tracks: list[TrackInput]

    @property
    def person_frames(self) -> int:
        return sum(int(t.frames.size) for t in self.tracks)


def read_keypoints(data: bytes) -> Keypoints:
    """The upload's tracks: a result@1 JSON document (by its first non-blank byte ``{`` or ``[``) or a TRC
    file (by its ``PathFileType`` line); BadKeypoints for anything else, for empty ones, wrong shapes
    and numbers that are not finite."""
    head = data.lstrip()[:64]
    if not head:
        raise BadKeypoints("the keypoints file is empty")
    if head.startswith((b"{", b"[")):
        return _read_result(data)
    if head.startswith(b"PathFileType"):
        return _read_trc(data)
    raise BadKeypoints("the keypoints file is neither a result@1 JSON document nor a TRC file (first line "
                       "'PathFileType ...')")


def _refuse_constant(name: str) -> float:
    raise BadKeypoints(f"the JSON holds {name}, which is not a number a keypoint can have")


def _read_result(data: bytes) -> Keypoints:
    try:
        document = json.loads(data, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadKeypoints(f"the keypoints file is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadKeypoints("the keypoints JSON must be an object (a result@1 document)")
    if document.get("schema") not in (None, RESULT_SCHEMA):
        raise BadKeypoints(f"schema {document.get('schema')!r} is not {RESULT_SCHEMA!r}")
    frames = document.get("frames")
    if not isinstance(frames, list) or not frames:
        raise BadKeypoints("the document has no frames")
    for i, frame in enumerate(frames):
        _check_frame(i, frame)
    if not any(frame["people"] for frame in frames):
        raise BadKeypoints("no frame of the document has a person")
    try:
        fps = fps_of(document)
        tracks = list(tracks_from_result(document))
    except (ValueError, TypeError, KeyError) as exc:
        raise BadKeypoints(str(exc)) from None
    if not math.isfinite(fps) or fps <= 0:
        raise BadKeypoints(f"video.fps must be a positive number, not {fps}")
    for track in tracks:
        if np.unique(track.frames).size != track.frames.size:
            raise BadKeypoints(f"track {track.track_id} appears twice in one frame")
    return Keypoints("result", fps, document.get("model"), tracks)


def _check_frame(i: int, frame: Any) -> None:
    if (not isinstance(frame, dict) or not isinstance(frame.get("index"), int)
            or not isinstance(frame.get("people"), list)):
        raise BadKeypoints(f"frames[{i}] must be an object with an integer index and a list of people")
    for j, person in enumerate(frame["people"]):
        where = f"frames[{i}].people[{j}]"
        if not isinstance(person, dict) or not isinstance(person.get("track_id"), int):
            raise BadKeypoints(f"{where} must be an object with an integer track_id")
        for key, width in (("keypoints", 5), ("world", 3)):
            _check_matrix(person.get(key), width, f"{where}.{key}")


def _check_matrix(value: Any, width: int, where: str) -> None:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadKeypoints(f"{where} must be {N} lists of {width} numbers") from None
    if array.shape != (N, width):
        raise BadKeypoints(f"{where} must be {N} lists of {width} numbers, not an array of shape {array.shape}")
    if not np.isfinite(array).all():
        raise BadKeypoints(f"{where} holds a number that is not finite")


def _trc_lines(data: bytes) -> list[str]:
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadKeypoints("the TRC file is not UTF-8 text") from None


def _read_trc(data: bytes) -> Keypoints:
    lines = _trc_lines(data)
    if len(lines) < 5:
        raise BadKeypoints("the TRC file ends inside its header (six lines, then one row per frame)")
    keys, values = lines[1].split("\t"), lines[2].split("\t")
    header = dict(zip((k.strip() for k in keys), (v.strip() for v in values), strict=False))
    try:
        fps = float(header["DataRate"])
    except (KeyError, ValueError):
        raise BadKeypoints("the TRC header has no numeric DataRate") from None
    if not math.isfinite(fps) or fps <= 0:
        raise BadKeypoints(f"the TRC DataRate must be positive, not {header['DataRate']}")
    scale = UNITS.get(header.get("Units", "m"))
    if scale is None:
        raise BadKeypoints(f"TRC Units {header.get('Units')!r} is not one of {', '.join(UNITS)}")
    labels = lines[3].split("\t")
    if len(labels) < 3 or labels[0].strip() != "Frame#":
        raise BadKeypoints("the TRC file's fourth line must name the columns: Frame#, Time, then the markers")
    markers = [m.strip() for m in labels[2:] if m.strip()]
    columns: dict[int, int] = {}  # keypoint index -> the marker's position among the markers
    for position, marker in enumerate(markers):
        name = marker if marker in KEYPOINT_NAMES else POSE2SIM_NAMES.get(marker)
        if name is not None and KEYPOINT_NAMES.index(name) not in columns:
            columns[KEYPOINT_NAMES.index(name)] = position
    if not columns:
        raise BadKeypoints(f"no TRC marker is a known keypoint (BlazePose's names, e.g. left_knee, or Pose2Sim's, "
                           f"e.g. LKnee); the file has {', '.join(markers[:6]) or 'none'}")
    frames: list[int] = []
    world: list[np.ndarray[Any, Any]] = []
    for number, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 + 3 * len(markers) or len(fields) > 3 + 3 * len(markers):
            raise BadKeypoints(f"TRC line {number} has {len(fields)} fields, not 2 + 3 × {len(markers)} markers")
        try:
            frame = int(float(fields[0])) - 1  # Frame# counts from 1, frame indexes from 0
            xyz = np.array([float(f) if f.strip() else np.nan for f in fields[2:2 + 3 * len(markers)]])
        except ValueError:
            raise BadKeypoints(f"TRC line {number} holds something that is not a number") from None
        if np.isinf(xyz).any():
            raise BadKeypoints(f"TRC line {number} holds an infinite coordinate")
        points = xyz.reshape(len(markers), 3)
        person = np.full((N, 3), np.nan)
        for keypoint, position in columns.items():
            person[keypoint] = points[position] * scale * (1.0, -1.0, -1.0)  # OpenSim's Y up, Z to the viewer
        frames.append(frame)
        world.append(person)
    if not frames:
        raise BadKeypoints("the TRC file has no frames")
    order = np.argsort(np.asarray(frames), kind="stable")
    frame_array = np.asarray(frames, dtype=np.int64)[order]
    if np.unique(frame_array).size != frame_array.size:
        raise BadKeypoints("a TRC Frame# appears twice")
    world_array = np.asarray(world)[order]
    seen = np.isfinite(world_array).all(axis=2)
    keypoints = np.full((frame_array.size, N, 5), np.nan)
    keypoints[:, :, 3] = np.where(seen, 1.0, 0.0)  # visibility: the marker is there or not
    keypoints[:, :, 4] = keypoints[:, :, 3]
    track = TrackInput(track_id=0, frames=frame_array, keypoints=keypoints, world=np.nan_to_num(world_array))
    return Keypoints("trc", fps, None, [track])
