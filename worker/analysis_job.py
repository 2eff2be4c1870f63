"""Analysis jobs (``pose_jobs.kind = 'analysis'``, migration 0011) on the worker's side.

An analysis job runs in a pipeline child like any job (same protocol, deadlines, cancel and kills:
worker/attempt.py), but in a child of its own that loads no model
(``worker.pipeline.analysis.pipeline:create``), kept warm beside the pose child. Its input is staged
here: a stored pose job's keypoints are read from ``pose_frame_people`` a page of frames per statement
(in frame order, as the index has them) into a track file (worker/pipeline/analysis/track_file.py),
which the child reads a track at a time, so the worker holds a page and the child one track; an
uploaded keypoints file is staged like an uploaded video. The child writes one analysed track per
line; :func:`save` writes them into PostgreSQL fenced by (job, worker, attempt), as frames are, before
the daemon records the success.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from jobs.analyses import store_analysis
from jobs.job import Job
from jobs.states import ErrorKind
from jobs.store import JobStore
from worker.attempt import AttemptControls, AttemptLimits, AttemptOutcome, AttemptStatus, run_attempt
from worker.child_protocol import JobRequest
from worker.child_slot import ChildSlot
from worker.db_retry import describe, is_transient
from worker.exhaustion import exhausted
from worker.input_staging import InputRefused, staged_video
from worker.pipeline.analysis.track_file import TrackFileWriter
from worker.pipeline.analysis.track_output import bin_path, read_tracks
from worker.pipeline.backends import BACKEND_ENV
from worker.pipeline_child import ChildDied

log = logging.getLogger(__name__)

PIPELINE = "worker.pipeline.analysis.pipeline:create"
#: Frames (of every track) per statement while the input is staged.
PAGE_FRAMES = 1024


def child_slot(env: dict[str, str], *, recycle_after: int, kill_grace_s: float) -> ChildSlot:
    """The warm slot of the analysis child. Its environment is the pose child's but for the backend:
    the child runs the pipeline it is given (BackendPipelines' ``blazepose``, "the configured one"),
    whatever this worker's default backend, so an analysis never loads a pose model."""
    return ChildSlot(pipeline=PIPELINE, mode="warm", recycle_after=recycle_after,
                     env={**env, BACKEND_ENV: "blazepose"}, kill_grace_s=kill_grace_s)


@contextlib.contextmanager
def staged_input(store: JobStore, job: Job, work_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The child's input path and how to read it (``input``, ``source`` of the request params)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if job.source_job_id is None:
        with staged_video(store, job, work_dir) as path:
            yield path, {"input": "upload", "source": f"upload {job.upload_id}"}
        return
    tracks = work_dir / f"job{job.id}-a{job.attempt}.tracks"
    try:
        write_track_file(store, job.source_job_id, tracks)
        yield str(tracks), {"input": "tracks", "source": f"job {job.source_job_id}"}
    finally:
        for leftover in (tracks, tracks.with_name(tracks.name + ".bin")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def write_track_file(store: JobStore, source_job_id: int, path: Path) -> int:
    """Write the stored frames of pose job ``source_job_id`` as a track file, reading ``PAGE_FRAMES``
    frames per statement in frame order; its person-frames. InputRefused when the job has no stored
    frames to analyse (never succeeded, or expired)."""
    with store.transaction() as tx:
        source = tx.one("analysis_source", id=source_job_id, visible_to=None)
        if source is None or source.state != "succeeded":
            raise InputRefused(f"job {source_job_id} has not succeeded: there are no keypoints to analyse")
        if source.frames_deleted_at is not None:
            raise InputRefused(f"job {source_job_id}'s frames were deleted by retention")
        bounds = tx.one("analysis_source_bounds", id=source_job_id)
    writer = TrackFileWriter(path, source.fps, source.model, f"job {source_job_id}")
    try:
        if bounds.first is not None:
            for first in range(bounds.first, bounds.last + 1, PAGE_FRAMES):
                with store.transaction() as tx:
                    rows = tx.all("analysis_source_page", id=source_job_id, first=first, stop=first + PAGE_FRAMES)
                per_track: dict[int, list[tuple[int, float, str | None, str | None]]] = {}
                for r in rows:
                    per_track.setdefault(r.track_id, []).append((r.frame_index, r.time_s, r.keypoints, r.world))
                for track_id, track_rows in per_track.items():
                    writer.add_rows(track_id, track_rows)
        writer.close()
    except BaseException:
        writer.discard()
        raise
    return writer.person_frames


def run(store: JobStore, job: Job, slot: ChildSlot, work_dir: Path, result_path: Path, tracks_path: Path,
        limits: AttemptLimits, controls: AttemptControls, should_stop: Callable[[], bool]) -> AttemptOutcome:
    """One attempt of an analysis job: stage the input, run the analysis child, return the outcome (the
    analysis is then in ``result_path`` and ``tracks_path``)."""
    try:
        with staged_input(store, job, work_dir) as (input_path, how):
            child = slot.acquire(should_stop)
            params = {**how, "analysis": job.params, "output": str(tracks_path)}
            request = JobRequest(job.id, input_path, params, str(result_path), str(result_path) + ".frames")
            return run_attempt(child, request, limits, controls)
    except InputRefused as exc:
        return AttemptOutcome(AttemptStatus.FAILED, ErrorKind.BAD_INPUT, str(exc))
    except ChildDied as exc:
        return AttemptOutcome(AttemptStatus.RELEASED if should_stop() else AttemptStatus.FAILED, exc.kind, str(exc))
    except TimeoutError as exc:
        return AttemptOutcome(AttemptStatus.FAILED, ErrorKind.TIMEOUT, str(exc))
    except Exception as exc:  # staging the keypoints or starting the child failed on this host
        if is_transient(exc):
            log.warning("database unavailable while staging the keypoints (%s); giving the attempt back",
                        describe(exc))
            return AttemptOutcome(AttemptStatus.RELEASED)
        if (what := exhausted(exc)) is not None:
            return AttemptOutcome(AttemptStatus.FAILED, ErrorKind.RESOURCE_EXHAUSTED, f"staging the keypoints: {what}")
        log.exception("analysis attempt could not run")
        return AttemptOutcome(AttemptStatus.FAILED, ErrorKind.CRASH, f"worker could not run the analysis: {exc}")


def output_files(tracks_path: Path) -> tuple[Path, Path]:
    """The files the child writes its analysed tracks to (track_output.py), to remove afterwards."""
    return tracks_path, bin_path(tracks_path)


def save(store: JobStore, job: Job, worker_id: str, result_path: Path, tracks_path: Path) -> bool:
    """Store a succeeded attempt's analysis (jobs/analyses.py), fenced by (job, worker, attempt);
    False when the job is no longer this worker's. Raises what the database raised."""
    header = json.loads(result_path.read_text(encoding="utf-8"))
    owned = store_analysis(store, job, worker_id, header, read_tracks(tracks_path))
    if owned:
        log.info("analysis stored: %s tracks", header.get("track_count"))
    return owned
