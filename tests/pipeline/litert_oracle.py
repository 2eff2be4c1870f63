"""LiteRT as the oracle for the torch rebuild of the BlazePose graphs, and the inputs both are fed.

Shared by the parity tests (``test_tflite_parity.py``) and the parity report (``bench/tensor_parity.py``),
so that the report measures exactly what the tests assert on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from jobs.sample_media import shared_dir
from worker.pipeline.runtime.tflite_torch import TFLiteModule

SHARED = shared_dir()
VIDEO = SHARED / "media" / "runner_1080p.mp4"
REFERENCE = SHARED / "reference" / "runner_1080p.mediapipe.static.json"

#: The inputs the parity tests compare on and the bounds below were calibrated on: every 15th frame of
#: runner_1080p.mp4 (12 people crops, 12 letterboxed frames) and 8 uniform-noise images per model.
PARITY_FRAMES = tuple(range(0, 180, 15))
PARITY_SEEDS = tuple(range(8))


def litert(model: Path | bytes, x: np.ndarray, resolver: OpResolverType = OpResolverType.AUTO) -> list[np.ndarray]:
    """Run LiteRT on each item of the batch ``x`` (LiteRT models have batch 1) and stack the results.

    ``AUTO`` is what MediaPipe runs (XNNPACK); ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` is LiteRT's own
    optimised kernels, another float32 implementation of the same graph.
    """
    kwargs = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": model}
    interpreter = Interpreter(num_threads=2, experimental_op_resolver_type=resolver, **kwargs)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    per_item = []
    for item in x:
        interpreter.set_tensor(inp["index"], item[None].astype(inp["dtype"]))
        interpreter.invoke()
        per_item.append([interpreter.get_tensor(o["index"]).copy() for o in interpreter.get_output_details()])
    return [np.concatenate(column) for column in zip(*per_item, strict=True)]


def torch_outputs(module: TFLiteModule, x: np.ndarray) -> list[np.ndarray]:
    with torch.inference_mode():
        return [y.numpy() for y in module(torch.from_numpy(x))]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x.astype(np.float64), -80.0, 80.0)))


# ---------------------------------------------------------------------------------------------------
# what is compared, and how closely

Extract = Callable[[list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Check:
    """One compared quantity: how to get it from the outputs, the issue's bound for its kind, and the
    bound the tests hold it to on real / random inputs: the issue's, or where LiteRT's own float32
    rounding is larger than that, about twice the largest torch-vs-LiteRT difference measured on the
    parity inputs (``bench/tensor_parity.py`` prints them all)."""

    name: str
    extract: Extract
    target: float
    real: float
    noise: float


def _landmarks(outputs: list[np.ndarray]) -> np.ndarray:
    return outputs[0].reshape(len(outputs[0]), 39, 5)


COORDINATE, PROBABILITY = 1e-3, 1e-4  # the bounds: crop pixels; scores, probabilities, heatmap

DETECTOR_CHECKS = (
    # raw box + keypoint regressors, pixels of the 224 input (values up to ~800 on off-person anchors)
    Check("regressors", lambda o: o[0], COORDINATE, real=3e-3, noise=1e-3),
    Check("score", lambda o: sigmoid(o[1]), PROBABILITY, real=1e-4, noise=1e-4),
)
LANDMARK_CHECKS = (
    Check("landmark x/y", lambda o: _landmarks(o)[..., :2], COORDINATE, real=1e-3, noise=4e-3),
    Check("landmark z", lambda o: _landmarks(o)[..., 2], COORDINATE, real=3e-3, noise=4e-2),
    Check("visibility/presence", lambda o: sigmoid(_landmarks(o)[..., 3:]), PROBABILITY, real=1e-4, noise=3e-4),
    Check("pose flag", lambda o: o[1], PROBABILITY, real=1e-4, noise=1e-4),
    Check("segmentation", lambda o: sigmoid(o[2]), PROBABILITY, real=2e-3, noise=1e-2),
    Check("heatmap", lambda o: sigmoid(o[3]), PROBABILITY, real=1e-4, noise=1e-4),
    Check("world landmarks (m)", lambda o: o[4], COORDINATE, real=2e-4, noise=2e-4),
)


def max_differences(ours: list[np.ndarray], theirs: list[np.ndarray], checks: tuple[Check, ...]) -> dict[str, float]:
    """Largest absolute difference per check."""
    assert [o.shape for o in ours] == [t.shape for t in theirs]
    return {check.name: float(np.abs(check.extract(ours) - check.extract(theirs)).max()) for check in checks}


def landmark_xyz(outputs: list[np.ndarray]) -> np.ndarray:
    """The 39 landmarks' x, y, z (crop pixels), for tests that look at them directly."""
    return _landmarks(outputs)[..., :3]


# ---------------------------------------------------------------------------------------------------
# inputs


def letterbox(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    resized = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - resized.shape[0]) // 2, (size - resized.shape[1]) // 2
    out[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return out


def person_crop(rgb: np.ndarray, landmarks: list[list[float]], size: int) -> np.ndarray:
    """A square crop around MediaPipe's reference landmarks for the frame, 30% margin."""
    h, w = rgb.shape[:2]
    points = np.asarray(landmarks)[:, :2] * [w, h]
    center = (points.min(0) + points.max(0)) / 2
    half = (points.max(0) - points.min(0)).max() * 0.65
    src = np.float32([center - half, center + [half, -half], center + [-half, half]])
    dst = np.float32([[0, 0], [size, 0], [0, size]])
    return cv2.warpAffine(rgb, cv2.getAffineTransform(src, dst), (size, size))


def real_inputs(frames: tuple[int, ...]) -> dict[str, np.ndarray]:
    """For the given frames of runner_1080p.mp4 (each with a reference pose): the detector input
    (letterboxed 224², [-1, 1]) and the landmark input (256² person crop, [0, 1]).

    Raises FileNotFoundError when the shared media is missing.
    """
    for path in (VIDEO, REFERENCE):
        if not path.is_file():
            raise FileNotFoundError(f"shared media not available: {path}")
    reference = json.loads(REFERENCE.read_text())["frames"]
    capture = cv2.VideoCapture(str(VIDEO))
    detector_in, landmark_in = [], []
    try:
        for index in range(max(frames) + 1):
            ok, bgr = capture.read()
            if not ok:
                raise ValueError(f"could not read frame {index} of {VIDEO}")
            if index in frames:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                detector_in.append(letterbox(rgb, 224).astype(np.float32) / 127.5 - 1.0)
                landmark_in.append(person_crop(rgb, reference[index]["landmarks"], 256).astype(np.float32) / 255.0)
    finally:
        capture.release()
    return {"detector": np.stack(detector_in), "landmark": np.stack(landmark_in)}


def noise_inputs(seeds: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Uniform noise over each model's input range, one image per seed."""

    def noise(low: float, shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([np.random.default_rng(s).uniform(low, 1, (1, *shape)) for s in seeds]).astype(np.float32)

    return {"detector": noise(-1.0, (224, 224, 3)), "landmark": noise(0.0, (256, 256, 3))}
