"""The analysis of one track from its arrays (:func:`analyze_track`), and the analysis document,
``pose-service/analysis@1`` (DESIGN.md section 8), from tracks (:func:`build_document`) or from a
result@1 document (:func:`tracks_from_result`).

Per track, ``frames`` are every frame index from the track's first to its last appearance; a frame in
which it was missing or untrusted is filled when the gap is short (``filled`` lists the frames where
any keypoint an angle uses was filled, whether missing, untrusted or an outlier) and null otherwise.
``angles`` are from the filtered keypoints, ``angles_raw`` from the keypoints as the pose stage gave
them (untrusted ones null, nothing filled or filtered), ``angular_velocity`` (degrees per second) from
the filtered angles. ``yaw`` is the body's (rotation.py), ``yaw_shoulders`` and ``yaw_hips`` its two
lines'. The fields beyond DESIGN.md's are additions; no listed one changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from worker.pipeline.analysis import angles as angle_defs
from worker.pipeline.analysis import rotation, series
from worker.pipeline.io.keypoints import KEYPOINT_NAMES

SCHEMA = "pose-service/analysis@1"
#: The analysis code's own version: changes whenever the same input and params would give other numbers.
VERSION = "1"

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Least deviation an outlier must have: world metres, image pixels (rounding and tremor are not outliers).
HAMPEL_FLOOR = {"world": 0.01, "image": 2.0}


@dataclass(frozen=True)
class TrackInput:
    """One track as the pose stage gave it: the frame indexes where it was seen (F,), its keypoints
    (F, 33, 5: x_px, y_px, z, visibility, presence) and world landmarks (F, 33, 3)."""

    track_id: int
    frames: IntArray
    keypoints: FloatArray
    world: FloatArray


@dataclass(frozen=True)
class TrackAnalysis:
    track_id: int
    frames: IntArray  # (T,) contiguous frame indexes
    filled: NDArray[np.bool_]  # (T,)
    outliers: NDArray[np.bool_]  # (T,)
    angles: dict[str, FloatArray]
    angles_raw: dict[str, FloatArray]
    angular_velocity: dict[str, FloatArray]
    yaw: rotation.Yaw
    spins: list[rotation.Spin]


def _timeline(track: TrackInput, min_visibility: float) -> tuple[IntArray, FloatArray, FloatArray]:
    """Contiguous frame indexes and world (T, 33, 3) / image (T, 33, 2) coordinates on them, NaN where
    the track was missing or a keypoint's visibility is below ``min_visibility``."""
    first, last = int(track.frames.min()), int(track.frames.max())
    frames = np.arange(first, last + 1, dtype=np.int64)
    rows = track.frames - first
    world = np.full((frames.size, len(KEYPOINT_NAMES), 3), np.nan)
    image = np.full((frames.size, len(KEYPOINT_NAMES), 2), np.nan)
    trusted = track.keypoints[:, :, 3] >= min_visibility
    world[rows] = np.where(trusted[..., None], track.world, np.nan)
    image[rows] = np.where(trusted[..., None], track.keypoints[:, :, :2], np.nan)
    return frames, world, image


def analyze_track(track: TrackInput, fps: float, params: Mapping[str, Any]) -> TrackAnalysis:
    """Clean the keypoints the angles and the yaw use, compute angles (raw and filtered), angular
    velocities, yaw and spins. ``params`` are validated analysis params (params.PARAMS.validate)."""
    frames, world, image = _timeline(track, params["min_visibility"])
    used = np.asarray(sorted(set(angle_defs.used_keypoints()) | set(rotation.YAW_KEYPOINTS)))
    max_gap = int(round(params["max_gap_s"] * fps))
    cleaned: dict[str, series.Cleaned] = {}
    for name, coords in (("world", world), ("image", image)):
        dims = coords.shape[2]
        flat = coords[:, used].reshape(frames.size, used.size * dims)
        cleaned[name] = series.clean(
            flat, fps, max_gap=max_gap, hampel_window=params["hampel_window"],
            hampel_sigmas=params["hampel_sigmas"], hampel_floor=HAMPEL_FLOOR[name], groups=used.size,
            method=params["filter"], cutoff_hz=params["cutoff_hz"], order=params["order"],
            one_euro_min_cutoff=params["one_euro_min_cutoff"], one_euro_beta=params["one_euro_beta"])

    def full(flat: FloatArray, dims: int) -> FloatArray:
        out = np.full((frames.size, len(KEYPOINT_NAMES), dims), np.nan)
        out[:, used] = flat.reshape(frames.size, used.size, dims)
        return out

    world_f, image_f = full(cleaned["world"].filtered, 3), full(cleaned["image"].filtered, 2)
    angles = angle_defs.compute_all(world_f, image_f)
    angles_raw = angle_defs.compute_all(world, image)
    velocity = {name: angle_defs.angular_velocity(values, fps) for name, values in angles.items()}
    yaw = rotation.body_yaw(world_f)
    spins = rotation.detect_spins(yaw.body, fps, min_degrees=params["spin_min_degrees"],
                                  reversal_degrees=params["spin_reversal_degrees"],
                                  min_rate_dps=params["spin_min_rate_dps"])
    filled = np.asarray(cleaned["world"].filled.any(axis=1) | cleaned["image"].filled.any(axis=1), dtype=bool)
    outliers = np.asarray(cleaned["world"].outliers.any(axis=1) | cleaned["image"].outliers.any(axis=1), dtype=bool)
    return TrackAnalysis(track_id=track.track_id, frames=frames, filled=filled, outliers=outliers,
                         angles=angles, angles_raw=angles_raw, angular_velocity=velocity, yaw=yaw, spins=spins)


def tracks_from_result(result: Mapping[str, Any]) -> Iterator[TrackInput]:
    """The tracks of a result@1 document, in order of track id. ValueError for a document without
    ``frames`` (one whose frames were streamed out: put them back first)."""
    if "frames" not in result:
        raise ValueError("the result document has no frames (a streamed result: read it back with its frames)")
    per_track: dict[int, tuple[list[int], list[Any], list[Any]]] = {}
    for frame in result["frames"]:
        for person in frame["people"]:
            frames, kps, worlds = per_track.setdefault(int(person["track_id"]), ([], [], []))
            frames.append(int(frame["index"]))
            kps.append(person["keypoints"])
            worlds.append(person["world"])
    for track_id in sorted(per_track):
        frames, kps, worlds = per_track[track_id]
        order = np.argsort(np.asarray(frames), kind="stable")
        yield TrackInput(track_id=track_id, frames=np.asarray(frames, dtype=np.int64)[order],
                         keypoints=np.asarray(kps, dtype=np.float64)[order],
                         world=np.asarray(worlds, dtype=np.float64)[order])


def fps_of(result: Mapping[str, Any]) -> float:
    """The video's fps from the document, else from the frames' times; ValueError when neither says."""
    fps = (result.get("video") or {}).get("fps")
    if fps:
        return float(fps)
    frames = result.get("frames") or []
    if len(frames) >= 2:
        span = frames[-1]["time_s"] - frames[0]["time_s"]
        steps = frames[-1]["index"] - frames[0]["index"]
        if span > 0 and steps > 0:
            return float(steps / span)
    raise ValueError("the result document has no fps and too few timed frames to tell it")


#: Decimal digits each series keeps (0.01° is far below what the keypoints resolve); yaw keeps 2.
SERIES_DIGITS = {"angles": 2, "angles_raw": 2, "angular_velocity": 1}
#: The yaw series: the document's key and the line (rotation.Yaw's field) it holds.
YAW_SERIES = (("yaw", "body"), ("yaw_shoulders", "shoulders"), ("yaw_hips", "hips"))


def rounded_series(track: TrackAnalysis) -> Iterator[tuple[str, str, FloatArray]]:
    """Every series of the track as the document and the database keep it: ``(series, name, values)``,
    values rounded (NaN: null) — a series per angle name for ``angles``, ``angles_raw`` and
    ``angular_velocity``, then ``("yaw", key, ...)`` for each of YAW_SERIES."""
    for key, digits in SERIES_DIGITS.items():
        for name, values in getattr(track, key).items():
            yield key, name, np.round(values, digits)
    for key, line in YAW_SERIES:
        yield "yaw", key, np.round(getattr(track.yaw, line), 2)


def spin_objects(track: TrackAnalysis, stance: str) -> list[dict[str, Any]]:
    """The track's spins as the document lists them."""
    frames = track.frames
    return [{"start_frame": int(frames[s.start]), "end_frame": int(frames[s.end]), "degrees": s.degrees,
             "measured_degrees": s.measured_degrees, "direction": s.direction(stance)} for s in track.spins]


def _numbers(values: FloatArray) -> list[float | None]:
    """JSON numbers, NaN as null."""
    return [None if v != v else v for v in values.tolist()]  # v != v: NaN


def track_object(track: TrackAnalysis, stance: str) -> dict[str, Any]:
    """One entry of the document's ``tracks``."""
    frames = track.frames
    out: dict[str, Any] = {"track_id": track.track_id, "frames": frames.tolist(),
                           "filled": frames[track.filled].tolist(), "outliers": frames[track.outliers].tolist(),
                           **{key: {} for key in SERIES_DIGITS}}
    for series_key, name, values in rounded_series(track):
        if series_key == "yaw":
            out[name] = _numbers(values)
        else:
            out[series_key][name] = _numbers(values)
    out["spins"] = spin_objects(track, stance)
    return out


def build_document(tracks: Iterable[TrackAnalysis], *, params: Mapping[str, Any], fps: float,
                   source: Any = None, model: Any = None) -> dict[str, Any]:
    """The analysis@1 document; ``source`` says where the keypoints came from (a job id, a file name),
    ``model`` is the pose model's description (result@1's ``model``)."""
    return {
        "schema": SCHEMA,
        "provenance": {"source": source, "model": model, "fps": round(float(fps), 6), "params": dict(params),
                       "version": VERSION},
        "angle_names": angle_defs.angle_names(),
        "tracks": [track_object(t, params["stance"]) for t in tracks],
    }
