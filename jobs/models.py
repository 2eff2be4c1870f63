"""SQLAlchemy descriptions of the pose-service tables.

The schema itself is created by alembic (migrations/); these Table objects describe it for code that
wants typed columns, and tests/test_schema.py (test_models_match_the_migrated_schema) checks that they
never drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB, REAL

metadata = MetaData()
TS = DateTime(timezone=True)

uploads = Table(
    "pose_uploads",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("created_at", TS, nullable=False),
    Column("filename", Text),
    Column("content_type", Text),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", Text),
    Column("complete", Boolean, nullable=False),
    Column("deleted_at", TS),
)

upload_chunks = Table(
    "pose_upload_chunks",
    metadata,
    Column("upload_id", BigInteger, ForeignKey("pose_uploads.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

jobs = Table(
    "pose_jobs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("state", Text, nullable=False),
    Column("video_path", Text),
    Column("upload_id", BigInteger, ForeignKey("pose_uploads.id", ondelete="RESTRICT")),
    Column("priority", Integer, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("timeout_s", Float),
    Column("run_after", TS, nullable=False),
    Column("idempotency_key", Text),  # unique per owner (an expression index; see migration 0002)
    Column("created_at", TS, nullable=False),
    Column("started_at", TS),
    Column("attempt_started_at", TS),
    Column("finished_at", TS),
    Column("lease_expires_at", TS),
    Column("worker_id", Text),
    Column("frames_done", Integer, nullable=False),
    Column("frames_total", Integer),
    Column("cancel_requested", Boolean, nullable=False),
    Column("error_kind", Text),
    Column("error_message", Text),
    Column("owner_token_id", BigInteger, ForeignKey("pose_api_tokens.id", ondelete="SET NULL")),
    Column("retries", Integer, nullable=False),
    # one long video, many workers (migration 0007): a segment's parent and frames [first, stop)
    Column("parent_id", BigInteger, ForeignKey("pose_jobs.id", ondelete="CASCADE")),
    Column("segment_index", Integer),
    Column("segment_first", Integer),
    Column("segment_stop", Integer),  # NULL: to the end of the video
    Column("segment_count", Integer),  # set on a split parent
    # what runs it (migration 0010): params->>'backend', kept by a trigger; NULL: the claiming worker's default
    Column("backend", Text),
    # sport analysis (migration 0011): 'pose' (a video) or 'analysis' (of job source_job_id's keypoints,
    # or of the uploaded keypoints file upload_id)
    Column("kind", Text, nullable=False),
    Column("source_job_id", BigInteger, ForeignKey("pose_jobs.id", ondelete="CASCADE")),
)

results = Table(
    "pose_results",
    metadata,
    Column("job_id", BigInteger, ForeignKey("pose_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", TS, nullable=False),
    Column("document", JSONB, nullable=False),  # everything but the frames (those are pose_frame_rows)
    Column("tracks", JSONB),  # per track: frames, first/last frame, mean score; NULL: stored without frames
    Column("frames_deleted_at", TS),  # when retention deleted the frames (migration 0008); NULL: they are kept
)

#: One row per analysis (migration 0011): the analysis job that made it, what it analysed, params,
#: provenance and a per-track summary (spins) that retention keeps.
analyses = Table(
    "pose_analyses",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("job_id", BigInteger, ForeignKey("pose_jobs.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("source_job_id", BigInteger, ForeignKey("pose_jobs.id", ondelete="CASCADE")),
    Column("upload_id", BigInteger, ForeignKey("pose_uploads.id", ondelete="SET NULL")),
    Column("attempt", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("provenance", JSONB, nullable=False),
    Column("angle_names", ARRAY(Text), nullable=False),
    Column("summary", JSONB, nullable=False),
    Column("series_deleted_at", TS),  # when retention deleted its series; NULL: they are kept
)

#: Per analysis and track: its frames and the ones filled or replaced, its spins (migration 0011).
analysis_tracks = Table(
    "pose_analysis_tracks",
    metadata,
    Column("analysis_id", BigInteger, ForeignKey("pose_analyses.id", ondelete="CASCADE"), primary_key=True),
    Column("track_id", Integer, primary_key=True),
    Column("first_frame", Integer, nullable=False),
    Column("frame_count", Integer, nullable=False),
    Column("filled", ARRAY(Integer), nullable=False),
    Column("outliers", ARRAY(Integer), nullable=False),
    Column("spins", JSONB, nullable=False),
)

#: One real[] per analysis × track × series × name (migration 0011); the view pose_frame_angles has a
#: row per value.
analysis_series = Table(
    "pose_analysis_series",
    metadata,
    Column("analysis_id", BigInteger, primary_key=True),
    Column("track_id", Integer, primary_key=True),
    Column("series", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("vals", ARRAY(REAL), nullable=False),
    ForeignKeyConstraint(["analysis_id", "track_id"], ["pose_analysis_tracks.analysis_id",
                                                       "pose_analysis_tracks.track_id"], ondelete="CASCADE"),
)

#: One row per job × attempt × frame × person (migration 0006); a frame without people is one row with
#: track_id NULL. SQL reads the view pose_frame_people (the job's current attempt only). Partitioned by
#: job_id ranges, without a foreign key (migration 0008: a trigger deletes a deleted job's rows).
frame_rows = Table(
    "pose_frame_rows",
    metadata,
    Column("job_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("frame_index", Integer, nullable=False),
    Column("time_s", DOUBLE_PRECISION, nullable=False),
    Column("track_id", Integer),
    Column("score", REAL),
    Column("bbox", ARRAY(REAL)),
    Column("keypoints", ARRAY(REAL)),
    Column("world", ARRAY(REAL)),
    Column("extra", JSONB),
)

job_events = Table(
    "pose_job_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("job_id", BigInteger, ForeignKey("pose_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", TS, nullable=False),
    Column("from_state", Text),
    Column("to_state", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker_id", Text),
    Column("error_kind", Text),
    Column("error_message", Text),
)

workers = Table(
    "pose_workers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("gpu", Text),
    Column("mode", Text, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
    Column("stopped_at", TS),
    Column("current_job_id", BigInteger),
    Column("problem", Text),  # why it cannot run jobs (its pipeline cannot load); NULL when it can
    Column("backends", ARRAY(Text)),  # what it can run (migration 0010; the claims read it); NULL: default only
)

api_tokens = Table(
    "pose_api_tokens",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("token_sha256", Text, nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
    Column("last_used_at", TS),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("max_priority", Integer),
    Column("rate_per_min", Integer),
)
