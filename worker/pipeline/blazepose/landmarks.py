"""BlazePose landmark model: region crops in, 33 image landmarks, 33 world landmarks and a pose flag out.

Follows MediaPipe's ``pose_landmark_by_roi`` graph for the full model: each region is cropped to
256x256 RGB in [0, 1]; the model returns 39 landmarks (33 body points, 2 auxiliary points for the
next region, 4 unused) as ``x, y, z, visibility, presence`` in crop pixels and logits, a pose flag
(already a probability), a 64x64x39 heatmap and 39 world landmarks in metres.

The regression is refined with the heatmap as MediaPipe does: for each landmark, the sigmoid of the
heatmap in a 7x7 window around the regressed position gives a confidence-weighted centroid, used when
the window's peak confidence is at least 0.5. That step is vectorised over every person and landmark
at once (gathering 49 values per landmark) instead of MediaPipe's per-landmark loops, and keeps two
quirks of theirs on purpose (truncation toward zero, no upper bound check on the row) for parity.

Landmarks are then mapped from the crop back into the frame through the region (so they come out in
frame pixels; z uses the same pixel scale as x), and world landmarks are rotated by the region angle
so that they are upright in the camera frame rather than in the crop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from worker.pipeline.blazepose.crops import CropWarper, FrameLike
from worker.pipeline.blazepose.regions import ANGLE, CX, CY, SIZE

INPUT_SIZE = 256
NUM_MODEL_LANDMARKS = 39
NUM_LANDMARKS = 33
AUX_SLICE = slice(33, 35)
HEATMAP_KERNEL = 7
HEATMAP_MIN_CONFIDENCE = 0.5
#: Pose flag below this means the region holds no person (the graph's ThresholdingCalculator, and
#: the solutions API's min_tracking_confidence default).
POSE_THRESHOLD = 0.5

#: The TFLite outputs the pipeline uses, in the order :class:`LandmarkModel` expects them: landmarks,
#: pose flag, heatmap, world landmarks. The segmentation mask (Identity_2) is never computed.
USED_OUTPUTS = ("Identity", "Identity_1", "Identity_3", "Identity_4")

#: ``model(x)`` with ``x`` an NHWC float tensor returns the :data:`USED_OUTPUTS`, batched.
Model = Callable[[torch.Tensor], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class PoseLandmarks:
    """Landmarks of a batch of regions, in the upright frame.

    ``image``: ``(N, 33, 5)`` = x, y, z in pixels, visibility, presence; ``aux``: ``(N, 2, 3)`` auxiliary
    points in pixels (hip centre and body scale point); ``world``: ``(N, 33, 3)`` metres, hip-centred;
    ``flag``: ``(N,)`` probability that the region holds a person.
    """

    image: np.ndarray
    aux: np.ndarray
    world: np.ndarray
    flag: np.ndarray

    def __len__(self) -> int:
        return len(self.flag)

    def take(self, index: np.ndarray | Sequence[int]) -> PoseLandmarks:
        index = np.asarray(index, dtype=np.int64)
        return PoseLandmarks(self.image[index], self.aux[index], self.world[index], self.flag[index])

    @staticmethod
    def empty() -> PoseLandmarks:
        return PoseLandmarks(np.zeros((0, NUM_LANDMARKS, 5)), np.zeros((0, 2, 3)), np.zeros((0, NUM_LANDMARKS, 3)),
                             np.zeros(0))  # fmt: skip


class LandmarkModel:
    """Runs the landmark model on all regions of a batch (any frames, any people) at once."""

    def __init__(self, model: Model, warper: CropWarper, max_batch: int | None = None) -> None:
        self.model = model
        self.warper = warper
        # On the CPU, batches beyond a few crops fall out of cache and get slower per crop, not faster.
        self.max_batch = max_batch or (4 if warper.device.type == "cpu" else 64)

    @torch.inference_mode()
    def __call__(self, frames: Sequence[FrameLike], sources: Sequence[int], regions: np.ndarray) -> PoseLandmarks:
        regions = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
        if len(regions) == 0:
            return PoseLandmarks.empty()
        batch = self.warper(frames, sources, regions, INPUT_SIZE, border="replicate")
        parts = [self.model(batch[i : i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        outputs = [torch.cat([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in range(4)]
        return decode(outputs[0], outputs[1], outputs[2], outputs[3], regions)


def refine_from_heatmap(xy: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
    """Heatmap-refined ``(N, K, 2)`` crop-normalised positions; ``heatmap`` is ``(N, H, W, K)`` logits."""
    n, h, w, k = heatmap.shape
    half = (HEATMAP_KERNEL - 1) // 2
    col = torch.trunc(xy[..., 0] * w).long()
    row = torch.trunc(xy[..., 1] * h).long()
    # MediaPipe tests the column twice and the row only from below; a row just past the bottom still
    # gets a partial window. Kept for parity.
    inside = (col >= 0) & (col < w) & (row >= 0)
    offsets = torch.arange(-half, half + 1, device=heatmap.device)
    rows = row[..., None, None] + offsets[:, None]  # (N, K, 7, 1)
    cols = col[..., None, None] + offsets[None, :]  # (N, K, 1, 7)
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    n_idx = torch.arange(n, device=heatmap.device)[:, None, None, None]
    k_idx = torch.arange(k, device=heatmap.device)[None, :, None, None]
    logits = heatmap[n_idx, rows.clamp(0, h - 1), cols.clamp(0, w - 1), k_idx]
    conf = torch.sigmoid(logits.float()) * valid
    total = conf.sum(dim=(-1, -2))
    peak = conf.amax(dim=(-1, -2))
    mean_col = (conf * cols).sum(dim=(-1, -2)) / total.clamp_min(1e-12)
    mean_row = (conf * rows).sum(dim=(-1, -2)) / total.clamp_min(1e-12)
    refine = inside & (peak >= HEATMAP_MIN_CONFIDENCE) & (total > 0)
    out = xy.clone()
    out[..., 0] = torch.where(refine, mean_col / w, xy[..., 0])
    out[..., 1] = torch.where(refine, mean_row / h, xy[..., 1])
    return out


def decode(
    raw_landmarks: torch.Tensor,
    raw_flag: torch.Tensor,
    heatmap: torch.Tensor,
    raw_world: torch.Tensor,
    regions: np.ndarray,
) -> PoseLandmarks:
    """Turn raw model outputs for ``regions`` into frame-pixel landmarks and rotated world landmarks."""
    n = raw_landmarks.shape[0]
    lm = raw_landmarks.reshape(n, NUM_MODEL_LANDMARKS, -1).float()
    xy = refine_from_heatmap(lm[..., :2] / INPUT_SIZE, heatmap)
    local = torch.cat([xy, lm[..., 2:3] / INPUT_SIZE, torch.sigmoid(lm[..., 3:5])], dim=-1).cpu().numpy()
    world = raw_world.reshape(n, NUM_MODEL_LANDMARKS, 3)[:, :NUM_LANDMARKS].float().cpu().numpy()
    flag = raw_flag.reshape(n).float().cpu().numpy().astype(np.float64)

    local = local.astype(np.float64)
    regions = np.asarray(regions, dtype=np.float64)
    cos = np.cos(regions[:, ANGLE])[:, None]
    sin = np.sin(regions[:, ANGLE])[:, None]
    size = regions[:, SIZE][:, None]
    u, v = local[..., 0] - 0.5, local[..., 1] - 0.5
    projected = np.empty_like(local)
    projected[..., 0] = regions[:, CX][:, None] + (cos * u - sin * v) * size
    projected[..., 1] = regions[:, CY][:, None] + (sin * u + cos * v) * size
    projected[..., 2] = local[..., 2] * size
    projected[..., 3:] = local[..., 3:]

    world = world.astype(np.float64)
    rotated = world.copy()
    rotated[..., 0] = cos * world[..., 0] - sin * world[..., 1]
    rotated[..., 1] = sin * world[..., 0] + cos * world[..., 1]
    # A non-finite value anywhere (a degenerate region) means no usable person, never NaN in a result.
    broken = ~(np.isfinite(projected).all(axis=(1, 2)) & np.isfinite(rotated).all(axis=(1, 2)) & np.isfinite(flag))
    if broken.any():
        flag[broken] = 0.0
        projected[broken] = 0.0
        rotated[broken] = 0.0
    return PoseLandmarks(projected[:, :NUM_LANDMARKS], projected[:, AUX_SLICE, :3], rotated, flag)
