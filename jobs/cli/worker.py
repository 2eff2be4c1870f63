"""`pose-service worker`: one worker daemon, or one per GPU with `--gpus all`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from jobs.cli.common import add_setting_flags, open_store, settings_from
from jobs.retention import RetentionDuty
from jobs.settings import WORKER, Settings
from jobs.store import JobStore

log = logging.getLogger("pose_service.worker")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("worker", help="run a worker daemon (one per GPU)")
    gpu = p.add_mutually_exclusive_group()
    gpu.add_argument("--gpu", help="pin this worker's pipeline to GPU ID (sets CUDA_VISIBLE_DEVICES)")
    gpu.add_argument("--gpus", choices=("all",), help="start one worker daemon per visible GPU")
    add_setting_flags(p, WORKER)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
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
    # partitions ahead and, with POSE_RETENTION_DAYS, expired frames and uploads: a deployment without
    # a web process needs it too, and one pass runs at a time however many processes run it
    retention = RetentionDuty(JobStore.connect(url, pool_size=1), settings.retention_days)
    retention.start()
    try:
        return daemon.run()
    finally:
        retention.stop()
        retention.store.close()


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

    gpus: list[str | None] = list(visible_gpus())
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
