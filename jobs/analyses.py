"""Analyses in PostgreSQL (migration 0011, jobs/sql/analyses.sql): submitting analysis jobs, storing
what an analysis child produced, and reading it back as the analysis@1 document (DESIGN.md section 8)
streamed a series of one track at a time.

Every reader here is what ``GET /v1/jobs/{id}/analysis`` and ``pose-service`` share. Storage is
compact: per analysis and track one row of facts (``pose_analysis_tracks``) and one ``real[]`` per
series and name (``pose_analysis_series``); the document is assembled from them with PostgreSQL
printing the numbers (the shortest text that reads back exactly), so Python parses none. The exports
(CSV, TRC, MOT) are jobs/analysis_export.py.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol

import numpy as np

from jobs.job import Job
from jobs.store import JobStore

#: The analysis document's series, in its key order; ``yaw`` holds the names in YAW_NAMES.
SERIES = ("angles", "angles_raw", "angular_velocity")
YAW_NAMES = ("yaw", "yaw_shoulders", "yaw_hips")
SCHEMA = "pose-service/analysis@1"
#: Frame indexes are PostgreSQL integers: the end of an open window.
MAX_FRAME = 2**31 - 1


class AnalysisUnavailable(Exception):
    """No analysis to serve; ``reason`` is ``job_not_found``, ``analysis_not_found``, ``analysis_pending``,
    ``analysis_expired``, ``not_a_pose_job``, ``job_not_succeeded`` or ``frames_expired``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class AnalysisRef:
    """The analysis a job's routes serve: its id, the job asked about, the pose job whose frames were
    analysed (None for an upload), its provenance and angle names."""

    analysis_id: int
    job_id: int
    source_job_id: int | None
    provenance: dict[str, Any]
    angle_names: list[str]

    @property
    def fps(self) -> float:
        return float(self.provenance["fps"])


# ---- submitting ------------------------------------------------------------------------------------
def check_source(store: JobStore, job_id: int, *, visible_to: int | None) -> None:
    """That job ``job_id`` can be analysed again: a pose job visible to the caller, succeeded, with
    its frames still stored; AnalysisUnavailable otherwise."""
    with store.transaction() as tx:
        row = tx.one("analysis_source", id=job_id, visible_to=visible_to)
    if row is None:
        raise AnalysisUnavailable("job_not_found", f"no job {job_id}")
    if row.kind != "pose":
        raise AnalysisUnavailable("not_a_pose_job", f"job {job_id} is an analysis; analyse its source job instead")
    if row.state != "succeeded":
        raise AnalysisUnavailable("job_not_succeeded", f"job {job_id} is {row.state}; it can be analysed once it "
                                  "succeeded")
    if row.frames_deleted_at is not None:
        raise AnalysisUnavailable("frames_expired", f"job {job_id}'s frames were deleted by retention; it cannot "
                                  "be analysed again")


def submit_analysis(store: JobStore, *, source_job_id: int | None = None, upload_id: int | None = None,
                    params: Mapping[str, Any] | None = None, priority: int = 0,
                    owner_token_id: int | None = None) -> Job:
    """Queue an analysis job of a stored pose job's keypoints or of an uploaded keypoints file."""
    if (source_job_id is None) == (upload_id is None):
        raise ValueError("an analysis job needs exactly one of source_job_id and upload_id")
    with store.transaction() as tx:
        row = tx.one("submit_analysis_job", source_job_id=source_job_id, upload_id=upload_id,
                     params=json.dumps(dict(params or {})), priority=priority, owner_token_id=owner_token_id)
    return Job.from_row(row)


# ---- storing (the worker) ------------------------------------------------------------------------
class AnalysedTrack(Protocol):
    """One analysed track as the worker hands it over (worker/pipeline/analysis/track_output.py): its
    facts, and its series one at a time, so no more than one series is held."""

    @property
    def track_id(self) -> int: ...
    @property
    def first_frame(self) -> int | None: ...
    @property
    def frame_count(self) -> int: ...
    @property
    def filled(self) -> list[int]: ...
    @property
    def outliers(self) -> list[int]: ...
    @property
    def spins(self) -> list[dict[str, Any]]: ...

    def series(self) -> Iterator[tuple[str, str, np.ndarray[Any, Any]]]:
        """``(series, name, values)``: values float, NaN for null."""
        ...


def summary_of(track: AnalysedTrack) -> dict[str, Any]:
    """What pose_analyses.summary keeps of a track after retention removed its series."""
    first = track.first_frame if track.frame_count else None
    return {"track_id": track.track_id, "first_frame": first,
            "last_frame": None if first is None else first + track.frame_count - 1, "frames": track.frame_count,
            "filled": len(track.filled), "spins": track.spins}


#: PostgreSQL's type oid of real (float4), as a binary array names its elements' type.
FLOAT4_OID = 700


def real_array(values: Sequence[float | None] | np.ndarray[Any, Any]) -> bytes:
    """``values`` (None: NULL) in PostgreSQL's binary ``real[]`` format, built by numpy: the driver's
    own array dumper spent 0.7 s of the 1 s it took to store a 2 × 3,600-frame analysis."""
    numbers = np.asarray(values, dtype=np.float64)  # None becomes NaN
    nulls = np.isnan(numbers)
    items = np.empty(numbers.size, dtype=[("length", ">i4"), ("value", ">f4")])
    items["length"] = np.where(nulls, -1, 4)
    items["value"] = numbers
    raw = items.view(np.uint8).reshape(numbers.size, 8)
    keep = np.ones(raw.shape, dtype=bool)
    keep[nulls, 4:] = False  # a NULL element is its length (-1) alone
    header = struct.pack(">iiIii", 1, int(nulls.any()), FLOAT4_OID, numbers.size, 1)
    return header + raw[keep].tobytes()


def _field(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _series_tuples(analysis_id: int, track: AnalysedTrack) -> Iterator[bytes]:
    """The track's series as binary COPY tuples of pose_analysis_series (analysis_id, track_id, series,
    name, vals), one series at a time."""
    head = struct.pack(">hiqii", 5, 8, analysis_id, 4, int(track.track_id))
    for series, name, values in track.series():
        yield head + _field(series.encode()) + _field(name.encode()) + _field(real_array(values))


def store_analysis(store: JobStore, job: Job, worker_id: str, header: Mapping[str, Any],
                   tracks: Iterable[AnalysedTrack]) -> bool:
    """Store an analysis job's analysis: the header (``provenance``, ``angle_names``) and the tracks
    (taken one at a time), in one transaction fenced by (job, worker, attempt) like frames are; an
    earlier attempt's analysis is replaced. False when the worker no longer owns the attempt (nothing
    is written)."""
    provenance = header["provenance"]
    with store.transaction(timeout_s=None) as tx:
        if tx.one("fence_attempt", id=job.id, worker_id=worker_id, attempt=job.attempt) is None:
            return False
        tx.exec("clear_job_analysis", id=job.id)
        analysis_id = tx.one("insert_analysis", job_id=job.id, source_job_id=job.source_job_id, upload_id=job.upload_id,
                             attempt=job.attempt, params=json.dumps(provenance["params"]),
                             provenance=json.dumps(provenance), angle_names=list(header["angle_names"])).id
        summaries = []
        for track in tracks:
            summaries.append(summary_of(track))
            if not track.frame_count:
                continue
            tx.exec("insert_analysis_track", analysis_id=analysis_id, track_id=track.track_id,
                    first_frame=track.first_frame, frame_count=track.frame_count, filled=track.filled,
                    outliers=track.outliers, spins=json.dumps(track.spins))
            tx.copy_tuples("copy_analysis_series", _series_tuples(analysis_id, track))
        tx.exec("set_analysis_summary", id=analysis_id, summary=json.dumps({"tracks": summaries}))
    return True


# ---- reading --------------------------------------------------------------------------------------
def find_analysis(store: JobStore, job_id: int, *, visible_to: int | None) -> AnalysisRef:
    """The analysis to serve for job ``job_id``: an analysis job's own, a pose job's latest; raises
    AnalysisUnavailable (no such job, none, not yet, series expired)."""
    with store.transaction() as tx:
        row = tx.one("find_analysis", id=job_id, visible_to=visible_to)
    if row is None:
        raise AnalysisUnavailable("job_not_found", f"no job {job_id}")
    if row.analysis_id is None:
        if row.kind == "analysis" and row.state in ("queued", "running"):
            raise AnalysisUnavailable("analysis_pending", f"analysis job {job_id} is {row.state}")
        if row.kind == "pose" and (row.pending or row.state in ("queued", "running", "waiting")):
            raise AnalysisUnavailable("analysis_pending", f"job {job_id}'s analysis has not run yet "
                                      f"(the job is {row.state})")
        raise AnalysisUnavailable("analysis_not_found", f"job {job_id} has no analysis" + (
            f" (it is {row.state})" if row.state != "succeeded" else ""))
    if row.series_deleted_at is not None:
        when = row.series_deleted_at.astimezone(UTC)
        raise AnalysisUnavailable("analysis_expired", f"job {job_id}'s analysis series were deleted by retention on "
                                  f"{when:%Y-%m-%d %H:%M} UTC; its summary remains in pose_analyses")
    return AnalysisRef(analysis_id=row.analysis_id, job_id=job_id, source_job_id=row.source_job_id,
                       provenance=json.loads(row.provenance), angle_names=list(row.angle_names))


@dataclass(frozen=True)
class TrackRow:
    track_id: int
    first_frame: int
    frame_count: int
    filled: list[int]
    outliers: list[int]
    spins: list[dict[str, Any]]

    @property
    def stop(self) -> int:
        return self.first_frame + self.frame_count


def analysis_tracks(store: JobStore, analysis_id: int, *, first: int | None = None, stop: int | None = None,
                    tracks: Sequence[int] | None = None) -> list[TrackRow]:
    """The analysis's tracks overlapping [first, stop), only ``tracks`` when given."""
    with store.transaction() as tx:
        rows = tx.all("analysis_tracks", id=analysis_id, tracks=list(tracks) if tracks is not None else None,
                      first=first, stop=stop)
    return [TrackRow(r.track_id, r.first_frame, r.frame_count, list(r.filled), list(r.outliers), json.loads(r.spins))
            for r in rows]


def series_window(store: JobStore, analysis_id: int, first: int, stop: int, *, track: int | None = None,
                  series: str | None = None) -> list[Any]:
    """Rows (track_id, series, name, from_frame, vals: comma-separated text, ``null`` for missing) of the
    series over frames [first, stop)."""
    with store.transaction() as tx:
        return tx.all("analysis_series_window", id=analysis_id, first=first, stop=stop, track=track, series=series)


def stream_document(store: JobStore, ref: AnalysisRef, *, first: int = 0, stop: int | None = None,
                    tracks: Sequence[int] | None = None) -> Iterator[str]:
    """The analysis@1 document in pieces: per track its facts, then each of its four series (one
    statement and one piece each, so memory is one series of one track at a time), restricted to frames
    [first, stop) and to ``tracks`` when given: every series then has a value per frame of the window
    the track covers, and ``filled``, ``outliers`` and ``spins`` (those overlapping the window) follow."""
    stop = MAX_FRAME if stop is None else stop
    head = {"schema": SCHEMA, "provenance": ref.provenance, "angle_names": ref.angle_names}
    yield json.dumps(head, separators=(",", ":"))[:-1] + ',"tracks":['
    for n, track in enumerate(analysis_tracks(store, ref.analysis_id, first=first, stop=stop, tracks=tracks)):
        lo, hi = max(first, track.first_frame), min(stop, track.stop)
        yield ("," if n else "") + ",".join([
            f'{{"track_id":{track.track_id}', f'"frames":[{",".join(map(str, range(lo, hi)))}]',
            f'"filled":{json.dumps([f for f in track.filled if lo <= f < hi])}',
            f'"outliers":{json.dumps([f for f in track.outliers if lo <= f < hi])}'])
        for series in (*SERIES, "yaw"):  # one statement, and one piece, per series of the track
            values = {row.name: row.vals for row in series_window(store, ref.analysis_id, lo, hi,
                                                                   track=track.track_id, series=series)}
            if series == "yaw":
                yield "".join(f',"{name}":[{values.get(name, "")}]' for name in YAW_NAMES)
            else:
                names = [name for name in ref.angle_names if name in values]
                yield f',"{series}":{{' + ",".join(f'"{name}":[{values[name]}]' for name in names) + "}"
        spins = [s for s in track.spins if s["end_frame"] >= lo and s["start_frame"] < hi]
        yield f',"spins":{json.dumps(spins, separators=(",", ":"))}}}'
    yield "]}"
