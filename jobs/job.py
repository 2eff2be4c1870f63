"""The job as the rest of the code sees it: an immutable snapshot of one pose_jobs row."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.states import FINAL_STATES, JobState


@dataclass(frozen=True)
class Job:
    id: int
    state: JobState
    video_path: str | None
    upload_id: int | None
    priority: int
    params: dict[str, Any]
    max_attempts: int
    attempt: int
    timeout_s: float | None
    run_after: datetime
    idempotency_key: str | None
    created_at: datetime
    started_at: datetime | None
    attempt_started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    worker_id: str | None
    frames_done: int
    frames_total: int | None
    cancel_requested: bool
    error_kind: str | None
    error_message: str | None
    owner_token_id: int | None = None  # the API token that submitted it; None: SQL, env token, open API
    retries: int = 0  # how often the API re-queued it after it ended (capped: jobs.store.MAX_RETRIES)
    # one long video, many workers (migration 0007): a segment's parent, place and frames [first, stop)
    # (stop None: to the end of the video); a split parent's number of segments
    parent_id: int | None = None
    segment_index: int | None = None
    segment_first: int | None = None
    segment_stop: int | None = None
    segment_count: int | None = None
    # a split parent's segments as get_visible_job/list_jobs read them (pose_segments_progress)
    segments_done_frames: int | None = None
    segments_succeeded: int | None = None
    segments_running: int | None = None
    # sport analysis (migration 0011): 'pose' (a video) or 'analysis' (of the keypoints of job
    # source_job_id, or of an uploaded keypoints file: upload_id)
    kind: str = "pose"
    source_job_id: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """From a named-tuple row of pose_jobs (extra columns, as in a combined statement, are ignored;
        missing ones that have a default take it, so a statement naming its columns still works)."""
        data = row._asdict()
        data["state"] = JobState(data["state"])
        return cls(
            **{
                f.name: data[f.name]
                for f in dataclasses.fields(cls)
                if f.name in data or f.default is dataclasses.MISSING
            }
        )

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def is_split(self) -> bool:
        """A parent whose frames come from its segments (it waits for them, then stitches them)."""
        return self.segment_count is not None

    @property
    def frames_progress(self) -> int:
        """Frames done: a waiting parent's are its segments' together (each counting the frames it owns)."""
        if self.state == JobState.WAITING and self.segments_done_frames is not None:
            return self.segments_done_frames
        return self.frames_done

    @property
    def progress_percent(self) -> float | None:
        if not self.frames_total:
            return 100.0 if self.state == JobState.SUCCEEDED else None
        return round(100.0 * min(self.frames_progress, self.frames_total) / self.frames_total, 1)

    @property
    def wait_s(self) -> float | None:
        """Seconds from submission to the first claim."""
        if self.started_at is None:
            return None
        return (self.started_at - self.created_at).total_seconds()

    @property
    def run_s(self) -> float | None:
        """Seconds the latest attempt ran (so far, if it still runs)."""
        if self.attempt_started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.attempt_started_at).total_seconds()
