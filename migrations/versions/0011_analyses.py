"""Sport analysis as jobs (issue 13): ``pose_jobs.kind`` ('pose' | 'analysis') and ``source_job_id``;
an analysis job enqueued by a trigger when a pose job (or a stitched parent, never a segment)
succeeds; the analyses (``pose_analyses``), their per-track facts (``pose_analysis_tracks``) and
series in compact storage (``pose_analysis_series``: one ``real[]`` per analysis × track × series
× name), with the relation ``pose_frame_angles`` (one row per value, DESIGN.md section 3) as a view
over it. The history views count pose jobs only (an analysis is not a video).

Revision ID: 0011_analyses
Revises: 0010_backends
Create Date: 2026-12-02
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0011_analyses"
down_revision = "0010_backends"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE pose_jobs
    ADD COLUMN kind text NOT NULL DEFAULT 'pose' CONSTRAINT pose_jobs_kind_check CHECK (kind IN ('pose', 'analysis')),
    ADD COLUMN source_job_id bigint REFERENCES pose_jobs (id) ON DELETE CASCADE,
    DROP CONSTRAINT pose_jobs_has_video,
    -- a pose job reads a video; an analysis job the frames of a pose job or an uploaded keypoints file
    ADD CONSTRAINT pose_jobs_has_video CHECK (CASE kind
        WHEN 'pose' THEN (video_path IS NOT NULL OR upload_id IS NOT NULL) AND source_job_id IS NULL
        ELSE video_path IS NULL AND parent_id IS NULL AND (source_job_id IS NULL) <> (upload_id IS NULL) END);
CREATE INDEX pose_jobs_source_idx ON pose_jobs (source_job_id, id) WHERE source_job_id IS NOT NULL;

-- A pose job that succeeds (a stitched parent included, a segment never) gets an analysis with the
-- default params, in the same transaction, whoever recorded the success (a worker, or SQL by hand):
-- if it has a person in its stored rows (nobody seen: nothing to analyse) and more than one frame (a
-- still image, e.g. /pose/hybrid's, has no motion). The analysis job's priority is one below its
-- pose job's, so videos waiting at a priority are claimed before the analyses of finished ones.
CREATE FUNCTION pose_jobs_enqueue_analysis() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pose_frame_rows
               WHERE job_id = NEW.id AND attempt = NEW.attempt AND track_id IS NOT NULL) THEN
        INSERT INTO pose_jobs (kind, source_job_id, owner_token_id, priority, max_attempts)
        -- one below, except at the lowest integer (a hostile SQL insert must not make the success fail)
        VALUES ('analysis', NEW.id, NEW.owner_token_id, GREATEST(NEW.priority, -2147483647) - 1, NEW.max_attempts);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER pose_jobs_analysis_after_pose AFTER UPDATE OF state ON pose_jobs
    FOR EACH ROW WHEN (NEW.state = 'succeeded' AND OLD.state <> 'succeeded' AND NEW.kind = 'pose'
                       AND NEW.parent_id IS NULL AND NEW.frames_done > 1)
    EXECUTE FUNCTION pose_jobs_enqueue_analysis();

-- One row per analysis: the analysis job that made it, what it analysed (a pose job's frames or an
-- upload), the params in full, the provenance (source, model, fps, params, code version) and a
-- summary per track (frames, spins) that retention keeps.
CREATE TABLE pose_analyses (
    id                bigserial PRIMARY KEY,
    job_id            bigint NOT NULL UNIQUE REFERENCES pose_jobs (id) ON DELETE CASCADE,
    source_job_id     bigint REFERENCES pose_jobs (id) ON DELETE CASCADE,
    upload_id         bigint REFERENCES pose_uploads (id) ON DELETE SET NULL,
    attempt           integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    params            jsonb NOT NULL,
    provenance        jsonb NOT NULL,
    angle_names       text[] NOT NULL,
    summary           jsonb NOT NULL,
    series_deleted_at timestamptz
);
CREATE INDEX pose_analyses_source_idx ON pose_analyses (source_job_id, id) WHERE source_job_id IS NOT NULL;

-- Per analysis and track: its frames (first_frame .. first_frame + frame_count - 1, every one), those
-- filled or replaced as outliers, and its spins.
CREATE TABLE pose_analysis_tracks (
    analysis_id bigint NOT NULL REFERENCES pose_analyses (id) ON DELETE CASCADE,
    track_id    integer NOT NULL,
    first_frame integer NOT NULL,
    frame_count integer NOT NULL CHECK (frame_count > 0),
    filled      integer[] NOT NULL,
    outliers    integer[] NOT NULL,
    spins       jsonb NOT NULL,
    PRIMARY KEY (analysis_id, track_id)
);

-- Compact storage: one array per analysis × track × series × name, a value per frame of the track
-- (NULL where nothing trustworthy is known). series: angles (filtered, degrees), angles_raw, angular_velocity
-- (degrees per second), yaw (names yaw, yaw_shoulders, yaw_hips: degrees, unwrapped).
CREATE TABLE pose_analysis_series (
    analysis_id bigint NOT NULL,
    track_id    integer NOT NULL,
    series      text NOT NULL CHECK (series IN ('angles', 'angles_raw', 'angular_velocity', 'yaw')),
    name        text NOT NULL,
    vals        real[] NOT NULL,
    PRIMARY KEY (analysis_id, track_id, series, name),
    FOREIGN KEY (analysis_id, track_id) REFERENCES pose_analysis_tracks (analysis_id, track_id) ON DELETE CASCADE
);

-- DESIGN.md section 3: one row per known value, degrees: the filtered angles and the yaws. job_id is
-- the pose job whose keypoints were analysed (the analysis job itself for an uploaded file).
CREATE VIEW pose_frame_angles AS
SELECT s.analysis_id, COALESCE(a.source_job_id, a.job_id) AS job_id,
       t.first_frame + (v.i - 1)::integer AS frame_index, s.track_id, s.name, v.value
FROM pose_analysis_series AS s
JOIN pose_analysis_tracks AS t ON t.analysis_id = s.analysis_id AND t.track_id = s.track_id
JOIN pose_analyses AS a ON a.id = s.analysis_id
CROSS JOIN LATERAL unnest(s.vals) WITH ORDINALITY AS v(value, i)
WHERE s.series IN ('angles', 'yaw') AND v.value IS NOT NULL;

-- The history views count videos: pose jobs only.
CREATE OR REPLACE FUNCTION pose_job_daily_stats_for(owner bigint)
RETURNS TABLE (day date, submitted bigint, succeeded bigint, failed bigint, cancelled bigint, pending bigint,
               wait_p50_s double precision, wait_p95_s double precision, run_p50_s double precision,
               run_p95_s double precision, frames_processed bigint, run_seconds numeric)
LANGUAGE sql STABLE AS $$
SELECT (created_at AT TIME ZONE 'UTC')::date,
       count(*),
       count(*) FILTER (WHERE state = 'succeeded'),
       count(*) FILTER (WHERE state = 'failed'),
       count(*) FILTER (WHERE state = 'cancelled'),
       count(*) FILTER (WHERE state IN ('queued', 'running', 'waiting')),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - run_from))
           FILTER (WHERE state = 'succeeded'),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - run_from))
           FILTER (WHERE state = 'succeeded'),
       coalesce(sum(frames_done) FILTER (WHERE state = 'succeeded'), 0),
       sum(extract(epoch FROM finished_at - run_from)) FILTER (WHERE state = 'succeeded')
FROM (SELECT *, CASE WHEN segment_count IS NULL THEN attempt_started_at ELSE started_at END AS run_from
      FROM pose_jobs) AS pose_jobs  -- a split job ran from its split to its stitch
WHERE parent_id IS NULL AND kind = 'pose' AND (owner IS NULL OR owner_token_id = owner)
GROUP BY 1
$$;

CREATE OR REPLACE FUNCTION pose_job_failures_for(owner bigint)
RETURNS TABLE (day date, error_kind text, failures bigint, jobs bigint, final_failures bigint,
               last_at timestamptz, last_message text)
LANGUAGE sql STABLE AS $$
SELECT (e.at AT TIME ZONE 'UTC')::date,
       e.error_kind,
       count(*),
       count(DISTINCT e.job_id),
       count(*) FILTER (WHERE e.to_state = 'failed'),
       max(e.at),
       (array_agg(e.error_message ORDER BY e.at DESC))[1]
FROM pose_job_events AS e
WHERE e.error_kind IS NOT NULL
  AND EXISTS (SELECT 1 FROM pose_jobs AS j
              WHERE j.id = e.job_id AND j.kind = 'pose' AND (owner IS NULL OR j.owner_token_id = owner))
GROUP BY 1, 2
$$;
"""

DOWNGRADE = """
DROP VIEW pose_frame_angles;
DROP TABLE pose_analysis_series;
DROP TABLE pose_analysis_tracks;
DROP TABLE pose_analyses;
DROP TRIGGER pose_jobs_analysis_after_pose ON pose_jobs;
DROP FUNCTION pose_jobs_enqueue_analysis();
DELETE FROM pose_jobs WHERE kind = 'analysis';
DROP INDEX pose_jobs_source_idx;
ALTER TABLE pose_jobs
    DROP CONSTRAINT pose_jobs_has_video,
    ADD CONSTRAINT pose_jobs_has_video CHECK (video_path IS NOT NULL OR upload_id IS NOT NULL),
    DROP COLUMN source_job_id,
    DROP COLUMN kind;
"""


def _earlier(module_file: str, what: str) -> str:
    """A statement text of an earlier migration (read from it, not repeated here)."""
    path = Path(__file__).with_name(module_file)
    spec = importlib.util.spec_from_file_location(f"pose_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(getattr(module, what))


def _stats_before() -> str:
    """The statistics functions as 0007 (daily) and 0005 (failures) left them."""
    failures = _earlier("0005_stats_per_owner.py", "UPGRADE")
    start, end = failures.index("CREATE FUNCTION pose_job_failures_for"), failures.index("CREATE OR REPLACE VIEW")
    failures = failures[start:end]
    daily = _earlier("0007_segments.py", "UPGRADE")
    daily = daily[daily.index("CREATE OR REPLACE FUNCTION pose_job_daily_stats_for"):]
    return daily + "\n" + failures.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(_stats_before())
