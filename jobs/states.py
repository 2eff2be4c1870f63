"""The job state machine (documented with its diagram in docs/state_machine.md)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # split into segment jobs, waiting for them (then queued again to stitch them)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

#: Every transition the SQL in jobs/sql/queries.sql may make. running → queued covers retries,
#: lease rescues and graceful releases; failed/cancelled → queued is an operator's explicit retry.
TRANSITIONS: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (JobState.QUEUED, JobState.RUNNING),
        (JobState.QUEUED, JobState.CANCELLED),
        (JobState.RUNNING, JobState.SUCCEEDED),
        (JobState.RUNNING, JobState.FAILED),
        (JobState.RUNNING, JobState.CANCELLED),
        (JobState.RUNNING, JobState.QUEUED),
        (JobState.RUNNING, JobState.WAITING),
        (JobState.WAITING, JobState.QUEUED),
        (JobState.WAITING, JobState.FAILED),
        (JobState.WAITING, JobState.CANCELLED),
        (JobState.FAILED, JobState.QUEUED),
        (JobState.CANCELLED, JobState.QUEUED),
    }
)


class ErrorKind(StrEnum):
    """Why an attempt failed; ``pose_job_failures`` groups by it."""

    TIMEOUT = "timeout"  # past its deadline; the process group was killed
    CRASH = "crash"  # the child died: signal, OOM kill, non-zero exit
    WORKER_LOST = "worker_lost"  # the lease expired: the worker itself died or lost its host
    BAD_INPUT = "bad_input"  # unreadable / not a video / no frames: retrying cannot help
    PIPELINE_ERROR = "pipeline_error"  # the pipeline raised on a readable input (a bug or bad params)
    RESOURCE_EXHAUSTED = "resource_exhausted"  # out of memory (RAM or GPU), disk full, OOM-killed
    RESULT_REJECTED = "result_rejected"  # PostgreSQL refused to store the result (too large, invalid)


RETRYABLE = frozenset({ErrorKind.TIMEOUT, ErrorKind.CRASH, ErrorKind.WORKER_LOST, ErrorKind.RESOURCE_EXHAUSTED})
