"""SSD anchors of the BlazePose detector.

The detector regresses every box and keypoint relative to a fixed grid of anchors that the network was
trained with; the grid is not stored in the .tflite file, so it has to be regenerated here with exactly
the options of MediaPipe's ``pose_detection_cpu`` graph, or every decoded box shifts. With
``fixed_anchor_size`` all anchors are unit-sized and only their centres matter, but the layer/stride
grouping still decides how many anchors sit on each cell, so the general SSD scheme is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    """The SsdAnchorsCalculator options that matter for BlazePose (defaults: the pose detector's)."""

    input_size: int = 224
    num_layers: int = 5
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    strides: tuple[int, ...] = (8, 16, 32, 32, 32)
    aspect_ratios: tuple[float, ...] = (1.0,)
    offset: float = 0.5
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


POSE_DETECTOR_ANCHORS = AnchorOptions()


def _layer_scale(options: AnchorOptions, layer: int) -> float:
    if options.num_layers == 1:
        return (options.min_scale + options.max_scale) / 2
    return options.min_scale + (options.max_scale - options.min_scale) * layer / (options.num_layers - 1)


def ssd_anchors(options: AnchorOptions = POSE_DETECTOR_ANCHORS) -> np.ndarray:
    """Anchors as a ``(N, 4)`` float32 array of ``[x_center, y_center, width, height]``, normalised.

    Consecutive layers that share a stride share one feature map, and their anchors are interleaved per
    cell; that ordering is what the model's 2254 outputs follow (for the 224 px detector:
    28x28x2 + 14x14x2 + 7x7x6).
    """
    blocks: list[np.ndarray] = []
    layer = 0
    while layer < options.num_layers:
        sizes: list[tuple[float, float]] = []  # (width, height) of each anchor on a cell
        last = layer
        while last < options.num_layers and options.strides[last] == options.strides[layer]:
            scale = _layer_scale(options, last)
            for ratio in options.aspect_ratios:
                sizes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            if options.interpolated_scale_aspect_ratio > 0:
                next_scale = 1.0 if last == options.num_layers - 1 else _layer_scale(options, last + 1)
                mid = math.sqrt(scale * next_scale)
                ratio = options.interpolated_scale_aspect_ratio
                sizes.append((mid * math.sqrt(ratio), mid / math.sqrt(ratio)))
            last += 1
        cells = math.ceil(options.input_size / options.strides[layer])
        centres = (np.arange(cells, dtype=np.float64) + options.offset) / cells
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        per_cell = len(sizes)
        wh = np.ones((per_cell, 2)) if options.fixed_anchor_size else np.asarray(sizes, dtype=np.float64)
        block = np.empty((cells, cells, per_cell, 4))
        block[..., 0] = cx[..., None]
        block[..., 1] = cy[..., None]
        block[..., 2:] = wh
        blocks.append(block.reshape(-1, 4))
        layer = last
    return np.concatenate(blocks).astype(np.float32)
