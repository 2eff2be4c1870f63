"""Deadlines about progress (worker/attempt.py): a child that stalls is killed after POSE_STALL_S; the
default total deadline stretches with the video's frame count; a job's own timeout_s is a hard total."""

from __future__ import annotations

import time

from jobs.states import ErrorKind, JobState
from tests.test_worker_outcomes import finished
from worker.attempt import AttemptControls, AttemptLimits, AttemptStatus, run_attempt
from worker.child_protocol import ChildMessage, JobRequest


def test_a_stalled_child_is_killed_after_stall_s(store, start_worker):
    start_worker(env={"POSE_STALL_S": "1"})
    # reports its frame count, then hangs well inside the 1800 s default deadline
    job, _ = store.submit("/videos/a.mp4", params={"behave": "sleep", "seconds": 120, "frames": 50}, max_attempts=1)
    done = finished(store, job.id, timeout=30)
    assert done.state == JobState.FAILED and done.error_kind == "timeout"
    assert done.error_message.startswith("stalled: no progress for 1s (0/50 frames done)")
    assert "deadline" not in done.error_message
    assert (done.finished_at - done.attempt_started_at).total_seconds() < 25  # not the child's 120 s


def test_a_slow_but_progressing_child_outlives_the_base_deadline(store, start_worker):
    start_worker(env={"POSE_TIMEOUT_S": "1", "POSE_TIMEOUT_PER_FRAME_S": "2", "POSE_STALL_S": "10"})
    # 12 frames of 0.2 s: 2.4 s of work, past the 1 s base; 12 frames × 2 s allow 24 s
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 12, "frame_s": 0.2}, max_attempts=1)
    done = finished(store, job.id, timeout=40)
    assert done.state == JobState.SUCCEEDED, done.error_message
    assert (done.finished_at - done.attempt_started_at).total_seconds() > 1.0


def test_a_jobs_own_timeout_s_is_a_hard_total(store, start_worker):
    start_worker(env={"POSE_TIMEOUT_PER_FRAME_S": "2", "POSE_STALL_S": "10"})
    job, _ = store.submit("/videos/a.mp4", params={"behave": "ok", "frames": 100, "frame_s": 0.2}, timeout_s=1.0,
                          max_attempts=1)
    done = finished(store, job.id, timeout=30)
    assert done.state == JobState.FAILED and done.error_kind == "timeout"
    assert done.error_message.startswith("ran past its deadline of 1s (") and done.frames_done < 100


def test_the_total_deadline_rule():
    fixed = AttemptLimits(timeout_s=60, stall_s=5)
    assert fixed.total_s(None) == fixed.total_s(10**6) == 60
    scaled = AttemptLimits(timeout_s=1800, stall_s=300, per_frame_s=0.2)
    assert scaled.total_s(None) == scaled.total_s(0) == scaled.total_s(9000) == 1800
    assert scaled.total_s(100_000) == 20_000
    assert scaled.describe_total(100_000) == "deadline of 20000s (100000 frames × 0.2s)"
    assert scaled.describe_total(10) == "deadline of 1800s"


class RepeatingChild:
    """A child that keeps saying the same thing: messages, but no progress."""

    pid = 0

    def __init__(self) -> None:
        self.killed = False

    def send(self, request: JobRequest) -> None:
        pass

    def read_message(self, timeout: float) -> ChildMessage:
        time.sleep(0.001)
        return ChildMessage("progress", job_id=1, done=3, total=10)

    def kill(self, grace_s: float | None = None) -> None:
        self.killed = True


def test_messages_without_more_frames_done_are_no_progress():
    child = RepeatingChild()
    controls = AttemptControls(cancel_requested=lambda: False, shutdown_deadline=lambda: None,
                               report_progress=lambda done, total: None)
    t0 = time.monotonic()
    outcome = run_attempt(child, JobRequest(1, "/v.mp4", {}, "/tmp/r.json"),  # type: ignore[arg-type]
                          AttemptLimits(timeout_s=60, stall_s=0.3), controls)
    assert outcome.status is AttemptStatus.FAILED and outcome.kind is ErrorKind.TIMEOUT and child.killed
    assert outcome.message.startswith("stalled: no progress for 0.3s (3/10 frames done)")
    assert time.monotonic() - t0 < 30
