"""Pipelines that misbehave on purpose, run by the real worker in a real child process.

Selected per job with ``params["behave"]``; the worker runs them through the same child program
(worker/pipeline_child.py) and attempt loop (worker/attempt.py) as the pose pipeline, so the tests
exercise the real deadline, crash and cancel paths.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

from worker.pipeline.contract import BadInput, ProgressFn, VideoSpan


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
    if behave in _FAULT_BEHAVIOURS:
        return _FAULT_BEHAVIOURS[behave](video_path, params, progress)
    raise ValueError(f"unknown behaviour {behave!r}")


# ---- behaviours for the fault suite (chaos/) -------------------------------------------------------

def _journaled(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Like "ok", then append {key, pid, start, end} to params["journal"] (one O_APPEND write per run).

    The fault suite reads the journal to find one job run to completion by two children at overlapping
    times, which the job tables alone cannot show when the second run's result is never recorded.
    """
    import json

    start = time.time()
    frames = int(params.get("frames", 3))
    delay = float(params.get("frame_s", 0.0))
    for i in range(frames):
        if delay:
            time.sleep(delay)
        progress(i + 1, frames)
    line = json.dumps({"key": params.get("key", video_path), "pid": os.getpid(), "start": start,
                       "end": time.time()}) + "\n"
    fd = os.open(params["journal"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return _document(frames)


def _memory_error(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """A real MemoryError: a 1 GiB allocation under an address-space limit just above current use.

    The limit is put back afterwards, so a warm child that survives the exception is not crippled.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (min(_address_space() + (64 << 20), hard if hard > 0 else 1 << 62),
                                            hard))
    try:
        blob = bytearray(1 << 30)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return {**_document(1), "size": len(blob)}  # not reached


def _oom(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """What the kernel's OOM killer does to a greedy child: some real allocation, then SIGKILL.

    An RLIMIT_AS cap bounds what it may take, so this can never hurt the machine it runs on.
    """
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + (256 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (min(cap, hard) if hard > 0 else cap, hard))
    hoard = []
    try:
        for _ in range(int(params.get("mb", 128)) // 16):
            hoard.append(b"\x01" * (16 << 20))  # touched pages, not just reserved ones
    except MemoryError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)
    return _document(len(hoard))  # not reached


def _disk_full(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """A real ENOSPC: write scratch output to /dev/full (or params["path"]), as on a full disk."""
    import errno

    target = params.get("path", "/dev/full")
    if not os.path.exists(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
    with open(target, "wb") as fh:
        fh.write(b"\0" * (1 << 20))
        fh.flush()
    return _document(1)  # not reached on a full device


def _address_space() -> int:
    """This process's current virtual size in bytes (the base for an RLIMIT_AS just above it)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _unstorable(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """A result that is valid JSON but that PostgreSQL's jsonb refuses (a NUL character)."""
    return {**_document(1), "note": "nul \x00 here"}


class _FullDisk(dict):
    """Serialising this raises ENOSPC part-way, as a write to a full disk does."""

    def items(self):  # type: ignore[override]
        import errno

        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _result_disk_full(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """A result whose writing fails on a full disk after its first frames are written."""
    return {**_document(int(params.get("frames", 50))), "tail": _FullDisk(x=1)}


_FAULT_BEHAVIOURS = {
    "unstorable": _unstorable,
    "result_disk_full": _result_disk_full,
    "journaled": _journaled,
    "memory_error": _memory_error,
    "oom": _oom,
    "disk_full": _disk_full,
}


def create():
    return run


def create_unavailable():
    """A pipeline that cannot load, the way the pose pipeline fails without its weights."""
    raise FileNotFoundError("model weights missing in /nowhere: run `pose-service models fetch`")


def person(frame: int, track: int) -> dict[str, Any]:
    """A result@1 person whose numbers say where they are: x = frame + track / 10, y = keypoint."""
    x = frame + track / 10
    return {
        "track_id": track,
        "bbox": [x, 0.0, x + 10.0, 20.0],
        "score": 0.5,
        "keypoints": [[x, float(k), 0.25, 0.75, 0.875] for k in range(33)],
        "world": [[0.5, float(k), -0.25] for k in range(33)],
    }


class StreamingPipeline:
    """Emits frames one by one (worker/pipeline/contract.py's ``emits_frames``), as the pose pipeline
    does: ``params["frames"]`` frames with ``params["people"]`` people each (every ``params["empty_every"]``-th
    frame has nobody), ``params["frame_s"]`` apart; the document it returns has no frames."""

    emits_frames = True

    def __call__(self, video_path: str, params: dict[str, Any], progress: ProgressFn,
                 emit_frame: Any = None) -> dict[str, Any]:
        frames, people = int(params.get("frames", 3)), int(params.get("people", 2))
        empty_every, delay = int(params.get("empty_every", 0)), float(params.get("frame_s", 0.0))
        for i in range(frames):
            if delay:
                time.sleep(delay)
            nobody = empty_every and i % empty_every == 0
            emit_frame({"index": i, "time_s": round(i / 30.0, 6),
                        "people": [] if nobody else [person(i, t) for t in range(1, people + 1)]})
            progress(i + 1, frames)
        if params.get("fail_after_frames"):
            raise ValueError("failed after its frames")
        return {
            "schema": "pose-service/result@1",
            "video": {"width": 64, "height": 48, "fps": 30.0, "frames": frames, "duration_s": frames / 30.0,
                      "rotation": 0, "skipped_frames": 0},
            "model": {"name": "fake-stream", "backend": "test", "device": "cpu", "weights_sha256": "-"},
            "keypoint_names": [f"kp{i}" for i in range(33)],
            "skeleton": [[0, 1]],
            "timings": {"decode_s": 0.0, "inference_s": 0.0, "total_s": 0.0},
        }


def create_streaming():
    return StreamingPipeline()


class SplittablePipeline:
    """A splittable streaming pipeline (contract.py's ``probe`` and ``frame_range``): a made-up video of
    ``params["frames"]`` frames at 30 fps with ``params["people"]`` people whose boxes depend only on the
    frame and the person, so every segment sees the same people in the same places, under track ids of
    its own (person + 100 × the segment's first frame) that stitching has to join. A segment that
    starts at ``params["fail_from"]`` fails (bad_input); ``frame_s`` slows every frame down."""

    emits_frames = True

    def probe(self, video_path: str, params: dict[str, Any]) -> VideoSpan:
        return VideoSpan(int(params.get("frames", 3)), 30.0)

    def __call__(self, video_path: str, params: dict[str, Any], progress: ProgressFn, emit_frame: Any = None,
                 frame_range: tuple[int, int | None] | None = None) -> dict[str, Any]:
        frames, people = int(params.get("frames", 3)), int(params.get("people", 2))
        first, stop = frame_range or (0, None)
        stop = frames if stop is None else min(stop, frames)
        if params.get("fail_from") is not None and first == int(params["fail_from"]):
            raise BadInput(f"segment from frame {first} is unreadable")
        for i in range(first, stop):
            if params.get("frame_s"):
                time.sleep(float(params["frame_s"]))
            emit_frame({"index": i, "time_s": round(i / 30.0, 6),
                        "people": [{**person(i, t), "track_id": t + 100 * first} for t in range(1, people + 1)]})
            progress(i + 1 - first, stop - first)
        return {
            "schema": "pose-service/result@1",
            "video": {"width": 64, "height": 48, "fps": 30.0, "frames": stop - first,
                      "duration_s": round(stop / 30.0, 6), "rotation": 0, "skipped_frames": 0},
            "model": {"name": "fake-split", "backend": "test", "device": "cpu", "weights_sha256": "-"},
            "keypoint_names": [f"kp{i}" for i in range(33)],
            "skeleton": [[0, 1]],
            "timings": {"decode_s": 0.25, "inference_s": 0.5, "total_s": 1.0},
        }


def create_splittable():
    return SplittablePipeline()


def create_noop():
    """A pipeline that does nothing at all: the queue-core benchmark measures only the service."""

    def noop(video_path: str, params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
        return {"schema": "pose-service/result@1", "frames": []}

    return noop
