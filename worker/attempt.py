"""One attempt of one job in a pipeline child, watched from the outside, and its outcome.

The loop wakes every few tens of milliseconds to check the deadline, a cancel request and a
shutdown; that polling interval is what bounds "killed within a second".
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


@dataclass(frozen=True)
class AttemptOutcome:
    """succeeded, or failed with an ErrorKind; ``cancelled``/``released`` when the worker stopped it."""

    status: AttemptStatus
    kind: ErrorKind | None = None
    message: str = ""
    frames_done: int = 0
    frames_total: int | None = None

    def __post_init__(self) -> None:
        # a word that is no status fails here, where it is made, not later when it is recorded
        object.__setattr__(self, "status", AttemptStatus(self.status))


@dataclass
class AttemptControls:
    """What the daemon lets the attempt consult while it runs."""

    cancel_requested: Callable[[], bool]
    shutdown_deadline: Callable[[], float | None]  # monotonic time to give up by, once shutting down
    report_progress: Callable[[int, int | None], None]


def run_attempt(
    child: PipelineChild, request: JobRequest, timeout_s: float, controls: AttemptControls
) -> AttemptOutcome:
    """Send ``request`` to ``child`` and wait for its outcome, enforcing deadline/cancel/shutdown.

    On any outcome other than succeeded/failed-with-a-message, the child has been killed and must
    not be reused; ``AttemptOutcome.status`` tells the caller which.
    """
    deadline = time.monotonic() + timeout_s
    done, total = 0, None
    try:
        child.send(request)
        while True:
            msg = child.read_message(POLL_S)
            if msg is not None:
                if msg.job_id not in (None, request.job_id):
                    log.warning("ignoring a message for job %s", msg.job_id)
                    continue
                if msg.type == "progress":
                    done, total = msg.done, msg.total
                    controls.report_progress(done, total)
                elif msg.type == "done":
                    return AttemptOutcome(AttemptStatus.SUCCEEDED, frames_done=msg.done, frames_total=msg.total)
                elif msg.type == "error":
                    kind = ErrorKind(msg.kind or ErrorKind.PIPELINE_ERROR)
                    return AttemptOutcome(AttemptStatus.FAILED, kind, msg.message or "", done, total)
                continue
            now = time.monotonic()
            if controls.cancel_requested():
                log.info("cancel requested: killing pipeline child %s", child.pid)
                child.kill(grace_s=CANCEL_GRACE_S)
                return AttemptOutcome(AttemptStatus.CANCELLED, frames_done=done, frames_total=total)
            if now >= deadline:
                log.warning("deadline of %.1fs passed: killing pipeline child %s", timeout_s, child.pid)
                child.kill()
                return AttemptOutcome(
                    AttemptStatus.FAILED,
                    ErrorKind.TIMEOUT,
                    f"ran past its deadline of {timeout_s:g}s ({done}/{total if total is not None else '?'} "
                    "frames done); the process group was killed",
                    done,
                    total,
                )
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
