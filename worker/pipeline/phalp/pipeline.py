"""The phalp backend as a Pipeline (worker/pipeline/contract.py): the factory
``worker.pipeline.phalp.pipeline:create``, which the child loads for jobs whose backend is phalp
(worker/pipeline/backends.py).

Per job: a private directory with the input as ``input.mp4`` (invocation.py), the operator's track.py
run to its end (the worker's deadline, cancel and crash handling bound it: it runs in the child's
process group), its pickle read and checked in full (results.py) and then each frame handed on through
``emit_frame``, as every pipeline's frames are, into the same per-frame storage (pose_frame_rows: the
standard columns, and the PHALP fields in ``extra``). The directory is removed whatever happens.

Progress: the frame count is reported before track.py starts (it stretches the default deadline,
POSE_TIMEOUT_PER_FRAME_S); track.py itself reports nothing while it runs, so the worker does not apply
its stall guard to phalp jobs (worker/daemon.py) and the total deadline is what bounds a run.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

import numpy as np

from worker.pipeline.contract import FrameSink, ProgressFn
from worker.pipeline.io.keypoints import KEYPOINT_NAMES, SCHEMA, SKELETON
from worker.pipeline.phalp import results
from worker.pipeline.phalp.config import PhalpConfig, override_key
from worker.pipeline.phalp.invocation import TrackRun, make_work_dir, prepare_input, track_command
from worker.pipeline.phalp.joints import blazepose_points, joints_to_pixels
from worker.pipeline.phalp.pipeline_params import PARAMS
from worker.pipeline.phalp.results import PhalpOutputError, PhalpTrack
from worker.pipeline.phalp.smpl import SmplModel

log = logging.getLogger("pose_service.phalp")

MODEL_NAME = "4D-Humans (HMR 2.0) + PHALP, the operator's checkout"


class PhalpRunError(RuntimeError):
    """track.py failed (a non-zero exit); the message carries its last output."""


def person(track: PhalpTrack, width: int, height: int, mesh: SmplModel | None = None) -> dict[str, Any]:
    """One result@1 person: the standard fields (the 33 keypoints mapped from PHALP's joints) and
    PHALP's own (docs/phalp.md)."""
    joints_px = joints_to_pixels(track.joints_2d, width, height)
    keypoints, world = blazepose_points(track.joints_3d, joints_px, track.camera, width, height)
    x, y, w, h = (float(v) for v in track.bbox_xywh)
    out: dict[str, Any] = {
        "track_id": track.track_id,
        "bbox": [round(x, 2), round(y, 2), round(x + w, 2), round(y + h, 2)],
        "score": round(track.conf, 4),
        "keypoints": np.concatenate([keypoints[:, :3].round(2), keypoints[:, 3:].round(4)], axis=1).tolist(),
        "world": world.round(4).tolist(),
        "ghost": track.ghost,
        "smpl": {k: v.round(6).tolist() for k, v in track.smpl.items()},
        "joints_3d": track.joints_3d.round(5).tolist(),
        "joints_2d_px": joints_px.round(2).tolist(),
        "camera": track.camera.round(5).tolist(),
    }
    if track.camera_bbox is not None:
        out["camera_bbox"] = track.camera_bbox.round(5).tolist()
    if mesh is not None:
        vertices = mesh.vertices(track.smpl["global_orient"], track.smpl["body_pose"], track.smpl["betas"])
        out["vertices"] = vertices.round(5).tolist()
        out["faces"] = mesh.faces.tolist()
    return out


class PhalpPipeline:
    emits_frames = True

    def __init__(self, config: PhalpConfig) -> None:
        config.require()  # PhalpUnavailable: the child's "unavailable" reason when phalp is the default
        self.config = config
        self._mesh: SmplModel | None = None

    def mesh_model(self) -> SmplModel | None:
        """The operator's SMPL model (POSE_SMPL_MODEL), loaded on first use; None when unset."""
        if self.config.smpl_model is None:
            return None
        if self._mesh is None:
            self._mesh = SmplModel.load(self.config.smpl_model)
        return self._mesh

    def device(self) -> str:
        devices = [o.split("=", 1)[1] for o in self.config.overrides() if override_key(o) == "device" and "=" in o]
        return devices[-1] if devices else "cuda"  # PHALP's default

    def __call__(self, video_path: str, params: dict[str, Any], progress: ProgressFn,
                 emit_frame: FrameSink | None = None) -> dict[str, Any]:
        started = time.monotonic()
        # params declared by the pose pipeline (a job left to a phalp-default worker) mean nothing here
        options = PARAMS.validate({k: v for k, v in params.items() if k in PARAMS.params})
        mesh = self.mesh_model() if options["mesh"] else None
        if options["mesh"] and mesh is None:
            log.warning("mesh requested, but POSE_SMPL_MODEL is not set on this worker: no vertices")
        work_dir = make_work_dir()
        try:
            prepared = prepare_input(video_path, work_dir)
            info = prepared.info
            assert info.fps is not None
            decode_s = time.monotonic() - started
            progress(0, prepared.frames)
            out_dir = work_dir / "out"
            out_dir.mkdir()
            run = TrackRun(track_command(self.config, prepared, out_dir, work_dir), cwd=work_dir)
            code = run.wait()
            inference_s = time.monotonic() - started - decode_s
            tail = run.output_tail()
            if code != 0:
                what = f"exited with status {code}" if code > 0 else f"was killed by signal {-code}"
                if "out of memory" in tail.lower():
                    raise RuntimeError(f"track.py ran out of memory: {tail[-400:]}")  # resource_exhausted
                raise PhalpRunError(f"track.py {what}; its last output:\n{tail}")
            try:
                data = results.load(out_dir)
                parsed = list(results.frames(data))  # all checked before any frame is handed on
            except PhalpOutputError as exc:
                if "out of memory" in tail.lower():
                    raise RuntimeError(f"track.py ran out of memory (it exited 0 without a result): "
                                       f"{tail[-400:]}") from None
                raise PhalpOutputError(f"{exc}; track.py's last output:\n{tail}" if tail else str(exc)) from None
            del data
            kept: list[dict[str, Any]] = []
            for index, tracks in enumerate(parsed):
                frame = {"index": index, "time_s": round(index / info.fps, 6),
                         "people": [person(t, info.width, info.height, mesh) for t in tracks]}
                if emit_frame is not None:
                    emit_frame(frame)
                else:
                    kept.append(frame)
                progress(index + 1, len(parsed))
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        count = len(parsed)
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "video": {"width": info.width, "height": info.height, "fps": round(info.fps, 6), "frames": count,
                      "duration_s": round(count / info.fps, 6), "rotation": info.rotation,
                      "skipped_frames": max(0, prepared.frames - count)},
            "model": {"name": MODEL_NAME, "backend": "phalp", "device": self.device(), "weights_sha256": ""},
            "keypoint_names": list(KEYPOINT_NAMES),
            "skeleton": [list(edge) for edge in SKELETON],
            "timings": {"decode_s": round(decode_s, 4), "inference_s": round(inference_s, 4),
                        "total_s": round(time.monotonic() - started, 4)},
        }
        if emit_frame is None:
            document["frames"] = kept
        return document


def create() -> PhalpPipeline:
    """The factory the child loads: settings from its environment (the worker passes them)."""
    return PhalpPipeline(PhalpConfig.from_env())
