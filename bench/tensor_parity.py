#!/usr/bin/env python3
"""How far apart float32 implementations of the BlazePose graphs are: the numbers behind the parity bounds.

    .venv/bin/python bench/tensor_parity.py [--frames 0,15,...] [--seeds 8]

For each model, on real inputs from runner_1080p.mp4 and on uniform noise, and for each compared output
(the checks of ``tests/pipeline/litert_oracle.py``, i.e. exactly what the parity tests assert on), it
prints the largest absolute difference between

* ``torch-LiteRT``: this project's converter (float32, the kernels the pipeline runs) and LiteRT with its
  default XNNPACK kernels (what MediaPipe runs, the tests' oracle);
* ``LiteRT-f64``: LiteRT and the same graph evaluated in float64 by the converter (``dtype=float64``),
  i.e. LiteRT's own float32 rounding error;
* ``torch-f64``: the converter's float32 rounding error, measured the same way;
* ``XNNPACK-builtin``: LiteRT's XNNPACK kernels against LiteRT's own built-in kernels on the same model,
  two float32 implementations from the same project;

next to the issue's bound for the output's kind and the bound the tests use. Where ``LiteRT-f64`` is
above the issue's bound, no float32 implementation that sums in a different order than XNNPACK can be
held to that bound against LiteRT. Writes ``bench/results/tensor_parity.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ai_edge_litert.interpreter import OpResolverType  # noqa: E402

from tests.pipeline.litert_oracle import (  # noqa: E402
    DETECTOR_CHECKS,
    LANDMARK_CHECKS,
    Check,
    litert,
    max_differences,
    noise_inputs,
    real_inputs,
    torch_outputs,
)
from worker.pipeline.blazepose import weights  # noqa: E402
from worker.pipeline.runtime.tflite_torch import load_tflite  # noqa: E402

RESULTS = REPO / "bench" / "results" / "tensor_parity.json"
COLUMNS = ("torch-LiteRT", "LiteRT-f64", "torch-f64", "XNNPACK-builtin")


def compare(path: Path, x: np.ndarray, checks: tuple[Check, ...]) -> dict[str, dict[str, float]]:
    """Per check: the largest differences between the four evaluations, and the largest |value|."""
    xnnpack = litert(path, x)
    builtin = litert(path, x, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ours = torch_outputs(load_tflite(path), x)
    exact = torch_outputs(load_tflite(path, dtype=torch.float64), x)  # outputs come back as float32
    pairs = {
        "torch-LiteRT": (ours, xnnpack),
        "LiteRT-f64": (xnnpack, exact),
        "torch-f64": (ours, exact),
        "XNNPACK-builtin": (xnnpack, builtin),
    }
    by_pair = {name: max_differences(a, b, checks) for name, (a, b) in pairs.items()}
    return {
        check.name: {
            **{name: by_pair[name][check.name] for name in COLUMNS},
            "max_abs_value": float(np.abs(check.extract(xnnpack)).max()),
        }
        for check in checks
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default=",".join(str(i) for i in range(0, 180, 15)),
                        help="frames of runner_1080p.mp4 to use as real inputs (default: every 15th)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=8, help="noise images per model (default 8)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    frames = tuple(int(f) for f in args.frames.split(","))
    paths = weights.model_paths(weights.default_model_dir())
    inputs = {"real": real_inputs(frames), "noise": noise_inputs(tuple(range(args.seeds)))}
    models = {
        "detector": (paths["pose_detection"], DETECTOR_CHECKS),
        "landmark": (paths["pose_landmark_full"], LANDMARK_CHECKS),
    }

    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    header = f"{'model':9} {'inputs':6} {'output':20} {'issue':>7} {'test':>7} " + " ".join(f"{c:>15}" for c in COLUMNS)
    print(header + f" {'max |value|':>12}")
    for model, (path, checks) in models.items():
        for kind, by_model in inputs.items():
            rows = compare(path, by_model[model], checks)
            table.setdefault(model, {})[kind] = rows
            for check in checks:
                row = rows[check.name]
                test_bound = check.real if kind == "real" else check.noise
                over = "*" if row["LiteRT-f64"] > check.target else " "
                cells = " ".join(f"{row[c]:>15.2e}" for c in COLUMNS)
                print(
                    f"{model:9} {kind:6} {check.name:20} {check.target:>7.0e} {test_bound:>7.0e} {cells}"
                    f" {row['max_abs_value']:>12.4g} {over}"
                )
    print("\n* LiteRT's own float32 error (LiteRT-f64) is above the issue's bound for that output")

    document = {
        "benchmark": "tensor_parity",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": {"frames": frames, "noise_seeds": args.seeds, "torch": torch.__version__},
        "bounds": {
            check.name: {"issue": check.target, "test_real": check.real, "test_noise": check.noise}
            for check in (*DETECTOR_CHECKS, *LANDMARK_CHECKS)
        },
        "max_abs_differences": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
