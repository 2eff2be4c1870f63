"""The history views, written once for every caller: ``pose_job_daily_stats_for(owner)`` and
``pose_job_failures_for(owner)``.

Tenancy (0002) needed the statistics over one token's jobs, and the first answer repeated each view's
SQL in a named query with an owner filter: two copies of the same aggregates that could drift. Now
each aggregate is one SQL function of the owner (NULL: every job), and the views analysts query are
the function over everyone, with the same columns as before. The functions are plain SELECTs in
LANGUAGE sql, so PostgreSQL inlines them and a filter on ``day`` still reaches the day indexes.

Revision ID: 0005_stats_per_owner
Revises: 0004_retry_backoff
Create Date: 2026-12-02
"""

from alembic import op

revision = "0005_stats_per_owner"
down_revision = "0004_retry_backoff"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION pose_job_daily_stats_for(owner bigint)
RETURNS TABLE (day date, submitted bigint, succeeded bigint, failed bigint, cancelled bigint, pending bigint,
               wait_p50_s double precision, wait_p95_s double precision, run_p50_s double precision,
               run_p95_s double precision, frames_processed bigint, run_seconds numeric)
LANGUAGE sql STABLE AS $$
SELECT (created_at AT TIME ZONE 'UTC')::date,
       count(*),
       count(*) FILTER (WHERE state = 'succeeded'),
       count(*) FILTER (WHERE state = 'failed'),
       count(*) FILTER (WHERE state = 'cancelled'),
       count(*) FILTER (WHERE state IN ('queued', 'running')),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - attempt_started_at))
           FILTER (WHERE state = 'succeeded'),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - attempt_started_at))
           FILTER (WHERE state = 'succeeded'),
       coalesce(sum(frames_done) FILTER (WHERE state = 'succeeded'), 0),
       sum(extract(epoch FROM finished_at - attempt_started_at)) FILTER (WHERE state = 'succeeded')
FROM pose_jobs
WHERE owner IS NULL OR owner_token_id = owner
GROUP BY 1
$$;

CREATE FUNCTION pose_job_failures_for(owner bigint)
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
  AND (owner IS NULL OR EXISTS (SELECT 1 FROM pose_jobs AS j WHERE j.id = e.job_id AND j.owner_token_id = owner))
GROUP BY 1, 2
$$;

CREATE OR REPLACE VIEW pose_job_daily_stats AS SELECT * FROM pose_job_daily_stats_for(NULL);
CREATE OR REPLACE VIEW pose_job_failures AS SELECT * FROM pose_job_failures_for(NULL);
"""

#: 0001's definitions, restored by downgrade.
DOWNGRADE = """
CREATE OR REPLACE VIEW pose_job_daily_stats AS
SELECT (created_at AT TIME ZONE 'UTC')::date                       AS day,
       count(*)                                                     AS submitted,
       count(*) FILTER (WHERE state = 'succeeded')                  AS succeeded,
       count(*) FILTER (WHERE state = 'failed')                     AS failed,
       count(*) FILTER (WHERE state = 'cancelled')                  AS cancelled,
       count(*) FILTER (WHERE state IN ('queued', 'running'))       AS pending,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL)                    AS wait_p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           FILTER (WHERE started_at IS NOT NULL)                    AS wait_p95_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - attempt_started_at))
           FILTER (WHERE state = 'succeeded')                       AS run_p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - attempt_started_at))
           FILTER (WHERE state = 'succeeded')                       AS run_p95_s,
       coalesce(sum(frames_done) FILTER (WHERE state = 'succeeded'), 0) AS frames_processed,
       sum(extract(epoch FROM finished_at - attempt_started_at)) FILTER (WHERE state = 'succeeded')
                                                                    AS run_seconds
FROM pose_jobs
GROUP BY 1;

CREATE OR REPLACE VIEW pose_job_failures AS
SELECT (at AT TIME ZONE 'UTC')::date AS day,
       error_kind,
       count(*)                      AS failures,
       count(DISTINCT job_id)        AS jobs,
       count(*) FILTER (WHERE to_state = 'failed') AS final_failures,
       max(at)                       AS last_at,
       (array_agg(error_message ORDER BY at DESC))[1] AS last_message
FROM pose_job_events
WHERE error_kind IS NOT NULL
GROUP BY 1, 2;

DROP FUNCTION pose_job_failures_for(bigint);
DROP FUNCTION pose_job_daily_stats_for(bigint);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
