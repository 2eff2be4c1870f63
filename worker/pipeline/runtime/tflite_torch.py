"""Run TFLite models (the BlazePose detector and landmark model) as ordinary torch modules.

Why not LiteRT at run time: LiteRT runs one image at a time on the CPU. Rebuilding the graph in torch
gives batching for free and CUDA when there is a GPU, while the ``.tflite`` file stays the single source
of the weights (DESIGN.md section 6). LiteRT remains the test oracle (tests/pipeline/test_tflite_parity.py).

Usage::

    model = load_tflite(path, device="cuda")          # parse, fold constants, build nn.Conv2d layers
    with torch.inference_mode():                        # no autograd bookkeeping: faster, less memory
        outputs = model(batch_nhwc)                     # tuple, in the TFLite output order

``model(x)`` takes a float tensor shaped like the TFLite input but with any batch size (NHWC for images),
on any device/dtype (it is moved to the model's), and returns float32 tensors in TFLite's layouts (NHWC
for rank 4). Always call it under ``torch.inference_mode()`` (or at least ``torch.no_grad()``): the
parameters do not require grad, but inference mode also skips version counting on every intermediate.
``model.half()`` runs in float16 (sensible on CUDA only); outputs are still returned as float32.
``load_tflite(..., outputs=[...])`` computes only some outputs and skips the layers only others need.

Speed: activations stay in channels-last memory (TFLite's own NHWC bytes), so no permute happens
inside the graph; explicit PADs and residual ADDs are fused into the convolutions at load time. On CPU
the convolutions use oneDNN's fused kernel with weights pre-packed once (see ``tfl/ops.py``). On CUDA,
torch's default lets cuDNN use TF32 on Ampere and newer GPUs, about 1e-3 relative error, harmless for
pose estimation; set ``torch.backends.cudnn.allow_tf32 = False`` for float32-exact parity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from worker.pipeline.runtime.tfl.convert import Plan, UnsupportedOperator, convert
from worker.pipeline.runtime.tfl.reader import read_graph

__all__ = ["TFLiteModule", "UnsupportedOperator", "load_tflite"]


class TFLiteModule(nn.Module):
    """A TFLite graph as an ``nn.Module``, executed by a precomputed list of steps.

    Attributes: ``input_names``/``output_names`` (TFLite tensor names), ``input_shape`` (of the first
    input, batch 1 as in the file), ``input_shapes`` and ``output_shapes`` (all of them, batch 1).
    """

    _anchor: torch.Tensor  # a buffer: see __init__

    def __init__(self, plan: Plan, name: str) -> None:
        super().__init__()
        self.name = name
        self.layers = nn.ModuleList(step.module for step in plan.steps)
        # Plain tuples, not modules: the hot loop touches nothing but these and the layers.
        self._program = tuple((step.inputs, step.output, step.free) for step in plan.steps)
        # The layers' own forward methods, called directly: nn.Module.__call__ (hooks, which nothing
        # here registers) costs a few microseconds per layer, about 3 % of a 90-layer model at batch 1.
        self._forwards = tuple(layer.forward for layer in self.layers)
        self._slot_count = plan.slot_count
        self._input_slots = plan.input_slots
        self._output_slots = plan.output_slots
        self._output_rank4 = tuple(len(shape) == 4 for shape in plan.output_shapes)
        self.input_names: tuple[str, ...] = plan.input_names
        self.output_names: tuple[str, ...] = plan.output_names
        self.input_shapes: tuple[tuple[int, ...], ...] = plan.input_shapes
        self.output_shapes: tuple[tuple[int, ...], ...] = plan.output_shapes
        self.input_shape: tuple[int, ...] = plan.input_shapes[0]
        # Zero-size buffer that follows .to()/.half(), so forward knows the device and compute dtype.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)
        self.requires_grad_(False)
        self.eval()
        # Activations run channels-last (see tfl/ops.py); weights in the same format spare oneDNN and
        # cuDNN a reorder on every call.
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub omits it

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def _prepare(self, x: torch.Tensor, index: int) -> torch.Tensor:
        expected = self.input_shapes[index]
        if x.dim() != len(expected) or tuple(x.shape[1:]) != tuple(expected[1:]):
            raise ValueError(
                f"{self.name}: input {index} ({self.input_names[index]}) must be shaped "
                f"(N, {', '.join(map(str, expected[1:]))}), got {tuple(x.shape)}"
            )
        # contiguous NHWC viewed as NCHW is exactly the channels-last layout the layers run in
        x = x.to(device=self._anchor.device, dtype=self._anchor.dtype).contiguous()
        return x.permute(0, 3, 1, 2) if x.dim() == 4 else x

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(inputs) != len(self._input_slots):
            raise TypeError(f"{self.name} takes {len(self._input_slots)} input(s), got {len(inputs)}")
        env: list[torch.Tensor | None] = [None] * self._slot_count
        for i, (slot, x) in enumerate(zip(self._input_slots, inputs, strict=True)):
            env[slot] = self._prepare(x, i)
        for forward, (ins, out, free) in zip(self._forwards, self._program, strict=True):
            env[out] = forward(*[env[i] for i in ins])
            for i in free:
                env[i] = None
        results = []
        for slot, rank4 in zip(self._output_slots, self._output_rank4, strict=True):
            y = env[slot]
            assert y is not None
            if rank4:
                y = y.permute(0, 2, 3, 1)
            results.append(y.to(torch.float32).contiguous())
        return tuple(results)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_shape={self.input_shape}, outputs={list(self.output_names)}"


def load_tflite(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    outputs: Sequence[str | int] | None = None,
) -> TFLiteModule:
    """Read a ``.tflite`` file and return the equivalent :class:`TFLiteModule` on ``device``/``dtype``.

    ``outputs`` (optional) selects which graph outputs to compute, by TFLite name (``"Identity_3"``) or
    position, in the order the module should return them; layers only the others need are not run.
    E.g. the landmark model's 256x256 segmentation head costs time the pose pipeline does not need.

    Raises :class:`UnsupportedOperator` naming the operator and its index when the graph uses something
    the converter does not implement; nothing is half-built in that case.
    """
    path = Path(path)
    module = TFLiteModule(convert(read_graph(path), outputs), path.name)
    return module.to(device=device, dtype=dtype)
