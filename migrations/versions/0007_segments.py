"""Segments: one long video, many workers (DESIGN.md section 9).

A job whose video is longer than its segment length (``POSE_SEGMENT_S`` or ``params.segment_s``) is
split by the worker that claims it: it inserts one *segment* job per stretch of frames
(``parent_id``, ``segment_index``, frames ``[segment_first, segment_stop)``, the last few
overlapping the next segment's first frames; the last segment's ``segment_stop`` is NULL: to the end
of the video) and moves the parent to the new state ``waiting``. Any worker claims the segments.
When the last one succeeds, the database puts the parent back in the queue; the worker that claims
it then stitches the segments' frames into the parent's (track ids continuous across the cuts) and
finishes it. A segment that fails for good fails the parent, a cancelled one cancels it, and the
other segments are cancelled with it: all of that is one trigger (``pose_segment_settled``), in the
transaction that settles the segment, so a hand-written ``UPDATE`` keeps the family consistent too.

Locks are always taken segment first, then parent, then the other segments (with SKIP LOCKED, so two
segments settling at once never wait on each other in a cycle).

The history views count what clients submitted: segments are left out of ``pose_job_daily_stats`` and
``waiting`` counts as pending.

Revision ID: 0007_segments
Revises: 0006_frame_rows
Create Date: 2026-12-02
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0007_segments"
down_revision = "0006_frame_rows"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE pose_jobs
    ADD COLUMN parent_id     bigint REFERENCES pose_jobs (id) ON DELETE CASCADE,
    ADD COLUMN segment_index integer,
    ADD COLUMN segment_first integer,
    ADD COLUMN segment_stop  integer,
    ADD COLUMN segment_count integer,
    ADD CONSTRAINT pose_jobs_segment_range CHECK (
        (parent_id IS NULL) = (segment_index IS NULL)
        AND (parent_id IS NULL OR (segment_first >= 0 AND (segment_stop IS NULL OR segment_stop > segment_first)))),
    DROP CONSTRAINT pose_jobs_state_check,
    ADD CONSTRAINT pose_jobs_state_check
        CHECK (state IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'));

CREATE UNIQUE INDEX pose_jobs_segment_idx ON pose_jobs (parent_id, segment_index) WHERE parent_id IS NOT NULL;

-- A segment settled (succeeded, failed or cancelled): the parent follows. The last success queues the
-- parent for stitching; a final failure or a cancel ends the parent the same way and cancels the
-- segments still queued (running ones get a cancel request, which their workers hear).
CREATE FUNCTION pose_segment_settled() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent_state text;
BEGIN
    SELECT state INTO parent_state FROM pose_jobs WHERE id = NEW.parent_id FOR UPDATE;
    IF parent_state IS DISTINCT FROM 'waiting' THEN
        RETURN NULL;
    END IF;
    IF NEW.state = 'succeeded' THEN
        IF NOT EXISTS (SELECT 1 FROM pose_jobs WHERE parent_id = NEW.parent_id AND state <> 'succeeded') THEN
            UPDATE pose_jobs SET state = 'queued', run_after = now(), frames_done = 0
            WHERE id = NEW.parent_id;
        END IF;
        RETURN NULL;
    END IF;
    UPDATE pose_jobs
    SET state = NEW.state, finished_at = now(), cancel_requested = (NEW.state = 'cancelled'),
        error_kind = NEW.error_kind,
        error_message = format('segment %s (from frame %s) %s: %s', NEW.segment_index, NEW.segment_first,
                               NEW.state, COALESCE(NEW.error_message, 'no message'))
    WHERE id = NEW.parent_id;
    UPDATE pose_jobs AS s
    SET state = CASE WHEN s.state = 'queued' THEN 'cancelled' ELSE s.state END,
        finished_at = CASE WHEN s.state = 'queued' THEN now() ELSE s.finished_at END,
        cancel_requested = true,
        error_message = format('cancelled with its parent job %s', NEW.parent_id)
    WHERE s.id IN (SELECT id FROM pose_jobs
                   WHERE parent_id = NEW.parent_id AND id <> NEW.id AND state IN ('queued', 'running')
                   FOR UPDATE SKIP LOCKED);
    RETURN NULL;
END $$;

CREATE TRIGGER pose_jobs_segment_settled AFTER UPDATE OF state ON pose_jobs
    FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL AND OLD.state IS DISTINCT FROM NEW.state
                       AND NEW.state IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION pose_segment_settled();

-- A parent's combined progress while its segments run: each segment counts the frames it owns (up to
-- the next one's first frame), so the overlaps are not counted twice.
CREATE FUNCTION pose_segments_progress(parent bigint)
RETURNS TABLE (segments_done_frames integer, segments integer, segments_succeeded integer, segments_running integer)
LANGUAGE sql STABLE AS $$
SELECT COALESCE(sum(LEAST(s.frames_done, COALESCE(s.next_first, s.segment_first + s.frames_total)
                                         - s.segment_first)), 0)::integer,
       count(*)::integer, (count(*) FILTER (WHERE s.state = 'succeeded'))::integer,
       (count(*) FILTER (WHERE s.state = 'running'))::integer
FROM (SELECT state, frames_done, frames_total, segment_first,
             lead(segment_first) OVER (ORDER BY segment_index) AS next_first
      FROM pose_jobs WHERE parent_id = parent) AS s
$$;

-- What a client submitted: segments are the service's own work, a waiting parent is pending.
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
WHERE parent_id IS NULL AND (owner IS NULL OR owner_token_id = owner)
GROUP BY 1
$$;
"""

DOWNGRADE = """
DELETE FROM pose_jobs WHERE parent_id IS NOT NULL;
UPDATE pose_jobs SET state = 'queued', run_after = now() WHERE state = 'waiting';
DROP TRIGGER pose_jobs_segment_settled ON pose_jobs;
DROP FUNCTION pose_segment_settled();
DROP FUNCTION pose_segments_progress(bigint);
DROP INDEX pose_jobs_segment_idx;
ALTER TABLE pose_jobs
    DROP CONSTRAINT pose_jobs_state_check,
    ADD CONSTRAINT pose_jobs_state_check CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    DROP CONSTRAINT pose_jobs_segment_range,
    DROP COLUMN parent_id, DROP COLUMN segment_index, DROP COLUMN segment_first, DROP COLUMN segment_stop,
    DROP COLUMN segment_count;
"""


def _stats_0005() -> str:
    """0005's statistics functions, which downgrade restores (read from that migration, not repeated)."""
    path = Path(__file__).with_name("0005_stats_per_owner.py")
    spec = importlib.util.spec_from_file_location("pose_migration_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.UPGRADE
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(
        "CREATE OR REPLACE VIEW", "-- (views unchanged)\n-- CREATE OR REPLACE VIEW")


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(_stats_0005())
