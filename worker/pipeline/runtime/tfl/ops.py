"""Torch modules for the TFLite operators, in the converter's layout convention.

Convention: every rank-4 activation has NCHW dimensions (TFLite's NHWC permuted) and channels-last
memory, i.e. its bytes are laid out exactly as TFLite's NHWC; every other rank is held exactly as TFLite
holds it. So convolutions, pools and resizes see torch's NCHW semantics, oneDNN/cuDNN get the NHWC memory
they are fastest with, and the permutes around RESHAPE and at the graph's inputs and outputs are free
views rather than copies. The converter (``convert.py``) decides at load time, from the static TFLite shapes,
what each module has to do; the modules below therefore contain no shape logic and no per-call
decisions beyond a couple of attribute checks.

All modules accept a batch dimension larger than TFLite's 1: the batch is always dimension 0 and is never
baked into a shape.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

# TFLite's ActivationFunctionType values. TANH (4) and SIGN_BIT (5) exist in the schema, but TFLite's
# kernels silently ignore them as *fused* activations (CalculateActivationRange only knows the RELU
# family), so their meaning is ambiguous: the converter rejects them rather than guess.
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
SUPPORTED_ACTIVATIONS = (ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6)


def activate_(x: torch.Tensor, activation: int) -> torch.Tensor:
    """Apply a fused activation in place (the input is always a fresh intermediate we own)."""
    if activation == ACT_NONE:
        return x
    if activation == ACT_RELU6:
        return x.clamp_(0.0, 6.0)
    if activation == ACT_RELU:
        return x.clamp_(min=0.0)
    if activation == ACT_RELU_N1_TO_1:
        return x.clamp_(-1.0, 1.0)
    raise ValueError(f"unsupported fused activation {activation}")


def _onednn_fused_conv_available() -> bool:
    mkldnn = getattr(torch.ops, "mkldnn", None)
    try:
        return (
            torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
            and hasattr(mkldnn, "_convolution_pointwise")
            and hasattr(mkldnn, "_reorder_convolution_weight")
        )
    except (AttributeError, RuntimeError):
        return False


#: oneDNN's fused convolution (the op torch.compile's CPU backend emits) is available in this torch build.
ONEDNN_FUSED_CONV = _onednn_fused_conv_available()

#: Fused activation -> oneDNN post-op (name, scalars).
_ONEDNN_UNARY = {
    ACT_NONE: ("none", []),
    ACT_RELU: ("relu", []),
    ACT_RELU6: ("hardtanh", [0.0, 6.0]),
    ACT_RELU_N1_TO_1: ("hardtanh", [-1.0, 1.0]),
}


class Conv(nn.Module):
    """CONV_2D and DEPTHWISE_CONV_2D (optionally followed by a fused ADD of a residual): a real
    ``nn.Conv2d`` plus TFLite's padding and fused activation.

    ``pad`` is the explicit (left, right, top, bottom) zero padding applied before the convolution when
    TFLite's padding is asymmetric (SAME with an odd total pads one more at the bottom/right, which
    ``nn.Conv2d`` cannot express); symmetric padding goes into ``nn.Conv2d`` itself and costs nothing.

    With ``residual`` the module computes ``activation(conv(x) + other)``: the converter folds an ADD
    into the convolution that feeds it, as BlazePose's inverted-residual blocks end that way.

    On CPU in float32 the convolution runs as oneDNN's fused ``_convolution_pointwise`` with the
    weights reordered once into oneDNN's blocked layout (``nn.Conv2d`` would reorder them on every call,
    which costs about a quarter of the detector's time at batch 1) and the activation and the residual
    add done inside the kernel. Elsewhere (CUDA, float16, or a torch without that op) it is the plain
    ``nn.Conv2d`` followed by the add and the in-place activation; the two agree to float rounding.
    """

    def __init__(
        self,
        conv: nn.Conv2d,
        pad: tuple[int, int, int, int] | None,
        activation: int,
        residual: bool = False,
        input_shape: tuple[int, int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.conv = conv
        self.pad = pad
        self.activation = activation
        self.residual = residual
        # NCHW size of the (padded) input at batch 1: oneDNN picks the weight layout for it.
        self.input_shape = input_shape
        self._geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        # The oneDNN copy of the weights, and the (storage, version) of the weights it was made from, so
        # that .to(), .load_state_dict() or an in-place edit of the parameters re-makes it.
        self._packed: torch.Tensor | None = None
        self._packed_key: tuple[int, int] | None = None
        # The fused call with everything but the input bound, and the weights it was made for (see
        # _fused_call): a layer costs one tuple compare per call instead of a dozen attribute lookups.
        self._fused: tuple[torch.Tensor, tuple[int, int], Callable[..., torch.Tensor]] | None = None

    def _packed_weight(self, weight: torch.Tensor) -> torch.Tensor:
        key = (weight.data_ptr(), weight._version)
        if self._packed is None or self._packed_key != key:
            size = list(self.input_shape) if self.input_shape is not None else []
            self._packed = torch.ops.mkldnn._reorder_convolution_weight(weight, *self._geometry, size)
            self._packed_key = key
        return self._packed

    def _fused_call(self) -> Callable[..., torch.Tensor] | None:
        """oneDNN's fused convolution with the packed weights, bias, geometry and post-ops bound, as
        ``call(x, other)``, remembered in ``_fused``; None where it does not apply (weights that
        require grad, or not float32 on the CPU)."""
        c = self.conv
        weight = c.weight
        if weight.requires_grad or weight.device.type != "cpu" or weight.dtype != torch.float32:
            return None
        packed, bias, args = self._packed_weight(weight), c.bias, self._geometry
        unary, scalars = _ONEDNN_UNARY[self.activation]
        activation = self.activation
        plain = torch.ops.mkldnn._convolution_pointwise.default
        binary = torch.ops.mkldnn._convolution_pointwise.binary

        def call(x: torch.Tensor, other: torch.Tensor | None) -> torch.Tensor:
            fused: torch.Tensor  # torch.ops are untyped
            if other is None:
                fused = plain(x, packed, bias, *args, unary, scalars, "")
                return fused
            if activation == ACT_RELU:  # the only unary oneDNN fuses after a binary post-op
                fused = binary(x, other, packed, bias, *args, "add", 1.0, "relu", [], "")
                return fused
            return activate_(binary(x, other, packed, bias, *args, "add", 1.0, None, [], None), activation)

        self._fused = (weight, (weight.data_ptr(), weight._version), call)
        return call

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        fused = self._fused
        if fused is not None:
            weight, key, call = fused
            # the same weights, unchanged: .to() or an in-place edit changes the pointer or the version
            if (weight.data_ptr(), weight._version) == key and not weight.requires_grad:
                return call(x, other)
        if ONEDNN_FUSED_CONV and x.device.type == "cpu" and x.dtype == torch.float32:
            made = self._fused_call()
            if made is not None:
                return made(x, other)
        c = self.conv
        y = c(x)
        if other is not None:
            y = y.add_(other)
        return activate_(y, self.activation)


class Binary(nn.Module):
    """ADD, SUB, MUL, DIV with broadcasting and a fused activation.

    A constant operand is stored as a buffer already in the activation's layout; ``constant_first``
    keeps the operand order for the non-commutative SUB and DIV.
    """

    _FUNCS: dict[str, Callable[..., torch.Tensor]] = {
        "ADD": torch.add, "SUB": torch.sub, "MUL": torch.mul, "DIV": torch.div
    }
    constant: torch.Tensor | None  # a buffer (follows .to()); declared so its type is known

    def __init__(
        self, kind: str, activation: int, constant: torch.Tensor | None = None, constant_first: bool = False
    ) -> None:
        super().__init__()
        self.kind = kind
        self.func = self._FUNCS[kind]
        self.activation = activation
        self.constant_first = constant_first
        self.register_buffer("constant", constant, persistent=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if self.constant is not None:
            a, b = (self.constant, a) if self.constant_first else (a, self.constant)
        return activate_(self.func(a, b), self.activation)


class Pad(nn.Module):
    """PAD / PADV2 with a constant value; ``pad`` is in ``F.pad`` order (last dimension first)."""

    def __init__(self, pad: tuple[int, ...], value: float) -> None:
        super().__init__()
        self.pad = pad
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad, value=self.value)


class MaxPool(nn.Module):
    """MAX_POOL_2D. TFLite ignores padded cells, which padding with -inf reproduces exactly."""

    def __init__(
        self, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int, int, int], activation: int
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.pad = pad if any(pad) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad, value=float("-inf"))
        return activate_(F.max_pool2d(x, self.kernel, self.stride), self.activation)


class AvgPool(nn.Module):
    """AVERAGE_POOL_2D. TFLite divides by the number of *valid* cells under the window, so with padding
    the sum is divided by a per-position count map computed once at load time."""

    counts: torch.Tensor  # a buffer (None only without padding, where forward never reads it)

    def __init__(
        self,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        pad: tuple[int, int, int, int],
        activation: int,
        counts: torch.Tensor | None,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.pad = pad if any(pad) else None
        self.register_buffer("counts", counts, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is None:
            return activate_(F.avg_pool2d(x, self.kernel, self.stride), self.activation)
        area = self.kernel[0] * self.kernel[1]
        summed = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride, divisor_override=area) * area
        return activate_(summed / self.counts, self.activation)


class ResizeBilinear(nn.Module):
    """RESIZE_BILINEAR.

    ``half_pixel_centers`` is torch's ``align_corners=False`` and ``align_corners`` is torch's
    ``align_corners=True`` (both clamp the same way TFLite does). TFLite's legacy mode (neither flag:
    source = dst * in/out, no half-pixel shift) has no torch equivalent, so it is done with gathers
    whose indices and weights are computed at load time.
    """

    # buffers of the legacy mode (source rows/columns and their weights), declared so their type is known
    y0: torch.Tensor
    y1: torch.Tensor
    x0: torch.Tensor
    x1: torch.Tensor
    wy: torch.Tensor
    wx: torch.Tensor

    def __init__(self, size: tuple[int, int], mode: str, in_size: tuple[int, int]) -> None:
        super().__init__()
        self.size, self.mode = size, mode
        if mode == "legacy":
            for axis, (n_in, n_out) in zip("yx", zip(in_size, size, strict=True), strict=True):
                # float32 like TFLite, so floor() lands on the same source pixel in borderline cases
                scale = torch.tensor(n_in, dtype=torch.float32) / n_out
                src = torch.arange(n_out, dtype=torch.float32) * scale
                lo = src.floor().clamp(max=n_in - 1)
                hi = (lo + 1).clamp(max=n_in - 1)
                self.register_buffer(f"{axis}0", lo.long(), persistent=False)
                self.register_buffer(f"{axis}1", hi.long(), persistent=False)
                self.register_buffer(f"w{axis}", (src - lo).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode != "legacy":
            return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.mode == "align_corners")
        wy = self.wy.to(x.dtype).view(-1, 1)
        wx = self.wx.to(x.dtype)
        rows = x.index_select(2, self.y0) * (1 - wy) + x.index_select(2, self.y1) * wy
        return rows.index_select(3, self.x0) * (1 - wx) + rows.index_select(3, self.x1) * wx


class ResizeNearest(nn.Module):
    """RESIZE_NEAREST_NEIGHBOR: legacy mode is torch's ``nearest``, half-pixel is ``nearest-exact``."""

    def __init__(self, size: tuple[int, int], half_pixel_centers: bool) -> None:
        super().__init__()
        self.size = size
        self.mode = "nearest-exact" if half_pixel_centers else "nearest"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode=self.mode)


class DepthToSpace(nn.Module):
    """DEPTH_TO_SPACE. TFLite orders input channels as (block_row, block_col, channel), the reverse of
    ``pixel_shuffle``'s (channel, block_row, block_col), so the shuffle is written out on the NHWC view:
    one copy, and for a channels-last input the result is channels-last again."""

    def __init__(self, block: int) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b = self.block
        nhwc = x.permute(0, 2, 3, 1).reshape(n, h, w, b, b, c // (b * b)).permute(0, 1, 3, 2, 4, 5)
        return nhwc.reshape(n, h * b, w * b, c // (b * b)).permute(0, 3, 1, 2)


class Reshape(nn.Module):
    """RESHAPE with the batch kept dynamic. TFLite reshapes in NHWC order, so a rank-4 input is viewed
    as NHWC first and a rank-4 output is viewed as NCHW after; with channels-last memory both are free."""

    def __init__(self, tail: tuple[int, ...], from_nchw: bool, to_nchw: bool) -> None:
        super().__init__()
        self.tail, self.from_nchw, self.to_nchw = tail, from_nchw, to_nchw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_nchw:
            x = x.permute(0, 2, 3, 1)
        x = x.reshape(x.shape[0], *self.tail)
        return x.permute(0, 3, 1, 2) if self.to_nchw else x


class Concat(nn.Module):
    """CONCATENATION along an axis already mapped to the internal layout (NHWC 3 → NCHW 1, ...)."""

    def __init__(self, axis: int, activation: int) -> None:
        super().__init__()
        self.axis, self.activation = axis, activation

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return activate_(torch.cat(xs, dim=self.axis), self.activation)


_UNARY_FUNCS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "LOGISTIC": torch.sigmoid,
    "TANH": torch.tanh,
    "RELU": F.relu,
    "RELU6": partial(F.hardtanh, min_val=0.0, max_val=6.0),
    "RELU_N1_TO_1": partial(F.hardtanh, min_val=-1.0, max_val=1.0),
    "HARD_SWISH": F.hardswish,
}
UNARY_KINDS = tuple(_UNARY_FUNCS)


class Unary(nn.Module):
    """Element-wise activations that TFLite has as standalone operators (LOGISTIC, RELU6, ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.func = _UNARY_FUNCS[kind]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.func(x)


class PRelu(nn.Module):
    """PRELU with a constant alpha stored in the activation's layout: ``max(x, 0) + alpha * min(x, 0)``."""

    alpha: torch.Tensor  # a buffer

    def __init__(self, alpha: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("alpha", alpha, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, x * self.alpha)
