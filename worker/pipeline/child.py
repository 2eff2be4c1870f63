"""The pipeline child process: load a pipeline once, then run the jobs its worker sends.

Run as ``python -m worker.pipeline.child --pipeline module:factory [--max-jobs N]``. It is started in
its own process group by worker/pipeline_child.py, and worker/attempt.py owns all timing and killing;
this side only loads, runs and reports. Here (and only here) torch and the models are imported.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import signal
import sys
import time
import traceback
from typing import IO, Any, cast

from worker.child_protocol import (
    BAD_INPUT,
    CHILD_FD_ENV,
    FRAMES_MAX_DELAY_S,
    FRAMES_PER_MESSAGE,
    PIPELINE_ERROR,
    RESOURCE_EXHAUSTED,
    UNAVAILABLE_EXIT,
    ChildMessage,
    JobRequest,
)
from worker.exhaustion import exhausted
from worker.frame_spool import BlockEncoder
from worker.parent_death import die_with_parent
from worker.pipeline.backends import BackendPipelines
from worker.pipeline.contract import BadInput, Pipeline, VideoSpan

log = logging.getLogger("pose_service.child")
PROGRESS_MIN_INTERVAL_S = 0.2


class Reporter:
    """Writes messages to the worker; progress is throttled so a fast pipeline cannot flood it."""

    def __init__(self, channel: IO[bytes]) -> None:
        self.channel = channel
        self._last_progress = 0.0

    def send(self, message: ChildMessage) -> None:
        self.channel.write(message.encode())
        self.channel.flush()

    def progress(self, job_id: int, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_MIN_INTERVAL_S or (total is not None and done >= total):
            self._last_progress = now
            self.send(ChildMessage("progress", job_id=job_id, done=done, total=total))


class FrameSpool:
    """Appends a job's frames to its spool file a block at a time, already in the form the worker hands
    to COPY (worker/frame_spool.py), and tells the worker, one ``frames`` message per block, how far the
    file is complete (child_protocol). Holds at most one block: each frame's numbers are copied out as
    it is added, so the pipeline may drop or reuse the frame at once."""

    def __init__(self, path: str, job_id: int, reporter: Reporter) -> None:
        self.path = path
        self.file: IO[bytes] | None = None  # opened by the first block
        self.job_id = job_id
        self.reporter = reporter
        self.count = 0
        self._block = BlockEncoder()
        self._oldest_unsent = 0.0

    def add(self, frame: dict[str, Any]) -> None:
        self._block.add(frame)  # ValueError for what a result cannot hold (NaN, frames out of order)
        self.count += 1
        if self._block.frames == 1:
            self._oldest_unsent = time.monotonic()
        if self._block.frames >= FRAMES_PER_MESSAGE or time.monotonic() - self._oldest_unsent >= FRAMES_MAX_DELAY_S:
            self.flush()

    def flush(self) -> None:
        if self._block.empty:
            return
        if self.file is None:
            self.file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._block.write(self.file)
        self.file.flush()
        self.reporter.send(ChildMessage("frames", job_id=self.job_id, done=self.count, end=self.file.tell()))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _split_span(pipeline: Pipeline, request: JobRequest) -> VideoSpan | None:
    """The video's span when the worker asked whether to split the job (``split_after_s``), the
    pipeline can tell (``probe``) and the video is longer than that; otherwise None: run it whole."""
    probe = getattr(pipeline, "probe", None)
    if not request.split_after_s or probe is None:
        return None
    span = probe(request.video_path, request.params)
    if span is None or span.fps <= 0 or span.frames < 2 or span.frames / span.fps <= request.split_after_s:
        return None
    return cast(VideoSpan, span)


def run_one(pipeline: Pipeline, request: JobRequest, reporter: Reporter) -> None:
    """Run one job and report exactly one ``done`` or ``error``. Nothing a job does ends this
    process: a warm child must stay usable (or be retired by its worker) after any outcome."""
    seen_done, seen_total = 0, None  # the last progress the pipeline reported

    def progress(done: int, total: int | None) -> None:
        nonlocal seen_done, seen_total
        seen_done, seen_total = done, total
        reporter.progress(request.job_id, done, total)

    def error(kind: str, message: str) -> None:
        reporter.send(ChildMessage("error", job_id=request.job_id, kind=kind, message=message))

    tmp = request.result_path + ".tmp"
    spool: FrameSpool | None = None
    try:
        span = _split_span(pipeline, request)
        if span is not None:  # too long for one worker: the worker splits the job into segment jobs
            reporter.send(ChildMessage("split", job_id=request.job_id, total=span.frames, fps=span.fps))
            return
        spool = FrameSpool(request.spool_path, request.job_id, reporter)
        kwargs: dict[str, Any] = {}
        if request.frame_range is not None:
            if getattr(pipeline, "probe", None) is None:
                raise ValueError("this job is a segment of a longer video, and the pipeline cannot process a "
                                 "stretch of a video (it has no probe method; worker/pipeline/contract.py)")
            first, stop = request.frame_range
            kwargs["frame_range"] = (first, stop)
        if getattr(pipeline, "emits_frames", False):
            kwargs["emit_frame"] = spool.add
        if kwargs:
            extended: Any = pipeline
            document = extended(request.video_path, request.params, progress, **kwargs)
        else:
            document = pipeline(request.video_path, request.params, progress)
        frames = document.pop("frames", None) if isinstance(document, dict) else None
        for frame in frames or ():  # a pipeline that returned the whole document: its frames the same way
            spool.add(frame)
        spool.flush()
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(document, fh, separators=(",", ":"), allow_nan=False)
        os.replace(tmp, request.result_path)
    except BadInput as exc:
        error(BAD_INPUT, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome, none ends the child
        what = exhausted(exc)
        if what is not None:  # retried by the worker, which also retires this child
            log.error("job %s ran out of resources: %s", request.job_id, what)
            error(RESOURCE_EXHAUSTED, what)
        else:  # a pipeline bug or bad params: report it, keep serving
            log.error("pipeline failed on job %s:\n%s", request.job_id, traceback.format_exc())
            error(PIPELINE_ERROR, f"{type(exc).__name__}: {exc}")
        return
    finally:
        if spool is not None:
            with contextlib.suppress(OSError):
                spool.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a partial result would fill the disk for the retry too
    done = max(seen_done, spool.count if spool is not None else 0)
    total = seen_total if seen_total is not None else done
    reporter.send(ChildMessage("done", job_id=request.job_id, done=done, total=total))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.pipeline.child")
    parser.add_argument("--pipeline", required=True, help="module:factory")
    parser.add_argument("--max-jobs", type=int, default=0, help="exit after this many jobs (0: no limit)")
    args = parser.parse_args(argv)
    die_with_parent(signal.SIGKILL)  # an orphaned child must not keep a GPU busy
    faulthandler.enable()  # a segfault leaves its Python stack in the stderr tail the worker reports
    logging.basicConfig(level=os.environ.get("POSE_LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fd = int(os.environ[CHILD_FD_ENV])
    reporter = Reporter(os.fdopen(fd, "wb", buffering=0))
    try:
        pipelines = BackendPipelines(args.pipeline)  # the default backend now, any other on first use
        pipelines.get()
    except Exception as exc:  # noqa: BLE001 - the reason must reach the worker, not just stderr
        log.error("pipeline %s cannot load:\n%s", args.pipeline, traceback.format_exc())
        reporter.send(ChildMessage("unavailable", message=f"{type(exc).__name__}: {exc}"))
        return UNAVAILABLE_EXIT
    reporter.send(ChildMessage("ready"))
    served = 0
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        request = JobRequest.decode(line)
        try:
            pipeline = pipelines.get(request.backend)
        except Exception as exc:  # noqa: BLE001 - this job's backend cannot load here: its outcome, not the child's end
            log.error("backend %s cannot load:\n%s", request.backend, traceback.format_exc())
            why = f"the {request.backend} backend cannot load: {type(exc).__name__}: {exc}"
            reporter.send(ChildMessage("error", job_id=request.job_id, kind=PIPELINE_ERROR, message=why))
        else:
            run_one(pipeline, request, reporter)
        served += 1
        if args.max_jobs and served >= args.max_jobs:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
