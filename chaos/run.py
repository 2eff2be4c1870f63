"""Run the fault scenarios: ``python -m chaos.run [--only NAME[,NAME]] [--quick] [--strict]``.

Prints one line per scenario — ``scenario  submitted N  completed N  lost N  run_twice N  other…`` —
and exits 1 unless every scenario lost nothing and ran nothing twice (with ``--strict``, also unless
every further expectation held: workers alive, error kinds, a frozen worker noticing in time).
Everything runs on loopback against private PostgreSQL servers; every process and server a scenario
starts is stopped when it ends, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import time
import traceback
from pathlib import Path

from chaos.harness import Tally

#: name → module in chaos.scenarios, in the order they run
SCENARIOS = {
    "kill9_loop": "kill9",
    "pg_restarts": "pg_restart",
    "pg_outage": "pg_outage",
    "half_open": "half_open",
    "lost_claim_reply": "lost_claim",
    "web_kill9": "web_kill9",
    "child_faults": "child_faults",
}


def run_scenario(name: str, quick: bool, keep_logs: Path | None) -> Tally:
    module = importlib.import_module(f"chaos.scenarios.{SCENARIOS[name]}")
    started = time.monotonic()
    try:
        return module.run(quick=quick, keep_logs=keep_logs)
    except Exception as exc:  # a scenario that could not run is a failure, reported on its line
        traceback.print_exc(file=sys.stderr)
        return Tally(name, error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                     seconds=time.monotonic() - started)


def _interrupt(signum: int, _frame: object) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every finally block stops what its scenario started
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[],
                        help=f"scenario name(s), comma-separated or repeated: {', '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and a ~20 s outage")
    parser.add_argument("--strict", action="store_true",
                        help="also fail on violated expectations beyond lost/run_twice")
    parser.add_argument("--keep-logs", type=Path, help="copy every process log here before cleaning up")
    args = parser.parse_args(argv)
    names = [n for spec in args.only for n in spec.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    signal.signal(signal.SIGTERM, _interrupt)
    failed = 0
    for name in names:
        result = run_scenario(name, args.quick, args.keep_logs)
        print(result.line(), flush=True)
        if not result.ok or (args.strict and result.violations):
            failed += 1
    print(f"chaos: {len(names) - failed}/{len(names)} scenarios passed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
