"""Turning a parsed TFLite graph into a flat execution plan of torch modules.

Everything that does not depend on the input is done here, once, at load time:

* constant folding: DEQUANTIZE (fp16 or int8 weights) and DENSIFY (sparse weights) of constants become
  plain float32 arrays, so at run time a convolution simply has its weights;
* PAD fusion: a zero PAD read only by convolutions becomes their padding (BlazePose pads explicitly
  before every stride-2 convolution), saving a full copy of the activation;
* ADD fusion: a residual ADD of a convolution's result is done inside that convolution;
* layout: rank-4 tensors are NCHW inside (see ``ops.py``), so weights, constant operands and axes are
  translated to that layout here;
* liveness: each step lists the intermediate values it is the last user of, so memory is released as
  soon as possible (it matters on a GPU with a large batch).

The result is a list of :class:`Step` — module, input slots, output slot, slots to free — that
``TFLiteModule.forward`` runs in a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from worker.pipeline.runtime.tfl import ops
from worker.pipeline.runtime.tfl.reader import GraphSpec, OperatorSpec, TensorSpec
from worker.pipeline.runtime.tfl.sparsity import densify

_SAME, _VALID = 0, 1
#: NHWC axis -> NCHW axis for rank-4 tensors, and the NHWC axis behind each NCHW axis.
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)
_NCHW_FROM_NHWC_AXIS = (0, 3, 1, 2)


class UnsupportedOperator(NotImplementedError):
    """The model uses an operator (or an operator variant) this converter does not implement."""


@dataclass(frozen=True)
class Step:
    """One runtime operation: ``env[output] = module(*env[inputs])``, then ``env[i] = None`` for ``free``."""

    module: nn.Module
    inputs: tuple[int, ...]
    output: int
    free: tuple[int, ...]
    op_index: int  # the TFLite operator it came from (for debugging a layer against the file)


@dataclass(frozen=True)
class Plan:
    """The converted graph. Slots index the runtime value list; tensor names/shapes are TFLite's."""

    steps: list[Step]
    slot_count: int
    input_slots: tuple[int, ...]
    output_slots: tuple[int, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]


def _unsupported(graph: GraphSpec, op: OperatorSpec, detail: str = "") -> UnsupportedOperator:
    what = f"operator {op.name} (op index {op.index})"
    if detail:
        what += f" with {detail},"
    return UnsupportedOperator(f"{graph.path.name} uses {what} which tflite_torch does not implement")


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's SAME padding (before, after): the odd pixel goes after, i.e. bottom/right."""
    out = (size + stride - 1) // stride
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _Converter:
    """Walks the operators in file order (TFLite stores them topologically sorted)."""

    def __init__(self, graph: GraphSpec) -> None:
        self.graph = graph
        self.tensors: list[TensorSpec] = graph.tensors
        self.constants: dict[int, np.ndarray] = {}
        self.runtime: set[int] = set(graph.inputs)
        self.fused_pads: dict[int, tuple[int, tuple[int, int, int, int]]] = {}
        self.steps: list[tuple[nn.Module, tuple[int, ...], int, int] | None] = []
        self.producer: dict[int, int] = {}  # tensor -> position of the step computing it
        self.consumers: dict[int, list[OperatorSpec]] = {}
        for op in graph.operators:
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(t, []).append(op)
        for tensor in graph.tensors:
            if tensor.data is not None and tensor.sparsity is None and tensor.index not in self.runtime:
                self.constants[tensor.index] = tensor.data

    # ---- helpers ---------------------------------------------------------------------------------

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    def const(self, t: int) -> np.ndarray | None:
        return self.constants.get(t)

    def float_const(self, op: OperatorSpec, t: int, role: str) -> torch.Tensor:
        value = self.const(t)
        if value is None:
            raise _unsupported(self.graph, op, f"a non-constant {role}")
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    def to_layout(self, value: np.ndarray, rank: int) -> torch.Tensor:
        """A constant operand broadcast against a rank-``rank`` activation, in the internal layout."""
        array = np.asarray(value, dtype=np.float32)
        if rank == 4:
            array = array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(array))

    def add_step(self, module: nn.Module, inputs: tuple[int, ...], output: int, op: OperatorSpec) -> None:
        for t in inputs:
            if t not in self.runtime:
                raise _unsupported(self.graph, op, f"input tensor {t} that is neither constant nor computed")
        self.runtime.add(output)
        self.producer[output] = len(self.steps)
        self.steps.append((module, inputs, output, op.index))

    # ---- constant folding ------------------------------------------------------------------------

    def try_fold(self, op: OperatorSpec) -> bool:
        if op.name not in ("DEQUANTIZE", "DENSIFY"):
            return False
        source = self.tensors[op.inputs[0]]
        if source.index in self.runtime:
            return False
        if source.data is None and source.index not in self.constants:
            raise _unsupported(self.graph, op, "an input that has no data")
        if op.name == "DENSIFY":
            if source.sparsity is None or source.data is None:
                raise _unsupported(self.graph, op, "a dense input")
            self.constants[op.outputs[0]] = densify(source.data, source.shape, source.sparsity)
            # the densified tensor keeps its source's type and quantization for a following DEQUANTIZE
            out = self.tensors[op.outputs[0]]
            if out.quantization is None:
                out.quantization = source.quantization
            return True
        value = self.constants.get(source.index)
        if value is None:  # a sparse tensor read directly by DEQUANTIZE
            if source.sparsity is None:
                return False
            assert source.data is not None  # a sparse tensor always carries its values
            value = densify(source.data, source.shape, source.sparsity)
        if np.issubdtype(value.dtype, np.floating):
            self.constants[op.outputs[0]] = value.astype(np.float32)
            return True
        q = source.quantization
        if q is None:
            raise _unsupported(self.graph, op, f"an unquantized {value.dtype} input")
        shape = [1] * value.ndim
        if q.scale.size > 1:
            shape[q.axis] = q.scale.size
        scale = q.scale.reshape(shape)
        zero = q.zero_point.reshape(shape) if q.zero_point.size == q.scale.size else q.zero_point.reshape(-1)[0]
        self.constants[op.outputs[0]] = ((value.astype(np.float32) - zero) * scale).astype(np.float32)
        return True

    # ---- PAD fusion --------------------------------------------------------------------------------

    def try_fuse_pad(self, op: OperatorSpec) -> bool:
        """Defer a zero PAD of H/W into its consumers when they all are convolutions reading it as input 0."""
        if op.name not in ("PAD", "PADV2"):
            return False
        x, out = op.inputs[0], op.outputs[0]
        pads = self.const(op.inputs[1])
        if len(self.shape(x)) != 4 or pads is None or x not in self.runtime or out in self.graph.outputs:
            return False
        if op.name == "PADV2" and len(op.inputs) > 2:
            value = self.const(op.inputs[2])
            if value is None or float(np.asarray(value).reshape(-1)[0]) != 0.0:
                return False
        pads = np.asarray(pads).reshape(4, 2)
        if pads[0].any() or pads[3].any() or (pads < 0).any():
            return False
        consumers = self.consumers.get(out, [])
        if not consumers or any(
            c.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or c.inputs[0] != out or out in c.inputs[1:]
            for c in consumers
        ):
            return False
        (top, bottom), (left, right) = pads[1].tolist(), pads[2].tolist()
        self.fused_pads[out] = (x, (top, bottom, left, right))
        self.runtime.add(out)  # produced "virtually"; the consumer reads the PAD's input instead
        return True

    # ---- operators --------------------------------------------------------------------------------

    def conv(self, op: OperatorSpec) -> None:
        x, w_idx = op.inputs[0], op.inputs[1]
        b_idx = op.inputs[2] if len(op.inputs) > 2 else -1
        o = op.options
        depthwise = op.name == "DEPTHWISE_CONV_2D"
        activation = o.get("fused_activation_function", 0)
        if activation not in ops.SUPPORTED_ACTIVATIONS:
            raise _unsupported(self.graph, op, f"fused activation {activation}")
        weight = self.float_const(op, w_idx, "filter")
        _, height, width, channels = self.shape(x)
        stride = (o.get("stride_h", 1), o.get("stride_w", 1))
        dilation = (o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1))
        if depthwise:  # TFLite (1, KH, KW, C*M) -> torch (C*M, 1, KH, KW), one group per input channel
            weight = weight.permute(3, 0, 1, 2)
            groups = channels
        else:  # TFLite (O, KH, KW, I) -> torch (O, I, KH, KW); I < C means a grouped convolution
            weight = weight.permute(0, 3, 1, 2)
            groups = channels // weight.shape[1]
        out_channels, _, kh, kw = weight.shape

        top = bottom = left = right = 0
        if o.get("padding", _SAME) == _SAME:
            top, bottom = same_padding(height, kh, stride[0], dilation[0])
            left, right = same_padding(width, kw, stride[1], dilation[1])
        if x in self.fused_pads:
            x, (pt, pb, pl, pr) = self.fused_pads[x]
            top, bottom, left, right = top + pt, bottom + pb, left + pl, right + pr

        symmetric = top == bottom and left == right
        conv = nn.Conv2d(
            channels,
            out_channels,
            (kh, kw),
            stride=stride,
            padding=(top, left) if symmetric else 0,
            dilation=dilation,
            groups=groups,
            bias=b_idx >= 0,
        )
        with torch.no_grad():
            conv.weight.copy_(weight)
            if conv.bias is not None:
                conv.bias.copy_(self.float_const(op, b_idx, "bias"))
        pad = None if symmetric else (left, right, top, bottom)
        # what the nn.Conv2d itself receives, at batch 1 (oneDNN lays the weights out for that size)
        _, in_h, in_w, _ = self.shape(x)
        seen = (1, channels, in_h, in_w) if symmetric else (1, channels, in_h + top + bottom, in_w + left + right)
        self.add_step(ops.Conv(conv, pad, activation, input_shape=seen), (x,), op.outputs[0], op)

    def binary(self, op: OperatorSpec) -> None:
        activation = op.options.get("fused_activation_function", 0)
        if activation not in ops.SUPPORTED_ACTIVATIONS:
            raise _unsupported(self.graph, op, f"fused activation {activation}")
        a, b = op.inputs[:2]
        rank = len(self.shape(op.outputs[0]))
        ca, cb = self.const(a), self.const(b)
        if ca is not None and cb is not None:
            raise _unsupported(self.graph, op, "two constant inputs")
        if ca is None and cb is None:
            if rank == 4 and (len(self.shape(a)) != 4 or len(self.shape(b)) != 4):
                raise _unsupported(self.graph, op, "a rank-4 input broadcast against a lower rank input")
            if op.name == "ADD" and self.try_fuse_add(op, activation):
                return
            self.add_step(ops.Binary(op.name, activation), (a, b), op.outputs[0], op)
            return
        given = ca if ca is not None else cb
        assert given is not None  # exactly one input is constant here (both and neither returned above)
        constant = self.to_layout(given, rank)
        module = ops.Binary(op.name, activation, constant, constant_first=ca is not None)
        self.add_step(module, (b if ca is not None else a,), op.outputs[0], op)

    def try_fuse_add(self, op: OperatorSpec, activation: int) -> bool:
        """Fold ``ADD(conv(x), other)`` into the convolution when the conv result has no other use.

        The fused step runs where the ADD was: all its inputs exist by then, and the convolution's
        output never needs to be materialised.
        """
        a, b = op.inputs[:2]
        if self.shape(a) != self.shape(b):
            return False  # broadcasting add: keep it separate
        for conv_out, other in ((a, b), (b, a)):
            position = self.producer.get(conv_out)
            if position is None or conv_out == other or conv_out in self.graph.outputs:
                continue
            step = self.steps[position]
            if step is None or len(self.consumers.get(conv_out, [])) != 1:
                continue
            module, inputs, _, _ = step
            if not isinstance(module, ops.Conv) or module.residual or module.activation != ops.ACT_NONE:
                continue
            fused = ops.Conv(module.conv, module.pad, activation, residual=True, input_shape=module.input_shape)
            self.steps[position] = None
            self.add_step(fused, (inputs[0], other), op.outputs[0], op)
            return True
        return False

    def pad(self, op: OperatorSpec) -> None:
        x = op.inputs[0]
        pads = self.const(op.inputs[1])
        if pads is None:
            raise _unsupported(self.graph, op, "non-constant paddings")
        pads = np.asarray(pads).reshape(-1, 2)
        value = 0.0
        if op.name == "PADV2" and len(op.inputs) > 2:
            constant = self.const(op.inputs[2])
            if constant is None:
                raise _unsupported(self.graph, op, "a non-constant pad value")
            value = float(np.asarray(constant).reshape(-1)[0])
        if pads[0].any():
            raise _unsupported(self.graph, op, "padding of the batch dimension")
        if len(pads) == 4:
            pads = pads[list(_NCHW_FROM_NHWC_AXIS)]
        flat = tuple(int(v) for pair in pads[::-1] for v in pair)  # F.pad: last dimension first
        self.add_step(ops.Pad(flat, value), (x,), op.outputs[0], op)

    def pool(self, op: OperatorSpec) -> None:
        o = op.options
        activation = o.get("fused_activation_function", 0)
        if activation not in ops.SUPPORTED_ACTIVATIONS:
            raise _unsupported(self.graph, op, f"fused activation {activation}")
        x = op.inputs[0]
        _, height, width, _ = self.shape(x)
        kernel = (o["filter_height"], o["filter_width"])
        stride = (o["stride_h"], o["stride_w"])
        top = bottom = left = right = 0
        if o.get("padding", _SAME) == _SAME:
            top, bottom = same_padding(height, kernel[0], stride[0], 1)
            left, right = same_padding(width, kernel[1], stride[1], 1)
        pad = (left, right, top, bottom)
        if op.name == "MAX_POOL_2D":
            module: nn.Module = ops.MaxPool(kernel, stride, pad, activation)
        else:
            counts = None
            if any(pad):
                ones = torch.nn.functional.pad(torch.ones(1, 1, height, width), pad)
                counts = torch.nn.functional.avg_pool2d(ones, kernel, stride, divisor_override=1)
            module = ops.AvgPool(kernel, stride, pad, activation, counts)
        self.add_step(module, (x,), op.outputs[0], op)

    def resize(self, op: OperatorSpec) -> None:
        x, out = op.inputs[0], op.outputs[0]
        height, width = (int(v) for v in self.shape(out)[1:3])
        size = (height, width)
        align, half = op.options.get("align_corners", False), op.options.get("half_pixel_centers", False)
        if op.name == "RESIZE_NEAREST_NEIGHBOR":
            if align:
                raise _unsupported(self.graph, op, "align_corners=True")
            self.add_step(ops.ResizeNearest(size, half), (x,), out, op)
            return
        mode = "align_corners" if align else "half_pixel" if half else "legacy"
        in_height, in_width = (int(v) for v in self.shape(x)[1:3])
        in_size = (in_height, in_width)
        self.add_step(ops.ResizeBilinear(size, mode, in_size), (x,), out, op)

    def depth_to_space(self, op: OperatorSpec) -> None:
        self.add_step(ops.DepthToSpace(op.options["block_size"]), (op.inputs[0],), op.outputs[0], op)

    def reshape(self, op: OperatorSpec) -> None:
        x, out = op.inputs[0], op.outputs[0]
        in_shape, out_shape = self.shape(x), self.shape(out)
        if not in_shape or not out_shape or in_shape[0] != out_shape[0]:
            raise _unsupported(self.graph, op, f"a reshape {in_shape} -> {out_shape} across the batch dimension")
        module = ops.Reshape(tuple(out_shape[1:]), from_nchw=len(in_shape) == 4, to_nchw=len(out_shape) == 4)
        self.add_step(module, (x,), out, op)

    def concat(self, op: OperatorSpec) -> None:
        activation = op.options.get("fused_activation_function", 0)
        if activation not in ops.SUPPORTED_ACTIVATIONS:
            raise _unsupported(self.graph, op, f"fused activation {activation}")
        rank = len(self.shape(op.outputs[0]))
        axis = op.options.get("axis", 0) % rank
        if axis == 0:
            raise _unsupported(self.graph, op, "concatenation along the batch dimension")
        if rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        if any(self.const(t) is not None for t in op.inputs):
            raise _unsupported(self.graph, op, "a constant input")
        self.add_step(ops.Concat(axis, activation), tuple(op.inputs), op.outputs[0], op)

    def unary(self, op: OperatorSpec) -> None:
        self.add_step(ops.Unary(op.name), (op.inputs[0],), op.outputs[0], op)

    def prelu(self, op: OperatorSpec) -> None:
        alpha = self.const(op.inputs[1])
        if alpha is None:
            raise _unsupported(self.graph, op, "a non-constant alpha")
        rank = len(self.shape(op.outputs[0]))
        self.add_step(ops.PRelu(self.to_layout(alpha, rank)), (op.inputs[0],), op.outputs[0], op)

    # ---- driver ---------------------------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[OperatorSpec], None]]:
        table: dict[str, Callable[[OperatorSpec], None]] = {
            "CONV_2D": self.conv,
            "DEPTHWISE_CONV_2D": self.conv,
            "PAD": self.pad,
            "PADV2": self.pad,
            "MAX_POOL_2D": self.pool,
            "AVERAGE_POOL_2D": self.pool,
            "RESIZE_BILINEAR": self.resize,
            "RESIZE_NEAREST_NEIGHBOR": self.resize,
            "DEPTH_TO_SPACE": self.depth_to_space,
            "RESHAPE": self.reshape,
            "CONCATENATION": self.concat,
            "PRELU": self.prelu,
        }
        for kind in ("ADD", "SUB", "MUL", "DIV"):
            table[kind] = self.binary
        for kind in ops.UNARY_KINDS:
            table[kind] = self.unary
        return table

    def check_supported(self, handlers: dict[str, Callable[[OperatorSpec], None]]) -> None:
        """Fail before building anything, naming every operator we lack (the first one in front)."""
        foldable = {"DEQUANTIZE", "DENSIFY"}
        missing = [op for op in self.graph.operators if op.name not in handlers and op.name not in foldable]
        if missing:
            error = _unsupported(self.graph, missing[0])
            others = sorted({f"{op.name} (op index {op.index})" for op in missing[1:]})
            if others:
                error = UnsupportedOperator(f"{error}; it also uses {', '.join(others[:10])}")
            raise error

    def select_outputs(self, wanted: Sequence[str | int] | None) -> tuple[int, ...]:
        """Tensor indices of the requested graph outputs (by TFLite name or output position)."""
        outputs = self.graph.outputs
        if wanted is None:
            return outputs
        names = [self.tensors[t].name for t in outputs]
        chosen = []
        for item in wanted:
            if isinstance(item, int) and 0 <= item < len(outputs):
                chosen.append(outputs[item])
            elif isinstance(item, str) and item in names:
                chosen.append(outputs[names.index(item)])
            else:
                raise ValueError(f"{self.graph.path.name} has no output {item!r}; its outputs are {names}")
        return tuple(chosen)

    def run(self, wanted: Sequence[str | int] | None = None) -> Plan:
        outputs = self.select_outputs(wanted)
        handlers = self.handlers()
        self.check_supported(handlers)
        for op in self.graph.operators:
            if self.try_fold(op) or self.try_fuse_pad(op):
                continue
            handler = handlers.get(op.name)
            if handler is None:  # DEQUANTIZE/DENSIFY of a computed tensor
                raise _unsupported(self.graph, op, "a non-constant input")
            if len(op.outputs) != 1:
                raise _unsupported(self.graph, op, f"{len(op.outputs)} outputs")
            handler(op)
        for t in outputs:
            if t not in self.runtime or t in self.fused_pads:
                raise UnsupportedOperator(f"{self.graph.path.name}: output tensor {t} is not computed")
        return self._plan(outputs)

    def _plan(self, outputs: tuple[int, ...]) -> Plan:
        slots: dict[int, int] = {}

        def slot(t: int) -> int:
            return slots.setdefault(t, len(slots))

        for t in self.graph.inputs:
            slot(t)
        # Dead-code elimination: keep only the steps the requested outputs depend on.
        needed = set(outputs)
        live = []
        for step in reversed(self.steps):
            if step is not None and step[2] in needed:
                live.append(step)
                needed.update(step[1])
        live.reverse()
        last_use: dict[int, int] = {}
        for position, (_, inputs, _, _) in enumerate(live):
            for t in inputs:
                last_use[t] = position
        keep = set(outputs)
        steps = []
        for position, (module, inputs, output, op_index) in enumerate(live):
            in_slots = tuple(slot(t) for t in inputs)
            out_slot = slot(output)
            free = tuple(sorted({slot(t) for t in inputs if last_use[t] == position and t not in keep}))
            steps.append(Step(module, in_slots, out_slot, free, op_index))
        tensors = self.tensors
        return Plan(
            steps=steps,
            slot_count=len(slots),
            input_slots=tuple(slots[t] for t in self.graph.inputs),
            output_slots=tuple(slots[t] for t in outputs),
            input_names=tuple(tensors[t].name for t in self.graph.inputs),
            output_names=tuple(tensors[t].name for t in outputs),
            input_shapes=tuple(tensors[t].shape for t in self.graph.inputs),
            output_shapes=tuple(tensors[t].shape for t in outputs),
        )


def convert(graph: GraphSpec, outputs: Sequence[str | int] | None = None) -> Plan:
    """Build the execution plan of ``graph``; raises :class:`UnsupportedOperator` for what we lack.

    ``outputs`` selects graph outputs (TFLite names or positions, in the order wanted); the steps only
    the others need are dropped. None keeps every output in TFLite order.
    """
    return _Converter(graph).run(outputs)
