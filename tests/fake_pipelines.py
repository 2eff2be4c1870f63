"""Pipelines that misbehave on purpose, run by the real worker in a real child process.

Selected per job with ``params["behave"]``; the worker runs them through the same child program and
supervisor as the pose pipeline, so the tests exercise the real deadline, crash and cancel paths.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

from worker.pipeline.contract import BadInput, ProgressFn


def _document(frames: int) -> dict[str, Any]:
    return {
        "schema": "pose-service/result@1",
        "pid": os.getpid(),
        "frames": [{"index": i, "time_s": i / 30.0, "people": []} for i in range(frames)],
    }


def run(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    behave = params.get("behave", "ok")
    if params.get("pidfile"):
        with open(params["pidfile"], "w") as fh:
            fh.write(str(os.getpid()))
    frames = int(params.get("frames", 3))
    if behave == "ok":
        delay = float(params.get("frame_s", 0.0))
        for i in range(frames):
            if delay:
                time.sleep(delay)
            progress(i + 1, frames)
        return _document(frames)
    if behave == "sleep":
        progress(0, frames)
        time.sleep(float(params.get("seconds", 60)))
        return _document(frames)
    if behave == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(float(params.get("seconds", 60)))
        return _document(frames)
    if behave == "segfault":
        ctypes.string_at(0)
    if behave == "exit":
        os._exit(int(params.get("code", 3)))
    if behave == "bad_input":
        raise BadInput(f"{video_path} is not a video")
    if behave == "env":
        return {**_document(1), "env": os.environ.get(params["name"])}
    if behave == "checksum":
        import hashlib

        with open(video_path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        return {**_document(1), "sha256": digest, "path": video_path}
    if behave == "raise":
        raise ValueError("unknown parameter 'foo'")
    raise ValueError(f"unknown behaviour {behave!r}")


def create():
    return run


def create_noop():
    """A pipeline that does nothing at all: the queue-core benchmark measures only the service."""

    def noop(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
        return {"schema": "pose-service/result@1", "frames": []}

    return noop
