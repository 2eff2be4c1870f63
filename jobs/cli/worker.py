"""`pose-service worker`: one worker daemon, or one per GPU with `--gpus all`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from jobs.cli.common import add_common_flags, open_store, settings_from
from jobs.settings import Settings

log = logging.getLogger("pose_service.worker")


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=("warm", "fresh"), help="env POSE_WORKER_MODE (default warm)")
    parser.add_argument("--pipeline", help="pipeline factory module:function (env POSE_PIPELINE)")
    parser.add_argument("--timeout-s", type=float, help="default per-job deadline (env POSE_TIMEOUT_S)")
    parser.add_argument("--lease-s", type=float, help="job lease; a silent worker loses its job after it")
    parser.add_argument("--heartbeat-s", type=float, help="how often the lease is extended")
    parser.add_argument("--poll-s", type=float, help="polling backstop when no NOTIFY arrives")
    parser.add_argument("--retry-base-s", type=float, help="first retry delay; doubles per attempt")
    parser.add_argument("--shutdown-grace-s", type=float, help="how long SIGTERM waits for the running job")
    parser.add_argument("--recycle-after", type=int, help="warm child is replaced after this many jobs")
    parser.add_argument("--model-dir", help="env POSE_MODEL_DIR")


def worker_overrides(args: argparse.Namespace) -> dict[str, object]:
    from pathlib import Path

    return {
        "worker_mode": args.mode,
        "pipeline": args.pipeline,
        "timeout_s": args.timeout_s,
        "lease_s": args.lease_s,
        "heartbeat_s": args.heartbeat_s,
        "poll_s": args.poll_s,
        "retry_base_s": args.retry_base_s,
        "shutdown_grace_s": args.shutdown_grace_s,
        "recycle_after": args.recycle_after,
        "model_dir": Path(args.model_dir).expanduser() if args.model_dir else None,
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("worker", help="run a worker daemon (one per GPU)")
    gpu = p.add_mutually_exclusive_group()
    gpu.add_argument("--gpu", help="pin this worker's pipeline to GPU ID (sets CUDA_VISIBLE_DEVICES)")
    gpu.add_argument("--gpus", choices=("all",), help="start one worker daemon per visible GPU")
    add_worker_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, **worker_overrides(args))
    log.info("effective configuration: %s", settings.masked())
    if args.gpus == "all":
        return run_per_gpu(args, settings)
    return run_daemon(settings, gpu=args.gpu)


def run_daemon(settings: Settings, gpu: str | None = None) -> int:
    from worker.daemon import WorkerDaemon
    from worker.parent_death import die_with_parent

    die_with_parent(signal.SIGTERM)  # started by `serve` or `--gpus all`: stop gracefully with it

    url, store = open_store(settings)
    store.close()
    daemon = WorkerDaemon(settings, url, gpu=gpu)
    daemon.install_signal_handlers()
    return daemon.run()


def without_gpus_flag(argv: list[str]) -> list[str]:
    """This command line minus `--gpus all` / `--gpus=all`, for the per-GPU children."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--gpus":
            skip = True
        elif not arg.startswith("--gpus="):
            out.append(arg)
    return out


def run_per_gpu(args: argparse.Namespace, settings: Settings) -> int:
    from worker.daemon_pool import DaemonPool
    from worker.gpus import visible_gpus
    from worker.parent_death import parent_env

    gpus = visible_gpus()
    if not gpus:
        log.warning("--gpus all: no GPU visible; starting one CPU worker")
        gpus = [None]
    base = without_gpus_flag(sys.argv[1:])
    commands = [[sys.executable, "-m", "jobs.cli", *base] + (["--gpu", gpu] if gpu is not None else [])
                for gpu in gpus]
    pool = DaemonPool(commands, env={**os.environ, **parent_env()}, stop_timeout_s=settings.shutdown_grace_s + 10)
    pool.start()
    log.info("started %d worker daemons (GPUs %s), restarted if they die",
             len(commands), ", ".join(str(g) for g in gpus))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: pool.stop_soon())
    pool.wait()
    return pool.stop()
