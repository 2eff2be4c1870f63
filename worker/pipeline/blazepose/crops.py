"""Batched crops of rotated square regions into model-sized RGB tensors, made where the model runs.

Both models see the frame through the same kind of mapping MediaPipe's ImageToTensorCalculator uses:
output pixel ``(col, row)`` samples the source at ``centre + R(angle) @ ((col/out - 1/2) * size,
(row/out - 1/2) * size)`` with bilinear interpolation, replicating the border for the landmark crops and
padding with black for the detector's letterbox. Matching that convention to the half pixel is what
keeps our landmarks within a fraction of a pixel of MediaPipe's.

On the CPU the warp is OpenCV's on the uint8 frame (what MediaPipe itself runs, and much cheaper than
turning a 1080p frame into floats); on CUDA the frame is uploaded once and every crop is taken with one
``grid_sample`` per frame, so the crops never leave the GPU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from worker.pipeline.blazepose.regions import ANGLE, CX, CY, SIZE

Border = Literal["replicate", "zero"]


class FrameLike(Protocol):
    """What the warper needs of a frame: a stable key and the upright BGR uint8 image."""

    @property
    def index(self) -> int: ...

    @property
    def image(self) -> np.ndarray: ...


def crop_matrices(regions: np.ndarray, out_size: int) -> np.ndarray:
    """``(N, 2, 3)`` affine maps from output pixel ``(col, row, 1)`` to source pixel ``(x, y)``."""
    regions = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
    cos, sin = np.cos(regions[:, ANGLE]), np.sin(regions[:, ANGLE])
    size = regions[:, SIZE]
    step = size / out_size
    m = np.empty((len(regions), 2, 3))
    m[:, 0, 0] = cos * step
    m[:, 0, 1] = -sin * step
    m[:, 0, 2] = regions[:, CX] - (cos - sin) * size / 2
    m[:, 1, 0] = sin * step
    m[:, 1, 1] = cos * step
    m[:, 1, 2] = regions[:, CY] - (sin + cos) * size / 2
    return m


def letterbox_region(width: int, height: int) -> np.ndarray:
    """The whole frame as one square region (the detector's keep-aspect-ratio input)."""
    return np.array([[width / 2, height / 2, max(width, height), 0.0]])


class CropWarper:
    """Cuts ``out_size``-square RGB crops in [0, 1], NHWC float32, on ``device``.

    Keeps the last few frames uploaded to the GPU, because a frame is often cropped twice (detector,
    then landmarks). Entries hold the source array itself and are reused only for that same array, so
    frame 0 of the next video can never hit frame 0 of the last one.
    """

    def __init__(
        self, device: torch.device, cache_frames: int = 8, sampler: Literal["auto", "opencv", "torch"] = "auto"
    ) -> None:
        self.device = device
        if sampler == "opencv" and device.type != "cpu":
            raise ValueError("the OpenCV sampler works on CPU tensors only")
        #: ``opencv`` on the CPU, ``torch`` (grid_sample) elsewhere; tests force ``torch`` on the CPU.
        self.sampler = ("opencv" if device.type == "cpu" else "torch") if sampler == "auto" else sampler
        self._cache: OrderedDict[int, tuple[np.ndarray, torch.Tensor]] = OrderedDict()
        self._cache_frames = cache_frames

    def clear(self) -> None:
        """Forget uploaded frames (at the end of a video, so they do not outlive it)."""
        self._cache.clear()

    def __call__(
        self,
        frames: Sequence[FrameLike],
        sources: Sequence[int],
        regions: np.ndarray,
        out_size: int,
        border: Border,
    ) -> torch.Tensor:
        """Crop ``regions[i]`` out of ``frames[sources[i]]`` for every i, in one batch."""
        regions = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
        if len(regions) == 0:
            return torch.empty((0, out_size, out_size, 3), device=self.device)
        matrices = crop_matrices(regions, out_size)
        if self.sampler == "opencv":
            return self._warp_opencv(frames, sources, matrices, out_size, border)
        return self._warp_torch(frames, sources, matrices, out_size, border)

    @staticmethod
    def _warp_opencv(
        frames: Sequence[FrameLike], sources: Sequence[int], matrices: np.ndarray, out_size: int, border: Border
    ) -> torch.Tensor:
        out = np.empty((len(matrices), out_size, out_size, 3), dtype=np.uint8)
        mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
        for i, (src, m) in enumerate(zip(sources, matrices, strict=True)):
            cv2.warpAffine(
                frames[src].image, m, (out_size, out_size), dst=out[i],
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=mode, borderValue=0,
            )  # fmt: skip
        rgb = torch.from_numpy(out).flip(-1)
        return rgb.to(torch.float32).mul_(1.0 / 255.0)

    def _device_frame(self, frame: FrameLike) -> torch.Tensor:
        cached = self._cache.get(frame.index)
        if cached is not None and cached[0] is frame.image:
            self._cache.move_to_end(frame.index)
            return cached[1]
        image = torch.from_numpy(np.ascontiguousarray(frame.image)).to(self.device, non_blocking=True)
        tensor = image.permute(2, 0, 1).flip(0).unsqueeze(0).to(torch.float32)  # 1x3xHxW, RGB, 0..255
        self._cache[frame.index] = (frame.image, tensor)
        self._cache.move_to_end(frame.index)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return tensor

    def _warp_torch(
        self, frames: Sequence[FrameLike], sources: Sequence[int], matrices: np.ndarray, out_size: int, border: Border
    ) -> torch.Tensor:
        """Bilinear sampling with ``grid_sample``; identical maths to the OpenCV path, without uint8 rounding."""
        out = torch.empty((len(matrices), 3, out_size, out_size), device=self.device)
        pix = torch.arange(out_size, device=self.device, dtype=torch.float64)
        rows, cols = torch.meshgrid(pix, pix, indexing="ij")
        ones = torch.ones_like(rows)
        dst = torch.stack([cols, rows, ones], dim=-1).reshape(-1, 3)  # (S*S, 3)
        mats = torch.from_numpy(matrices).to(self.device)
        src_xy = torch.einsum("nij,pj->npi", mats, dst)  # (N, S*S, 2) source pixels
        sources_arr = np.asarray(sources)
        for src in np.unique(sources_arr):
            idx = np.nonzero(sources_arr == src)[0]
            image = self._device_frame(frames[int(src)])
            h, w = image.shape[-2:]
            grid = src_xy[torch.from_numpy(idx).to(self.device)].clone()
            grid[..., 0] = (2 * grid[..., 0] + 1) / w - 1
            grid[..., 1] = (2 * grid[..., 1] + 1) / h - 1
            grid = grid.reshape(1, len(idx) * out_size, out_size, 2).to(torch.float32)
            sampled = F.grid_sample(
                image, grid, mode="bilinear", align_corners=False,
                padding_mode="border" if border == "replicate" else "zeros",
            )  # fmt: skip
            crops = sampled.reshape(3, len(idx), out_size, out_size).permute(1, 0, 2, 3)
            out[torch.from_numpy(idx).to(self.device)] = crops
        return out.permute(0, 2, 3, 1).mul_(1.0 / 255.0)
