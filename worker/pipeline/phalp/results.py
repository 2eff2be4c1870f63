"""Reading what track.py wrote: ``<output_dir>/results/demo_input.pkl``, and only that.

PHALP (phalp/trackers/PHALP.py, ``track``) writes it with ``joblib.dump(..., compress=3)``: a
zlib-compressed pickle that only ``joblib.load`` reads. It is a dict from each frame's image path
(the frames PHALP extracted from input.mp4, numbered ``000001.jpg`` …, so sorting the keys gives frame
order) to a frame dict whose per-track lists are aligned with ``tid``:

=================  ===========================================================================
``tid``            track ids
``bbox``           [x0, y0, w, h] in pixels of the frame
``conf``           detection score
``tracked_time``   frames since the track was last detected: > 0 means a predicted "ghost"
``smpl``           {global_orient (1, 3, 3), body_pose (23, 3, 3), betas (10,)}: rotation matrices
``3d_joints``      (45, 3) metres, camera axes, before the camera translation (joints.py)
``2d_joints``      (90,) x, y per joint, normalised to the frame padded to a square
``camera``         (tx, ty, tz): the translation that places the body in front of the camera
``camera_bbox``    the same in the person's crop
=================  ===========================================================================

Anything else in a frame (masks, image paths, raw images of clips of n_init frames or fewer) is
ignored. track.py catches its own errors and exits 0 without writing the file, so a missing file, a
file that is not this structure, missing keys or wrong shapes are all :class:`PhalpOutputError` (the
job fails as ``pipeline_error``, never an empty success).

joblib.load unpickles, which runs code the file names: it reads only the file the operator's own
track.py wrote into the job's private directory, which is as trusted as that code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worker.pipeline.phalp.joints import JOINTS

#: The file track.py writes for input.mp4: ``<track_dataset>_<video name>.pkl`` with PHALP's default
#: track_dataset "demo" (phalp/configs/base.py); nothing else under the output directory is read.
RESULT_FILE = Path("results") / "demo_input.pkl"
TRACK_KEYS = ("tid", "bbox", "conf", "tracked_time", "smpl", "3d_joints", "2d_joints", "camera")
SMPL_SHAPES: Mapping[str, tuple[int, ...]] = {"global_orient": (1, 3, 3), "body_pose": (23, 3, 3), "betas": (10,)}
SHAPES: Mapping[str, tuple[int, ...]] = {"bbox": (4,), "3d_joints": (JOINTS, 3), "2d_joints": (JOINTS * 2,),
                                         "camera": (3,)}


class PhalpOutputError(ValueError):
    """track.py's output is missing or not what PHALP writes; the message says what and where."""


@dataclass(frozen=True)
class PhalpTrack:
    """One track in one frame, checked: numbers as float64 arrays of the documented shapes."""

    track_id: int
    bbox_xywh: np.ndarray
    conf: float
    ghost: bool
    smpl: dict[str, np.ndarray]
    joints_3d: np.ndarray
    joints_2d: np.ndarray
    camera: np.ndarray
    camera_bbox: np.ndarray | None


def load(output_dir: Path) -> dict[Any, Any]:
    """The pickle track.py wrote under ``output_dir``; PhalpOutputError when there is none or it
    cannot be read."""
    import joblib  # here: only a phalp job needs it

    path = output_dir / RESULT_FILE
    if not path.is_file():
        raise PhalpOutputError(f"track.py wrote no {RESULT_FILE} (it exits 0 after catching its own errors: its "
                               "output, in the job's log, says what went wrong)")
    try:
        data = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same failure, with its reason
        raise PhalpOutputError(f"{RESULT_FILE} cannot be read with joblib.load: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise PhalpOutputError(f"{RESULT_FILE} holds a {type(data).__name__}, not PHALP's dict of frames")
    if not data:
        raise PhalpOutputError(f"{RESULT_FILE} holds no frames")
    return data


def _array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PhalpOutputError(f"{where} is not numeric ({type(value).__name__})") from None
    if array.shape != shape:
        raise PhalpOutputError(f"{where} has shape {array.shape}, expected {shape}")
    if not np.isfinite(array).all():
        raise PhalpOutputError(f"{where} holds NaN or infinite values")
    return array


def _scalar(value: Any, where: str) -> float:
    try:
        number = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise PhalpOutputError(f"{where} is not a number ({value!r:.60})") from None
    if not math.isfinite(number):
        raise PhalpOutputError(f"{where} is not finite")
    return number


def frame_tracks(key: Any, frame: Any) -> list[PhalpTrack]:
    """The checked tracks of one frame dict."""
    where = f"frame {str(key)!r}"
    if not isinstance(frame, Mapping):
        raise PhalpOutputError(f"{where} is a {type(frame).__name__}, not a dict")
    missing = [k for k in TRACK_KEYS if k not in frame]
    if missing:
        names = ", ".join(repr(k) for k in missing)
        raise PhalpOutputError(f"{where} has no {names} (its keys: {sorted(map(str, frame))})")
    count = len(frame["tid"])
    for k in TRACK_KEYS:
        if len(frame[k]) != count:
            raise PhalpOutputError(f"{where}: {k!r} has {len(frame[k])} entries for {count} track ids")
    boxes = frame.get("camera_bbox")
    tracks = []
    for i in range(count):
        at = f"{where}, track {i}"
        smpl = frame["smpl"][i]
        if not isinstance(smpl, Mapping) or not set(SMPL_SHAPES) <= set(smpl):
            raise PhalpOutputError(f"{at}: smpl must be a dict with {', '.join(SMPL_SHAPES)}")
        tid = _scalar(frame["tid"][i], f"{at}: tid")
        if tid != int(tid):
            raise PhalpOutputError(f"{at}: tid {tid} is not an integer")
        tracks.append(PhalpTrack(
            track_id=int(tid),
            bbox_xywh=_array(frame["bbox"][i], SHAPES["bbox"], f"{at}: bbox"),
            conf=_scalar(frame["conf"][i], f"{at}: conf"),
            ghost=_scalar(frame["tracked_time"][i], f"{at}: tracked_time") > 0,
            smpl={k: _array(smpl[k], shape, f"{at}: smpl.{k}") for k, shape in SMPL_SHAPES.items()},
            joints_3d=_array(frame["3d_joints"][i], SHAPES["3d_joints"], f"{at}: 3d_joints"),
            joints_2d=_array(frame["2d_joints"][i], SHAPES["2d_joints"], f"{at}: 2d_joints"),
            camera=_array(frame["camera"][i], SHAPES["camera"], f"{at}: camera"),
            camera_bbox=(_array(boxes[i], (3,), f"{at}: camera_bbox")
                         if isinstance(boxes, list | tuple) and len(boxes) == count else None),
        ))
    return tracks


def frames(data: Mapping[Any, Any]) -> Iterator[list[PhalpTrack]]:
    """Each frame's tracks, in frame order (the keys sorted). A frame is checked when it is reached:
    the error names the first bad one."""
    for key in sorted(data, key=str):
        yield frame_tracks(key, data[key])
