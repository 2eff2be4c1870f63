"""Reading a ``.tflite`` flatbuffer into plain Python objects.

The generated ``tflite`` package exposes the schema as lazy accessor objects (``tensor.ShapeAsNumpy()``,
``op.BuiltinOptions()`` returning an untyped table, ...). The converter wants plain data: shapes as
tuples, constant tensors as numpy arrays, operator options as a dict. Doing the translation once, here,
keeps flatbuffer details out of the operator implementations.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.SparseIndexVector import SparseIndexVector
from tflite.TensorType import TensorType

from worker.pipeline.runtime.tfl.sparsity import DimensionMetadata, Sparsity

_OPERATOR_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_OPTIONS_NAMES = {v: k for k, v in vars(BuiltinOptions).items() if not k.startswith("_")}
_CUSTOM = BuiltinOperator.CUSTOM

_NUMPY_TYPES: dict[int, np.dtype] = {
    TensorType.FLOAT32: np.dtype(np.float32),
    TensorType.FLOAT16: np.dtype(np.float16),
    TensorType.FLOAT64: np.dtype(np.float64),
    TensorType.INT32: np.dtype(np.int32),
    TensorType.INT64: np.dtype(np.int64),
    TensorType.INT16: np.dtype(np.int16),
    TensorType.INT8: np.dtype(np.int8),
    TensorType.UINT8: np.dtype(np.uint8),
    TensorType.BOOL: np.dtype(np.bool_),
}

_SPARSE_INDEX_CLASSES = {
    SparseIndexVector.Int32Vector: "Int32Vector",
    SparseIndexVector.Uint16Vector: "Uint16Vector",
    SparseIndexVector.Uint8Vector: "Uint8Vector",
}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of an integer tensor: ``real = (q - zero_point) * scale`` along ``axis``."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclass
class TensorSpec:
    """One tensor of the graph. ``data`` is set for constants (decoded, not yet densified)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None
    sparsity: Sparsity | None = None
    quantization: Quantization | None = None


@dataclass
class OperatorSpec:
    """One operator: its name (``CONV_2D``, or the custom code), tensor indices and options."""

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class GraphSpec:
    """The main subgraph of a model file, ready for conversion."""

    path: Path
    tensors: list[TensorSpec]
    operators: list[OperatorSpec]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _options_dict(op: tflite.Operator) -> dict[str, Any]:
    """Every scalar and vector field of the operator's typed options table, keyed in snake_case.

    Reflecting over the generated class (rather than listing fields per operator) means a new option
    in the schema is visible without touching this reader.
    """
    type_id = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if not type_id or table is None:
        return {}
    class_name = _OPTIONS_NAMES[type_id]
    cls = getattr(importlib.import_module(f"tflite.{class_name}"), class_name)
    options = cls()
    options.Init(table.Bytes, table.Pos)
    result: dict[str, Any] = {}
    for attr, method in vars(cls).items():
        if not attr[:1].isupper() or attr == "Init" or attr.startswith("GetRootAs"):
            continue
        if attr.endswith(("Length", "IsNone")) or "BufferHasIdentifier" in attr:
            continue
        if not callable(method) or len(inspect.signature(method).parameters) != 1:
            continue  # element getters take an index; their *AsNumpy twin is used instead
        value = getattr(options, attr)()
        if attr.endswith("AsNumpy"):
            attr = attr[: -len("AsNumpy")]
            value = np.asarray(value).tolist() if not isinstance(value, int) else []
        result[_snake(attr)] = value
    return result


def _index_vector(table: Any, type_id: int) -> np.ndarray:
    class_name = _SPARSE_INDEX_CLASSES.get(type_id)
    if class_name is None or table is None:
        raise ValueError(f"unsupported sparse index vector type {type_id}")
    cls = getattr(importlib.import_module(f"tflite.{class_name}"), class_name)
    vector = cls()
    vector.Init(table.Bytes, table.Pos)
    values = vector.ValuesAsNumpy()
    return np.asarray(values if not isinstance(values, int) else [], dtype=np.int64)


def _sparsity(tensor: tflite.Tensor) -> Sparsity | None:
    params = tensor.Sparsity()
    if params is None:
        return None
    dims = []
    for level in range(params.DimMetadataLength()):
        meta = params.DimMetadata(level)
        if meta.Format() == 0:
            dims.append(DimensionMetadata(sparse=False, dense_size=int(meta.DenseSize())))
        else:
            dims.append(
                DimensionMetadata(
                    sparse=True,
                    segments=_index_vector(meta.ArraySegments(), meta.ArraySegmentsType()),
                    indices=_index_vector(meta.ArrayIndices(), meta.ArrayIndicesType()),
                )
            )
    order = params.TraversalOrderAsNumpy()
    block_map = params.BlockMapAsNumpy()
    return Sparsity(
        traversal_order=tuple(int(v) for v in (order if not isinstance(order, int) else [])),
        block_map=tuple(int(v) for v in (block_map if not isinstance(block_map, int) else [])),
        dim_metadata=tuple(dims),
    )


def _quantization(tensor: tflite.Tensor) -> Quantization | None:
    params = tensor.Quantization()
    if params is None or params.ScaleLength() == 0:
        return None
    zero_point = params.ZeroPointAsNumpy()
    return Quantization(
        scale=np.asarray(params.ScaleAsNumpy(), dtype=np.float32),
        zero_point=np.asarray(zero_point if not isinstance(zero_point, int) else [0], dtype=np.int64),
        axis=int(params.QuantizedDimension()),
    )


def _buffer_bytes(model: tflite.Model, raw: bytes, index: int) -> bytes | None:
    buffer = model.Buffers(index)
    if buffer is None:
        return None
    if buffer.Offset() > 1:  # large models keep buffers after the flatbuffer, addressed by offset
        return raw[buffer.Offset() : buffer.Offset() + buffer.Size()]
    if buffer.DataLength() == 0:
        return None
    return bytes(buffer.DataAsNumpy().tobytes())


def _operator_name(model: tflite.Model, opcode_index: int) -> str:
    code = model.OperatorCodes(opcode_index)
    # Since schema v3a the code lives in `builtin_code`; old files only fill the int8 deprecated field.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == _CUSTOM:
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode() if custom else '?'}"
    return str(_OPERATOR_NAMES.get(builtin, f"BUILTIN_{builtin}"))


def read_graph(path: str | Path) -> GraphSpec:
    """Parse the first subgraph of a ``.tflite`` file (the BlazePose models have exactly one)."""
    path = Path(path)
    raw = path.read_bytes()
    model = tflite.Model.GetRootAs(raw, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError(f"{path.name} has no subgraph")
    graph = model.Subgraphs(0)

    tensors = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        type_id = tensor.Type()
        if type_id not in _NUMPY_TYPES:
            raise ValueError(f"{path.name}: tensor {i} has unsupported type {type_id}")
        dtype = _NUMPY_TYPES[type_id]
        shape_np = tensor.ShapeAsNumpy()
        shape = tuple(int(d) for d in (shape_np if not isinstance(shape_np, int) else []))
        spec = TensorSpec(
            index=i,
            name=(tensor.Name() or b"").decode(),
            shape=shape,
            dtype=dtype,
            sparsity=_sparsity(tensor),
            quantization=_quantization(tensor),
        )
        data = _buffer_bytes(model, raw, tensor.Buffer())
        if data is not None:
            values = np.frombuffer(data, dtype=dtype).copy()
            spec.data = values if spec.sparsity is not None else values.reshape(shape)
        tensors.append(spec)

    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        operators.append(
            OperatorSpec(
                index=i,
                name=_operator_name(model, op.OpcodeIndex()),
                inputs=tuple(int(t) for t in op.InputsAsNumpy()) if op.InputsLength() else (),
                outputs=tuple(int(t) for t in op.OutputsAsNumpy()) if op.OutputsLength() else (),
                options=_options_dict(op),
            )
        )

    return GraphSpec(
        path=path,
        tensors=tensors,
        operators=operators,
        inputs=tuple(int(t) for t in graph.InputsAsNumpy()),
        outputs=tuple(int(t) for t in graph.OutputsAsNumpy()),
    )
