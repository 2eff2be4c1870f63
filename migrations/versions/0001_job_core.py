"""Job core: jobs, events, workers, uploads, API tokens, the NOTIFY triggers and the history views.

Revision ID: 0001_job_core
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001_job_core"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE pose_uploads (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    filename     text,
    content_type text,
    size_bytes   bigint NOT NULL DEFAULT 0,
    sha256       text,
    complete     boolean NOT NULL DEFAULT false
);

-- Uploaded bytes live in PostgreSQL so a worker on another host needs no shared disk. Chunks keep
-- both the upload and the worker's download streaming instead of holding a whole video in memory.
CREATE TABLE pose_upload_chunks (
    upload_id bigint NOT NULL REFERENCES pose_uploads (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (upload_id, seq)
);

CREATE TABLE pose_jobs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state              text NOT NULL DEFAULT 'queued'
                       CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    video_path         text,
    upload_id          bigint REFERENCES pose_uploads (id) ON DELETE RESTRICT,
    priority           integer NOT NULL DEFAULT 0,
    params             jsonb NOT NULL DEFAULT '{}'::jsonb,
    max_attempts       integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    attempt            integer NOT NULL DEFAULT 0,
    timeout_s          double precision CHECK (timeout_s IS NULL OR timeout_s > 0),
    run_after          timestamptz NOT NULL DEFAULT now(),
    idempotency_key    text UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    attempt_started_at timestamptz,
    finished_at        timestamptz,
    lease_expires_at   timestamptz,
    worker_id          text,
    frames_done        integer NOT NULL DEFAULT 0,
    frames_total       integer,
    cancel_requested   boolean NOT NULL DEFAULT false,
    error_kind         text,
    error_message      text,
    CONSTRAINT pose_jobs_has_video CHECK (video_path IS NOT NULL OR upload_id IS NOT NULL)
);

-- The claim query's index: only queued rows, in exactly the claim order, so the polled set stays
-- small however long the history grows.
CREATE INDEX pose_jobs_claim_idx ON pose_jobs (priority DESC, run_after, id) WHERE state = 'queued';
-- The rescuer's index: running jobs by lease expiry.
CREATE INDEX pose_jobs_lease_idx ON pose_jobs (lease_expires_at) WHERE state = 'running';
-- Listing newest first, optionally by state, and the per-day history views.
CREATE INDEX pose_jobs_state_id_idx ON pose_jobs (state, id DESC);
CREATE INDEX pose_jobs_created_day_idx ON pose_jobs (((created_at AT TIME ZONE 'UTC')::date));
CREATE INDEX pose_jobs_upload_idx ON pose_jobs (upload_id) WHERE upload_id IS NOT NULL;

-- Results are large (every keypoint of every frame) and written once, so they stay out of the
-- polled job table.
CREATE TABLE pose_results (
    job_id     bigint PRIMARY KEY REFERENCES pose_jobs (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    document   jsonb NOT NULL
);

CREATE TABLE pose_job_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        bigint NOT NULL REFERENCES pose_jobs (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_state    text,
    to_state      text NOT NULL,
    attempt       integer NOT NULL,
    worker_id     text,
    error_kind    text,
    error_message text
);
CREATE INDEX pose_job_events_job_idx ON pose_job_events (job_id, id);
CREATE INDEX pose_job_events_failures_idx ON pose_job_events (((at AT TIME ZONE 'UTC')::date), error_kind)
    WHERE error_kind IS NOT NULL;

CREATE TABLE pose_workers (
    id             text PRIMARY KEY,
    host           text NOT NULL,
    pid            integer NOT NULL,
    gpu            text,
    mode           text NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    stopped_at     timestamptz,
    current_job_id bigint
);
CREATE INDEX pose_workers_heartbeat_idx ON pose_workers (heartbeat_at) WHERE stopped_at IS NULL;

CREATE TABLE pose_api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    token_sha256 text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
"""

TRIGGERS = """
-- Every path into 'queued' (a raw SQL INSERT included) wakes idle workers within milliseconds.
-- The payload is empty on purpose: PostgreSQL folds identical notifications of one transaction into
-- one, so a batch INSERT of 10,000 jobs wakes each worker once instead of 10,000 times (a wake-up
-- is all a worker needs; it claims whatever is next).
CREATE FUNCTION pose_jobs_notify_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pose_jobs_queued', '');
    RETURN NULL;
END $$;

CREATE TRIGGER pose_jobs_notify_insert AFTER INSERT ON pose_jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION pose_jobs_notify_queued();
CREATE TRIGGER pose_jobs_notify_requeue AFTER UPDATE OF state ON pose_jobs
    FOR EACH ROW WHEN (NEW.state = 'queued' AND OLD.state IS DISTINCT FROM 'queued')
    EXECUTE FUNCTION pose_jobs_notify_queued();

-- A cancel request reaches the worker running the job however it was made (REST or plain SQL).
CREATE FUNCTION pose_jobs_notify_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pose_jobs_cancel', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER pose_jobs_notify_cancel AFTER UPDATE OF cancel_requested ON pose_jobs
    FOR EACH ROW WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested)
    EXECUTE FUNCTION pose_jobs_notify_cancel();

-- The event log is written by the database itself, in the transaction that changes the state, so
-- no code path (nor an operator's UPDATE) can move a job without leaving a row behind.
CREATE FUNCTION pose_jobs_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pose_job_events (job_id, from_state, to_state, attempt, worker_id, error_kind, error_message)
    VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state, NEW.attempt,
            COALESCE(NEW.worker_id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.worker_id END),
            NEW.error_kind, NEW.error_message);
    RETURN NULL;
END $$;

CREATE TRIGGER pose_jobs_event_insert AFTER INSERT ON pose_jobs
    FOR EACH ROW EXECUTE FUNCTION pose_jobs_record_event();
CREATE TRIGGER pose_jobs_event_update AFTER UPDATE OF state ON pose_jobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.attempt IS DISTINCT FROM NEW.attempt)
    EXECUTE FUNCTION pose_jobs_record_event();
"""

VIEWS = """
CREATE VIEW pose_job_daily_stats AS
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

CREATE VIEW pose_job_failures AS
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
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(TRIGGERS)
    op.execute(VIEWS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS pose_job_failures, pose_job_daily_stats")
    op.execute(
        "DROP TABLE IF EXISTS pose_api_tokens, pose_workers, pose_job_events, pose_results, pose_jobs, "
        "pose_upload_chunks, pose_uploads CASCADE"
    )
    op.execute(
        "DROP FUNCTION IF EXISTS pose_jobs_notify_queued(), pose_jobs_notify_cancel(), pose_jobs_record_event()"
    )
