"""The `pose-service` command line.

Each command group lives in its own module exposing ``register(subparsers)``; the module's imports
of heavy parts (torch, uvicorn) happen inside the command so `pose-service status` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "jobs.cli.serve",
    "jobs.cli.web",
    "jobs.cli.db",
    "jobs.cli.worker",
    "jobs.cli.client",
    "jobs.cli.analysis",
    "jobs.cli.tokens",
    "jobs.cli.pipeline",
    "jobs.cli.demo",
    "jobs.cli.doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pose-service", description="Durable job service that turns videos of people into poses."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command group that is not there yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from jobs.cli.pipeline import DELEGATED, delegate

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        return delegate(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    from jobs.database import SchemaOutOfDate

    try:
        return int(args.func(args) or 0)
    except SchemaOutOfDate as exc:
        print(f"pose-service: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
