"""`pose-service run VIDEO ...` and `pose-service models ...`: the pipeline without the database.

Both hand their arguments to their own command modules (jobs/cli/run.py, jobs/cli/model_weights.py),
imported only when used, so commands that never touch torch do not pay for importing it. They live in
jobs/cli, the composition root, rather than in worker/pipeline: the pipeline package is what the
worker's child runs, and knows nothing of command lines.
"""

from __future__ import annotations

import argparse

#: commands whose whole argument list belongs to one module (it parses its own flags)
DELEGATED = {"run": "jobs.cli.run", "models": "jobs.cli.model_weights"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # listed here for `pose-service --help`; jobs.cli.main hands their arguments over unparsed
    subparsers.add_parser("run", help="run the pose pipeline once on a video, no database (run --help)")
    subparsers.add_parser("models", help="fetch / verify the model weights (models --help)")


def delegate(command: str, argv: list[str]) -> int:
    import importlib

    return int(importlib.import_module(DELEGATED[command]).main(argv) or 0)
