"""One attempt of one job in a pipeline child, watched from the outside, and its outcome.

The loop wakes every few tens of milliseconds (and after every message) to check the deadlines, a
cancel request and a shutdown; that polling interval is what bounds "killed within a second".

Two deadlines, both ``timeout`` (``AttemptLimits``): the child must make progress (report more frames
done, or its frame count for the first time) at least every ``stall_s``, counted from when the job is
sent; and it must finish within a total that is a job's own ``timeout_s``, or else POSE_TIMEOUT_S
stretched to ``frames_total × timeout_per_frame_s`` once the child reports its frame count, so a long
video is not killed for being long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from jobs.states import ErrorKind
from worker.child_protocol import JobRequest
from worker.pipeline_child import POLL_S, ChildDied, PipelineChild

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 0.5


class AttemptStatus(StrEnum):
    """How an attempt ended, as the daemon records it. A StrEnum so a status still logs, and compares,
    as the plain word it always was."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # with an ErrorKind
    CANCELLED = "cancelled"  # a cancel request stopped it
    RELEASED = "released"  # the worker is shutting down; the job goes back to the queue
    SPLIT = "split"  # too long for one worker: the child measured it, the job becomes segment jobs


@dataclass(frozen=True)
class AttemptOutcome:
    """succeeded, or failed with an ErrorKind; ``cancelled``/``released`` when the worker stopped it;
    ``split`` when the child found the video too long for one job."""

    status: AttemptStatus
    kind: ErrorKind | None = None
    message: str = ""
    frames_done: int = 0
    frames_total: int | None = None
    fps: float | None = None  # SPLIT: the video's frame rate (frames_total: its frame count)

    def __post_init__(self) -> None:
        # a word that is no status fails here, where it is made, not later when it is recorded
        object.__setattr__(self, "status", AttemptStatus(self.status))


@dataclass(frozen=True)
class AttemptLimits:
    """How long an attempt may run: ``timeout_s`` in all, stretched to ``frames_total × per_frame_s``
    when the child reports more frames than that covers (``per_frame_s`` 0: a fixed total, a job's own
    ``timeout_s``), and ``stall_s`` without progress."""

    timeout_s: float
    stall_s: float
    per_frame_s: float = 0.0

    def total_s(self, frames_total: int | None) -> float:
        if not self.per_frame_s or not frames_total:
            return self.timeout_s
        return max(self.timeout_s, frames_total * self.per_frame_s)

    def describe_total(self, frames_total: int | None) -> str:
        total_s = self.total_s(frames_total)
        if total_s == self.timeout_s:
            return f"deadline of {total_s:g}s"
        return f"deadline of {total_s:g}s ({frames_total} frames × {self.per_frame_s:g}s)"


@dataclass
class AttemptControls:
    """What the daemon lets the attempt consult while it runs."""

    cancel_requested: Callable[[], bool]
    shutdown_deadline: Callable[[], float | None]  # monotonic time to give up by, once shutting down
    report_progress: Callable[[int, int | None], None]
    #: the child flushed frames to its spool up to this byte (worker/frame_writer.py; must not block)
    frames_ready: Callable[[int], None] = lambda end: None


def run_attempt(
    child: PipelineChild, request: JobRequest, limits: AttemptLimits, controls: AttemptControls
) -> AttemptOutcome:
    """Send ``request`` to ``child`` and wait for its outcome, enforcing deadlines/cancel/shutdown.

    On any outcome other than succeeded/failed-with-a-message, the child has been killed and must
    not be reused; ``AttemptOutcome.status`` tells the caller which.
    """
    started = progressed = time.monotonic()
    done, total = 0, None
    try:
        child.send(request)
        while True:
            msg = child.read_message(POLL_S)
            if msg is not None and msg.job_id not in (None, request.job_id):
                log.warning("ignoring a message for job %s", msg.job_id)
            elif msg is not None:
                if msg.type == "progress":
                    if msg.done > done or (msg.total is not None and total is None):
                        progressed = time.monotonic()
                    done, total = msg.done, msg.total
                    controls.report_progress(done, total)
                elif msg.type == "frames":
                    if msg.end is not None:
                        controls.frames_ready(msg.end)
                elif msg.type == "done":
                    return AttemptOutcome(AttemptStatus.SUCCEEDED, frames_done=msg.done, frames_total=msg.total)
                elif msg.type == "split" and msg.total and msg.fps:
                    return AttemptOutcome(AttemptStatus.SPLIT, frames_total=msg.total, fps=msg.fps)
                elif msg.type == "error":
                    kind = ErrorKind(msg.kind or ErrorKind.PIPELINE_ERROR)
                    return AttemptOutcome(AttemptStatus.FAILED, kind, msg.message or "", done, total)
            now = time.monotonic()
            if controls.cancel_requested():
                log.info("cancel requested: killing pipeline child %s", child.pid)
                child.kill(grace_s=CANCEL_GRACE_S)
                return AttemptOutcome(AttemptStatus.CANCELLED, frames_done=done, frames_total=total)
            frames = f"{done}/{total if total is not None else '?'} frames done"
            if now >= started + limits.total_s(total):
                deadline = limits.describe_total(total)
                log.warning("%s passed: killing pipeline child %s", deadline, child.pid)
                child.kill()
                return AttemptOutcome(AttemptStatus.FAILED, ErrorKind.TIMEOUT,
                                      f"ran past its {deadline} ({frames}); the process group was killed",
                                      done, total)
            if now >= progressed + limits.stall_s:
                log.warning("no progress for %.1fs: killing pipeline child %s", limits.stall_s, child.pid)
                child.kill()
                return AttemptOutcome(AttemptStatus.FAILED, ErrorKind.TIMEOUT,
                                      f"stalled: no progress for {limits.stall_s:g}s ({frames}); the process "
                                      "group was killed", done, total)
            stop_by = controls.shutdown_deadline()
            if stop_by is not None and now >= stop_by:
                log.warning("shutdown grace period over: killing pipeline child %s", child.pid)
                child.kill(grace_s=CANCEL_GRACE_S)
                return AttemptOutcome(AttemptStatus.RELEASED, frames_done=done, frames_total=total)
    except ChildDied as exc:
        tail = child.stderr_tail().strip()
        child.kill(grace_s=0)
        message = str(exc) + (f"; stderr tail:\n{tail}" if tail else "")
        return AttemptOutcome(AttemptStatus.FAILED, exc.kind, message, done, total)
