"""The torch rebuild of the TFLite graphs computes what LiteRT computes.

LiteRT (``ai_edge_litert``, with its default XNNPACK kernels, i.e. what MediaPipe runs) is the oracle:

* the two BlazePose models on random inputs and on real inputs from ``runner_1080p.mp4``;
* single-operator models built here, for every operator and variant the converter implements that the
  BlazePose graphs do not exercise (asymmetric SAME padding, dilation, depth multiplier, the three
  resize modes, block-sparse DENSIFY, ...);
* batching: N inputs at once give the per-item results.

Tolerances (``DETECTOR_CHECKS`` / ``LANDMARK_CHECKS`` in ``litert_oracle.py``). The issue asks for 1e-3 on
coordinates (pixels of the model input) and 1e-4 on scores / probabilities / the heatmap after the
sigmoid the pipeline applies. Every output is held to that except where LiteRT's own float32 rounding
is larger: on the detector's regressors (real frames), landmark z, landmark x/y and visibility (noise)
and the segmentation probability, LiteRT is further than the issue's bound from a float64 evaluation
of the same graph and from its own built-in kernels (``bench/tensor_parity.py`` prints the numbers;
README "Accuracy against MediaPipe" has the table). Those outputs get bounds of about twice the largest
torch-vs-LiteRT difference measured, and a test below checks that each loosening has that cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import tflite
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from tests.pipeline.litert_oracle import (
    DETECTOR_CHECKS,
    LANDMARK_CHECKS,
    PARITY_FRAMES,
    PARITY_SEEDS,
    Check,
    landmark_xyz,
    litert,
    max_differences,
    noise_inputs,
    real_inputs,
    torch_outputs,
)
from worker.pipeline.runtime.tfl import ops
from worker.pipeline.runtime.tfl.sparsity import DimensionMetadata, Sparsity, densify
from worker.pipeline.runtime.tflite_torch import TFLiteModule, UnsupportedOperator, load_tflite

# ---------------------------------------------------------------------------------------------------
# the BlazePose models

MODELS = {"detector": DETECTOR_CHECKS, "landmark": LANDMARK_CHECKS}


@pytest.fixture(scope="module")
def detector(pose_detection_path: Path) -> TFLiteModule:
    return load_tflite(pose_detection_path)


@pytest.fixture(scope="module")
def landmark_model(pose_landmark_path: Path) -> TFLiteModule:
    return load_tflite(pose_landmark_path)


@pytest.fixture(scope="module")
def parity_inputs() -> dict[str, dict[str, np.ndarray]]:
    """``{"real" | "noise": {"detector" | "landmark": batch}}``: frames of runner_1080p.mp4 and noise."""
    try:
        return {"real": real_inputs(PARITY_FRAMES), "noise": noise_inputs(PARITY_SEEDS)}
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def assert_parity(ours: list[np.ndarray], theirs: list[np.ndarray], checks: tuple[Check, ...], kind: str) -> None:
    bounds = {check.name: check.real if kind == "real" else check.noise for check in checks}
    report = {name: (diff, bounds[name]) for name, diff in max_differences(ours, theirs, checks).items()}
    failures = {name: f"{diff:.3g} > {bound:g}" for name, (diff, bound) in report.items() if diff > bound}
    assert not failures, f"torch vs LiteRT max abs differences over bound: {failures} (all: {report})"


def _model_path(model: str, model_paths: dict[str, Path]) -> Path:
    return model_paths["pose_detection" if model == "detector" else "pose_landmark_full"]


@pytest.mark.parametrize("kind", ["real", "noise"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_models_match_litert(
    model: str, kind: str, parity_inputs: dict[str, dict[str, np.ndarray]], model_paths: dict[str, Path],
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    module: TFLiteModule = request.getfixturevalue("detector" if model == "detector" else "landmark_model")
    x = parity_inputs[kind][model]
    ours, theirs = torch_outputs(module, x), litert(_model_path(model, model_paths), x)
    assert_parity(ours, theirs, MODELS[model], kind)
    if model == "landmark" and kind == "real":
        assert theirs[1].min() > 0.9, "the crops should contain a person (else this test compares noise)"


def _loosened(model: str, kind: str) -> tuple[Check, ...]:
    """The checks of ``model`` held to a looser bound than the issue's on ``kind`` inputs."""
    return tuple(c for c in MODELS[model] if (c.real if kind == "real" else c.noise) > c.target)


@pytest.mark.parametrize(
    ("model", "kind"), [(m, k) for m in sorted(MODELS) for k in ("real", "noise") if _loosened(m, k)]
)
def test_a_bound_is_looser_than_the_issue_only_where_litert_itself_is_off_by_more(
    model: str, kind: str, parity_inputs: dict[str, dict[str, np.ndarray]], model_paths: dict[str, Path]
) -> None:
    """A loosened bound needs a cause: LiteRT's float32 result differs by more than the issue's bound from
    a float64 evaluation of the same graph, or from LiteRT's own built-in kernels, on the same inputs."""
    checks = _loosened(model, kind)
    path, x = _model_path(model, model_paths), parity_inputs[kind][model]
    xnnpack = litert(path, x)
    builtin = litert(path, x, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    exact = torch_outputs(load_tflite(path, dtype=torch.float64), x)
    vs_builtin, vs_exact = max_differences(xnnpack, builtin, checks), max_differences(xnnpack, exact, checks)
    unjustified = {
        c.name: f"LiteRT is within {max(vs_builtin[c.name], vs_exact[c.name]):.3g} of float64 and its built-in "
        f"kernels, the issue asks for {c.target:g}"
        for c in checks
        if max(vs_builtin[c.name], vs_exact[c.name]) <= c.target
    }
    assert not unjustified, unjustified


@pytest.mark.parametrize("which", ["detector", "landmark_model"])
def test_a_batch_gives_the_per_item_results(which: str, request: pytest.FixtureRequest) -> None:
    module: TFLiteModule = request.getfixturevalue(which)
    x = np.random.default_rng(7).uniform(0, 1, (3, *module.input_shape[1:])).astype(np.float32)
    batched = torch_outputs(module, x)
    for i in range(3):
        single = torch_outputs(module, x[i : i + 1])
        for name, b, s in zip(module.output_names, batched, single, strict=True):
            scale = max(1.0, float(np.abs(s).max()))
            assert np.abs(b[i : i + 1] - s).max() <= 2e-6 * scale, f"{name}: item {i} differs in the batch"


def test_the_plain_conv2d_path_matches_the_fused_onednn_path(
    pose_landmark_path: Path, landmark_model: TFLiteModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CUDA and float16 run ``nn.Conv2d`` + add + activation instead of oneDNN's fused kernel."""
    x = np.random.default_rng(11).uniform(0, 1, (2, 256, 256, 3)).astype(np.float32)
    fused = torch_outputs(landmark_model, x)
    monkeypatch.setattr(ops, "ONEDNN_FUSED_CONV", False)
    plain = torch_outputs(load_tflite(pose_landmark_path), x)
    for name, a, b in zip(landmark_model.output_names, fused, plain, strict=True):
        scale = max(1.0, float(np.abs(a).max()))
        # same function, different kernels: only float32 summation order (which varies with the
        # thread count) may differ
        assert np.abs(a - b).max() <= 1e-4 * scale, name


def test_it_runs_outside_inference_mode_too(detector: TFLiteModule) -> None:
    x = torch.rand(1, 224, 224, 3)
    with torch.inference_mode():
        expected = detector(x)
    for got, want in zip(detector(x), expected, strict=True):  # grad mode on: nothing requires grad
        assert not got.requires_grad
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_float16_weights_and_activations_stay_within_a_pixel(
    pose_landmark_path: Path, parity_inputs: dict[str, dict[str, np.ndarray]]
) -> None:
    """``model.half()``, the option meant for CUDA, runs here on the CPU's float16 kernels: the same module
    code (plain ``nn.Conv2d``, float16 intermediates, float32 outputs) on a different backend."""
    x = parity_inputs["real"]["landmark"][:2]
    theirs = litert(pose_landmark_path, x)
    with torch.inference_mode():
        half = [y.numpy() for y in load_tflite(pose_landmark_path).half()(torch.from_numpy(x))]
    assert all(y.dtype == np.float32 for y in half)
    xy = np.abs(landmark_xyz(half)[..., :2] - landmark_xyz(theirs)[..., :2]).max()
    assert xy < 1.0, f"float16 landmarks are off by {xy} px of the 256 crop"
    assert np.abs(half[1] - theirs[1]).max() < 1e-2, "float16 pose flag"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_float32_and_float16_match_litert(
    pose_landmark_path: Path, parity_inputs: dict[str, dict[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    x = parity_inputs["real"]["landmark"]
    theirs = litert(pose_landmark_path, x)
    model = load_tflite(pose_landmark_path, device="cuda")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # TF32 keeps only 10 mantissa bits
    with torch.inference_mode():
        ours = [y.cpu().numpy() for y in model(torch.from_numpy(x))]
    assert_parity(ours, theirs, LANDMARK_CHECKS, "real")
    with torch.inference_mode():
        half = [y.cpu().numpy() for y in model.half()(torch.from_numpy(x))]
    xy = np.abs(landmark_xyz(half)[..., :2] - landmark_xyz(theirs)[..., :2]).max()
    assert xy < 1.0, f"float16 landmarks are off by {xy} px of the 256 crop"


def test_module_metadata_and_output_layouts(detector: TFLiteModule, landmark_model: TFLiteModule) -> None:
    assert detector.input_shape == (1, 224, 224, 3)
    assert detector.output_shapes == ((1, 2254, 12), (1, 2254, 1))
    assert landmark_model.input_shape == (1, 256, 256, 3)
    assert landmark_model.output_names == ("Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4")
    outputs = landmark_model(torch.zeros(2, 256, 256, 3))
    assert [tuple(o.shape) for o in outputs] == [(2, 195), (2, 1), (2, 256, 256, 1), (2, 64, 64, 39), (2, 117)]
    assert all(o.dtype == torch.float32 and o.is_contiguous() for o in outputs)
    with pytest.raises(ValueError, match=r"must be shaped \(N, 256, 256, 3\)"):
        landmark_model(torch.zeros(1, 224, 224, 3))


def test_selected_outputs_skip_the_unneeded_layers(pose_landmark_path: Path, landmark_model: TFLiteModule) -> None:
    pruned = load_tflite(pose_landmark_path, outputs=["Identity_3", 0])
    assert pruned.output_names == ("Identity_3", "Identity")
    assert len(pruned.layers) < len(landmark_model.layers)  # the segmentation head is gone
    x = np.random.default_rng(3).uniform(0, 1, (1, 256, 256, 3)).astype(np.float32)
    full, part = torch_outputs(landmark_model, x), torch_outputs(pruned, x)
    np.testing.assert_array_equal(part[0], full[3])
    np.testing.assert_array_equal(part[1], full[0])
    with pytest.raises(ValueError, match="has no output 'nope'"):
        load_tflite(pose_landmark_path, outputs=["nope"])


def test_an_unknown_operator_in_a_real_model_is_named(pose_landmark_path: Path, tmp_path: Path) -> None:
    """Patch the landmark model's LOGISTIC opcode into GELU, which the converter does not implement."""
    data = bytearray(pose_landmark_path.read_bytes())
    model = tflite.Model.GetRootAs(bytes(data), 0)
    graph = model.Subgraphs(0)
    op_index = next(
        i for i in range(graph.OperatorsLength())
        if model.OperatorCodes(graph.Operators(i).OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.LOGISTIC
    )  # fmt: skip
    code = model.OperatorCodes(graph.Operators(op_index).OpcodeIndex())
    table = code._tab
    deprecated_at, builtin_at = table.Offset(4), table.Offset(10)  # deprecated_builtin_code (int8), builtin_code
    assert deprecated_at and builtin_at
    data[table.Pos + deprecated_at] = 127  # PLACEHOLDER_FOR_GREATER_OP_CODES
    data[table.Pos + builtin_at : table.Pos + builtin_at + 4] = int(tflite.BuiltinOperator.GELU).to_bytes(4, "little")
    patched = tmp_path / "pose_landmark_full.tflite"
    patched.write_bytes(bytes(data))
    with pytest.raises(UnsupportedOperator) as info:
        load_tflite(patched)
    assert str(info.value) == (
        f"pose_landmark_full.tflite uses operator GELU (op index {op_index}) which tflite_torch does not implement"
    )


# ---------------------------------------------------------------------------------------------------
# single-operator models, written here with the flatbuffers builder


@dataclass
class TensorDef:
    shape: tuple[int, ...]
    data: np.ndarray | None = None
    sparsity: dict | None = None  # traversal_order, block_map, dim_metadata: [(dense_size) | (segs, idx)]
    dtype: int = tflite.TensorType.FLOAT32


@dataclass
class OpDef:
    name: str
    inputs: list[int]
    outputs: list[int]
    options: tuple[str, dict[str, int | float | bool]] | None = None


@dataclass
class ModelDef:
    tensors: list[TensorDef]
    ops: list[OpDef]
    inputs: list[int]
    outputs: list[int]
    name: str = "tiny.tflite"
    buffers: list[bytes] = field(default_factory=list)


def _int_vector(builder: flatbuffers.Builder, values: list[int], kind: str = "int32") -> int:
    fmt = {"int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}[kind]
    return builder.CreateNumpyVector(np.asarray(values, dtype=fmt))


def _sparse_index(builder: flatbuffers.Builder, values: list[int], kind: str) -> tuple[int, int]:
    cls = {"int32": "Int32Vector", "uint16": "Uint16Vector", "uint8": "Uint8Vector"}[kind]
    vector = _int_vector(builder, values, kind)
    getattr(tflite, f"{cls}Start")(builder)
    getattr(tflite, f"{cls}AddValues")(builder, vector)
    return getattr(tflite.SparseIndexVector, cls), getattr(tflite, f"{cls}End")(builder)


def _sparsity(builder: flatbuffers.Builder, spec: dict) -> int:
    dims = []
    for meta in spec["dim_metadata"]:
        if isinstance(meta, int):
            tflite.DimensionMetadataStart(builder)
            tflite.DimensionMetadataAddFormat(builder, tflite.DimensionType.DENSE)
            tflite.DimensionMetadataAddDenseSize(builder, meta)
        else:
            segments, indices, kind = meta
            seg_type, seg = _sparse_index(builder, segments, kind)
            idx_type, idx = _sparse_index(builder, indices, kind)
            tflite.DimensionMetadataStart(builder)
            tflite.DimensionMetadataAddFormat(builder, tflite.DimensionType.SPARSE_CSR)
            tflite.DimensionMetadataAddArraySegmentsType(builder, seg_type)
            tflite.DimensionMetadataAddArraySegments(builder, seg)
            tflite.DimensionMetadataAddArrayIndicesType(builder, idx_type)
            tflite.DimensionMetadataAddArrayIndices(builder, idx)
        dims.append(tflite.DimensionMetadataEnd(builder))
    order = _int_vector(builder, spec["traversal_order"])
    block_map = _int_vector(builder, spec.get("block_map", []))
    tflite.SparsityParametersStartDimMetadataVector(builder, len(dims))
    for d in reversed(dims):
        builder.PrependUOffsetTRelative(d)
    dim_vector = builder.EndVector()
    tflite.SparsityParametersStart(builder)
    tflite.SparsityParametersAddTraversalOrder(builder, order)
    tflite.SparsityParametersAddBlockMap(builder, block_map)
    tflite.SparsityParametersAddDimMetadata(builder, dim_vector)
    return tflite.SparsityParametersEnd(builder)


def _offsets_vector(builder: flatbuffers.Builder, start: Callable[..., None], items: list[int]) -> int:
    start(builder, len(items))
    for item in reversed(items):
        builder.PrependUOffsetTRelative(item)
    return builder.EndVector()


def build_model(spec: ModelDef) -> bytes:
    """Serialise a one-subgraph TFLite model; constants get their own buffers (buffer 0 stays empty)."""
    b = flatbuffers.Builder(4096)
    buffers = [b""]
    tensors = []
    for i, t in enumerate(spec.tensors):
        buffer_index = 0
        if t.data is not None:
            buffers.append(np.ascontiguousarray(t.data).tobytes())
            buffer_index = len(buffers) - 1
        name = b.CreateString(f"t{i}")
        shape = _int_vector(b, list(t.shape))
        sparsity = _sparsity(b, t.sparsity) if t.sparsity else None
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, t.dtype)
        tflite.TensorAddBuffer(b, buffer_index)
        tflite.TensorAddName(b, name)
        if sparsity is not None:
            tflite.TensorAddSparsity(b, sparsity)
        tensors.append(tflite.TensorEnd(b))

    names = sorted({op.name for op in spec.ops})
    codes = []
    for name in names:
        code = getattr(tflite.BuiltinOperator, name)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        codes.append(tflite.OperatorCodeEnd(b))

    operators = []
    for op in spec.ops:
        options = None
        if op.options is not None:
            cls, fields = op.options
            getattr(tflite, f"{cls}Start")(b)
            for key, value in fields.items():
                getattr(tflite, f"{cls}Add{key}")(b, value)
            options = getattr(tflite, f"{cls}End")(b)
        inputs, outputs = _int_vector(b, op.inputs), _int_vector(b, op.outputs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, names.index(op.name))
        tflite.OperatorAddInputs(b, inputs)
        tflite.OperatorAddOutputs(b, outputs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options[0]))
            tflite.OperatorAddBuiltinOptions(b, options)
        operators.append(tflite.OperatorEnd(b))

    tensor_vec = _offsets_vector(b, tflite.SubGraphStartTensorsVector, tensors)
    op_vec = _offsets_vector(b, tflite.SubGraphStartOperatorsVector, operators)
    in_vec, out_vec = _int_vector(b, spec.inputs), _int_vector(b, spec.outputs)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddOperators(b, op_vec)
    tflite.SubGraphAddInputs(b, in_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    subgraph = tflite.SubGraphEnd(b)

    buffer_tables = []
    for data in buffers:
        vector = None
        if data:
            b.StartVector(1, len(data), 16)  # TFLite wants constant data 16-byte aligned
            b.head = b.head - len(data)
            b.Bytes[b.head : b.head + len(data)] = data
            vector = b.EndVector()
        tflite.BufferStart(b)
        if vector is not None:
            tflite.BufferAddData(b, vector)
        buffer_tables.append(tflite.BufferEnd(b))

    code_vec = _offsets_vector(b, tflite.ModelStartOperatorCodesVector, codes)
    sub_vec = _offsets_vector(b, tflite.ModelStartSubgraphsVector, [subgraph])
    buf_vec = _offsets_vector(b, tflite.ModelStartBuffersVector, buffer_tables)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, code_vec)
    tflite.ModelAddSubgraphs(b, sub_vec)
    tflite.ModelAddBuffers(b, buf_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_both(spec: ModelDef, x: np.ndarray, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    path = tmp_path / spec.name
    path.write_bytes(build_model(spec))
    (ours,) = torch_outputs(load_tflite(path), x)
    (theirs,) = litert(path, x)
    return ours, theirs


def _weights(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, shape).astype(np.float32)


def _conv_model(kind: str, x_shape: tuple[int, ...], w: np.ndarray, out_shape: tuple[int, ...], **opts) -> ModelDef:
    options = {"Padding": 0, "StrideH": 1, "StrideW": 1, "DilationHFactor": 1, "DilationWFactor": 1}
    options.update(opts)
    cls = "Conv2DOptions" if kind == "CONV_2D" else "DepthwiseConv2DOptions"
    bias = _weights(out_shape[-1], seed=9)
    return ModelDef(
        tensors=[TensorDef(x_shape), TensorDef(w.shape, w), TensorDef(bias.shape, bias), TensorDef(out_shape)],
        ops=[OpDef(kind, [0, 1, 2], [3], (cls, options))],
        inputs=[0],
        outputs=[3],
    )


_SAME, _VALID = 0, 1
_RELU, _RELU_N1_TO_1, _RELU6, _TANH = 1, 2, 3, 4

CONV_CASES = {
    # SAME with stride 2 on an even size pads one row/column more at the bottom/right than at the top/left
    "same-stride2-even": ("CONV_2D", (1, 8, 10, 3), (4, 3, 3, 3), (1, 4, 5, 4), {"StrideH": 2, "StrideW": 2}),
    "same-stride2-odd": ("CONV_2D", (1, 9, 7, 3), (4, 3, 3, 3), (1, 5, 4, 4), {"StrideH": 2, "StrideW": 2}),
    "same-4x4-relu": ("CONV_2D", (1, 6, 6, 2), (3, 4, 4, 2), (1, 6, 6, 3), {"FusedActivationFunction": _RELU}),
    "valid-dilated-relu6": (
        "CONV_2D", (1, 9, 9, 2), (3, 3, 3, 2), (1, 5, 5, 3),
        {"Padding": _VALID, "DilationHFactor": 2, "DilationWFactor": 2, "FusedActivationFunction": _RELU6},
    ),
    "same-dilated-relu-n1-to-1": (
        "CONV_2D", (1, 7, 8, 2), (2, 3, 3, 2), (1, 7, 8, 2),
        {"DilationHFactor": 2, "DilationWFactor": 3, "FusedActivationFunction": _RELU_N1_TO_1},
    ),
    "depthwise-multiplier2-stride2": (
        "DEPTHWISE_CONV_2D", (1, 8, 8, 3), (1, 3, 3, 6), (1, 4, 4, 6),
        {"StrideH": 2, "StrideW": 2, "DepthMultiplier": 2},
    ),
    "depthwise-5x5-same": ("DEPTHWISE_CONV_2D", (1, 7, 7, 4), (1, 5, 5, 4), (1, 7, 7, 4), {"DepthMultiplier": 1}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_convolutions_match_litert(case: str, tmp_path: Path) -> None:
    kind, x_shape, w_shape, out_shape, opts = CONV_CASES[case]
    spec = _conv_model(kind, x_shape, _weights(*w_shape), out_shape, **opts)
    x = np.random.default_rng(1).normal(0, 1, (2, *x_shape[1:])).astype(np.float32)
    ours, theirs = run_both(spec, x, tmp_path)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)


def _single_op(name: str, x_shape: tuple[int, ...], out_shape: tuple[int, ...], options=None, constants=()) -> ModelDef:
    """``name(x, *constants)``; constants are (array, dtype) pairs that become tensors 2, 3, ..."""
    tensors = [TensorDef(x_shape), TensorDef(out_shape)]
    for array, dtype in constants:
        tensors.append(TensorDef(array.shape, array, dtype=dtype))
    return ModelDef(tensors, [OpDef(name, [0, *range(2, len(tensors))], [1], options)], inputs=[0], outputs=[1])


_F32, _I32 = tflite.TensorType.FLOAT32, tflite.TensorType.INT32

OP_CASES: dict[str, tuple[ModelDef, tuple[int, ...]]] = {
    "max-pool-same-padded": (
        _single_op("MAX_POOL_2D", (1, 7, 7, 3), (1, 4, 4, 3), ("Pool2DOptions", {
            "Padding": _SAME, "StrideH": 2, "StrideW": 2, "FilterHeight": 3, "FilterWidth": 3})),
        (1, 7, 7, 3),
    ),
    "avg-pool-same-excludes-padding": (
        _single_op("AVERAGE_POOL_2D", (1, 6, 5, 2), (1, 3, 3, 2), ("Pool2DOptions", {
            "Padding": _SAME, "StrideH": 2, "StrideW": 2, "FilterHeight": 3, "FilterWidth": 2})),
        (1, 6, 5, 2),
    ),
    "avg-pool-valid-relu6": (
        _single_op("AVERAGE_POOL_2D", (1, 6, 6, 2), (1, 3, 3, 2), ("Pool2DOptions", {
            "Padding": _VALID, "StrideH": 2, "StrideW": 2, "FilterHeight": 2, "FilterWidth": 2,
            "FusedActivationFunction": _RELU6})),
        (1, 6, 6, 2),
    ),
    **{
        f"resize-bilinear-{mode}-{h}x{w}": (
            _single_op("RESIZE_BILINEAR", (1, 5, 4, 3), (1, h, w, 3), ("ResizeBilinearOptions", flags),
                       [(np.array([h, w], np.int32), _I32)]),
            (1, 5, 4, 3),
        )
        for mode, flags in {
            "half-pixel": {"HalfPixelCenters": True},
            "align-corners": {"AlignCorners": True},
            "legacy": {},
        }.items()
        for h, w in ((10, 8), (7, 3))
    },
    **{
        f"resize-nearest-{mode}": (
            _single_op("RESIZE_NEAREST_NEIGHBOR", (1, 5, 4, 3), (1, 8, 9, 3), ("ResizeNearestNeighborOptions", flags),
                       [(np.array([8, 9], np.int32), _I32)]),
            (1, 5, 4, 3),
        )
        for mode, flags in {"half-pixel": {"HalfPixelCenters": True}, "legacy": {}}.items()
    },
    "depth-to-space": (
        _single_op("DEPTH_TO_SPACE", (1, 3, 4, 8), (1, 6, 8, 2), ("DepthToSpaceOptions", {"BlockSize": 2})),
        (1, 3, 4, 8),
    ),
    "pad-nhwc": (
        _single_op("PAD", (1, 3, 4, 2), (1, 6, 5, 5), None,
                   [(np.array([[0, 0], [1, 2], [0, 1], [2, 1]], np.int32), _I32)]),
        (1, 3, 4, 2),
    ),
    "padv2-value": (
        _single_op("PADV2", (1, 3, 4, 2), (1, 5, 4, 2), None, [
            (np.array([[0, 0], [1, 1], [0, 0], [0, 0]], np.int32), _I32), (np.array([-1.5], np.float32), _F32)]),
        (1, 3, 4, 2),
    ),
    "reshape-4d-to-3d": (
        _single_op("RESHAPE", (1, 3, 4, 6), (1, 24, 3), None, [(np.array([1, 24, 3], np.int32), _I32)]),
        (1, 3, 4, 6),
    ),
    "reshape-3d-to-4d": (
        _single_op("RESHAPE", (1, 12, 4), (1, 2, 3, 8), None, [(np.array([1, 2, 3, 8], np.int32), _I32)]),
        (1, 12, 4),
    ),
    "mul-broadcast-channels": (
        _single_op("MUL", (1, 3, 4, 5), (1, 3, 4, 5), None, [(_weights(5, seed=4), _F32)]),
        (1, 3, 4, 5),
    ),
    "sub-constant-first-relu": (
        ModelDef([TensorDef((1, 3, 4, 5)), TensorDef((1, 3, 4, 5)), TensorDef((1, 1, 4, 5), _weights(1, 1, 4, 5))],
                 [OpDef("SUB", [2, 0], [1], ("SubOptions", {"FusedActivationFunction": _RELU}))], [0], [1]),
        (1, 3, 4, 5),
    ),
    "add-rank2-relu-n1-to-1": (
        _single_op("ADD", (1, 7), (1, 7), ("AddOptions", {"FusedActivationFunction": _RELU_N1_TO_1}),
                   [(_weights(7, seed=5), _F32)]),
        (1, 7),
    ),
    "prelu": (
        _single_op("PRELU", (1, 3, 4, 5), (1, 3, 4, 5), None, [(_weights(1, 1, 5, seed=6), _F32)]),
        (1, 3, 4, 5),
    ),
    **{
        name: (_single_op(name, (1, 3, 4, 5), (1, 3, 4, 5)), (1, 3, 4, 5))
        for name in ("LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH")
    },
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_operators_match_litert(case: str, tmp_path: Path) -> None:
    spec, x_shape = OP_CASES[case]
    x = np.random.default_rng(2).normal(0, 3, (2, *x_shape[1:])).astype(np.float32)
    ours, theirs = run_both(spec, x, tmp_path)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("rank", "axis"), [(4, 3), (4, 1), (4, 2), (4, -1), (3, 1), (3, 2), (3, -1)])
def test_concatenation_axes_are_mapped_to_the_internal_layout(rank: int, axis: int, tmp_path: Path) -> None:
    """CONCATENATION(relu(x), x) along an NHWC axis: 4-D tensors are NCHW inside, 3-D ones are not."""
    shape = (1, 3, 4, 5)[:rank]
    out_shape = list(shape)
    out_shape[axis] *= 2
    spec = ModelDef(
        tensors=[TensorDef(shape), TensorDef(shape), TensorDef(tuple(out_shape))],
        ops=[OpDef("RELU", [0], [1]), OpDef("CONCATENATION", [1, 0], [2], ("ConcatenationOptions", {"Axis": axis}))],
        inputs=[0],
        outputs=[2],
    )
    x = np.random.default_rng(3).normal(0, 1, (2, *shape[1:])).astype(np.float32)
    ours, theirs = run_both(spec, x, tmp_path)
    np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------------------------------------------
# DENSIFY: sparse weights, decoded by us and by LiteRT from the same bytes


def _encode(
    dense: np.ndarray, order: list[int], block: tuple[int, ...], sparse_levels: set[int], kind: str
) -> tuple[np.ndarray, dict]:
    """Encode a matrix in TFLite's sparse format; the inverse of ``densify``, written independently.

    ``block`` gives a block size per dimension (empty: no blocks; block k subdivides dimension k).
    Traversal levels are ``order`` over the blocked dimensions then the block dimensions (``rank + k``);
    levels in ``sparse_levels`` are CSR and list only indices whose subtree holds a non-zero. The stored
    values are the leaves in depth-first order, zeros inside dense levels included.
    """
    rank = dense.ndim
    sizes_by_dim = {d: dense.shape[d] // (block[d] if block else 1) for d in range(rank)}
    sizes_by_dim.update({rank + k: size for k, size in enumerate(block)})

    def sub_array(path: dict[int, int]) -> np.ndarray:
        """The part of ``dense`` selected by the traversal dimensions fixed so far."""
        index = []
        for d in range(rank):
            size = block[d] if block else 1
            if d not in path:
                index.append(slice(None))
            elif rank + d in path:
                index.append(slice(path[d] * size + path[rank + d], path[d] * size + path[rank + d] + 1))
            else:
                index.append(slice(path[d] * size, (path[d] + 1) * size))
        return dense[tuple(index)]

    values: list[float] = []
    segments: dict[int, list[int]] = {level: [0] for level in sparse_levels}
    indices: dict[int, list[int]] = {level: [] for level in sparse_levels}

    def visit(level: int, path: dict[int, int]) -> None:
        if level == len(order):
            values.append(float(sub_array(path).item()))
            return
        dim = order[level]
        for i in range(sizes_by_dim[dim]):
            child = {**path, dim: i}
            if level in sparse_levels:
                if not np.any(sub_array(child)):
                    continue
                indices[level].append(i)
            visit(level + 1, child)
        if level in sparse_levels:  # parents are visited in position order, so one segment end each
            segments[level].append(len(indices[level]))

    visit(0, {})
    metadata = [
        (segments[level], indices[level], kind) if level in sparse_levels else sizes_by_dim[order[level]]
        for level in range(len(order))
    ]
    sparsity = {"traversal_order": order, "block_map": list(range(len(block))), "dim_metadata": metadata}
    return np.asarray(values, np.float32), sparsity


def _sparse_matrix(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dense = rng.normal(0, 1, shape).astype(np.float32)
    dense[rng.uniform(size=shape) < 0.6] = 0.0
    dense[1] = 0.0  # an empty row
    return dense


DENSIFY_CASES = {
    "csr-uint8": (_sparse_matrix((4, 6), 0), [0, 1], (), {1}, "uint8"),
    "csr-column-major-uint16": (_sparse_matrix((4, 6), 1), [1, 0], (), {1}, "uint16"),
    "csr-both-levels-int32": (_sparse_matrix((5, 3), 2), [0, 1], (), {0, 1}, "int32"),
    "block-2x2": (_sparse_matrix((4, 6), 3), [0, 1, 2, 3], (2, 2), {1}, "uint8"),
    "block-1x4": (_sparse_matrix((4, 8), 4), [0, 1, 2, 3], (1, 4), {1}, "int32"),
}


@pytest.mark.parametrize("case", sorted(DENSIFY_CASES))
def test_densify_matches_litert(case: str, tmp_path: Path) -> None:
    dense, order, block, sparse_levels, kind = DENSIFY_CASES[case]
    stored, sparsity = _encode(dense, order, block, sparse_levels, kind)
    spec = ModelDef(
        tensors=[TensorDef(dense.shape), TensorDef(dense.shape, stored, sparsity=sparsity),
                 TensorDef(dense.shape), TensorDef(dense.shape)],
        ops=[OpDef("DENSIFY", [1], [2]), OpDef("ADD", [0, 2], [3])],
        inputs=[0],
        outputs=[3],
    )  # fmt: skip
    x = np.zeros((dense.shape[0], *dense.shape[1:]), np.float32)  # batch = rows: x + W is W itself
    path = tmp_path / "densify.tflite"
    path.write_bytes(build_model(spec))
    (theirs,) = litert_whole(path, x)
    np.testing.assert_array_equal(theirs, dense)  # LiteRT decodes our encoding to the original matrix
    (ours,) = torch_outputs(load_tflite(path), x)
    np.testing.assert_array_equal(ours, dense)


def litert_whole(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """LiteRT on the whole input at once (the DENSIFY models' "batch" is the matrix's first dimension)."""
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(o["index"]).copy() for o in interpreter.get_output_details()]


def test_densify_decodes_the_tflite_reference_example() -> None:
    """TFLite's own format_converter_test example: 4x4, 2x2 blocks, the block rows CSR."""
    dense = np.array([[1, 0, 2, 3], [0, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 6]], np.float32)
    sparsity = Sparsity(
        traversal_order=(0, 1, 2, 3),
        block_map=(0, 1),
        dim_metadata=(
            DimensionMetadata(sparse=False, dense_size=2),
            DimensionMetadata(sparse=True, segments=np.array([0, 2, 3]), indices=np.array([0, 1, 1])),
            DimensionMetadata(sparse=False, dense_size=2),
            DimensionMetadata(sparse=False, dense_size=2),
        ),
    )
    values = np.array([1, 0, 0, 4, 2, 3, 0, 0, 5, 0, 0, 6], np.float32)
    np.testing.assert_array_equal(densify(values, (4, 4), sparsity), dense)


# ---------------------------------------------------------------------------------------------------
# unsupported operators


def test_an_unknown_operator_is_named_with_its_index(tmp_path: Path) -> None:
    spec = ModelDef(
        tensors=[TensorDef((1, 4)), TensorDef((1, 4)), TensorDef((1, 4))],
        ops=[OpDef("RELU", [0], [1]), OpDef("SQUARE", [1], [2])],
        inputs=[0],
        outputs=[2],
        name="pose_x.tflite",
    )
    path = tmp_path / spec.name
    path.write_bytes(build_model(spec))
    litert(path, np.ones((1, 4), np.float32))  # a valid model: LiteRT runs it
    with pytest.raises(UnsupportedOperator, match=r"^pose_x\.tflite uses operator SQUARE \(op index 1\) which "
                                                  r"tflite_torch does not implement$"):  # fmt: skip
        load_tflite(path)


def test_a_fused_tanh_is_refused_rather_than_guessed(tmp_path: Path) -> None:
    """TFLite's kernels ignore a fused TANH (see ops.py), so the converter will not pick a meaning."""
    spec = _conv_model("CONV_2D", (1, 4, 4, 2), _weights(2, 3, 3, 2), (1, 4, 4, 2), FusedActivationFunction=_TANH)
    path = tmp_path / "tanh.tflite"
    path.write_bytes(build_model(spec))
    with pytest.raises(UnsupportedOperator, match=r"CONV_2D \(op index 0\) with fused activation 4"):
        load_tflite(path)


def test_the_module_casts_like_any_module(pose_detection_path: Path, detector: TFLiteModule) -> None:
    """``dtype=``/``.to()`` work (float64 is how the tolerances above were calibrated); outputs stay float32."""
    model = load_tflite(pose_detection_path, dtype=torch.float64)
    assert model.dtype == torch.float64
    x = np.random.default_rng(5).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    ours64 = torch_outputs(model, x)
    ours32 = torch_outputs(detector, x)
    assert all(o.dtype == np.float32 for o in ours64)
    assert np.abs(ours64[0] - ours32[0]).max() < 3e-3


def test_weights_edited_in_place_are_used_by_the_fused_path(pose_detection_path: Path) -> None:
    """Each convolution remembers its packed weights and bound call (ops.Conv._fused); an in-place edit
    of the weights (their version changes) must be seen, not served from that memory."""
    x = np.random.default_rng(5).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)
    module = load_tflite(pose_detection_path)
    before = torch_outputs(module, x)
    first = next(layer for layer in module.layers if isinstance(layer, ops.Conv))
    with torch.no_grad():
        first.conv.weight.mul_(0.5)
    after = torch_outputs(module, x)
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(before, after, strict=True))
    fresh = load_tflite(pose_detection_path)  # packed for the first time from the edited weights
    with torch.no_grad():
        next(layer for layer in fresh.layers if isinstance(layer, ops.Conv)).conv.weight.mul_(0.5)
    for a, b in zip(after, torch_outputs(fresh, x), strict=True):
        assert np.abs(a - b).max() <= 1e-6 * max(1.0, float(np.abs(b).max()))
