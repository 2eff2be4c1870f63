-- Every statement pose-service runs against its job tables, one named block each.
-- jobs/queries.py loads them into a dict; Python never assembles SQL strings.
-- Parameters are SQLAlchemy-style :names.

-- name: submit_job
-- once: without an idempotency key a repeat would insert a second job.
-- A new job; with an idempotency key that its owner already used nothing is inserted and no row
-- returns. Keys are unique per owner (token id; ownerless jobs share owner 0).
INSERT INTO pose_jobs (video_path, upload_id, priority, params, max_attempts, timeout_s, run_after,
                       idempotency_key, owner_token_id)
VALUES (:video_path, :upload_id, :priority, CAST(:params AS jsonb), :max_attempts, :timeout_s,
        COALESCE(CAST(:run_after AS timestamptz), now()), :idempotency_key, :owner_token_id)
ON CONFLICT ((COALESCE(owner_token_id, 0)), idempotency_key) DO NOTHING
RETURNING *;

-- name: get_visible_job
-- A job as one caller may see it: :visible_to NULL sees every job, a token id only its own. A split
-- job comes with its segments' combined progress (pose_segments_progress, migration 0007).
SELECT j.*, sp.*
FROM pose_jobs AS j
LEFT JOIN LATERAL pose_segments_progress(j.id) AS sp ON j.segment_count IS NOT NULL
WHERE j.id = :id AND (CAST(:visible_to AS bigint) IS NULL OR j.owner_token_id = :visible_to);

-- name: get_job_by_idempotency_key
SELECT * FROM pose_jobs
WHERE COALESCE(owner_token_id, 0) = COALESCE(CAST(:owner_token_id AS bigint), 0)
  AND idempotency_key = :idempotency_key;

-- name: list_jobs
-- Newest first, keyset-paged on id (the cursor is the last id seen); :visible_to and the segments'
-- progress as in get_visible_job. Segments are listed only by :parent_id, their parent's id.
SELECT j.*, sp.*
FROM (SELECT * FROM pose_jobs
      WHERE (CAST(:state AS text) IS NULL OR state = :state)
        AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)
        AND (CAST(:before_id AS bigint) IS NULL OR id < :before_id)
        AND (CAST(:visible_to AS bigint) IS NULL OR owner_token_id = :visible_to)
        AND (CASE WHEN CAST(:parent_id AS bigint) IS NULL THEN parent_id IS NULL ELSE parent_id = :parent_id END)
      ORDER BY id DESC
      LIMIT :limit) AS j
LEFT JOIN LATERAL pose_segments_progress(j.id) AS sp ON j.segment_count IS NOT NULL
ORDER BY j.id DESC;

-- name: claim_job
-- once: a repeat after a lost reply would claim a second job; the first is returned to the queue by
-- its worker's heartbeat (worker_heartbeat), which releases jobs it holds without knowing.
-- The next runnable job: highest priority, then earliest run_after, then oldest. SKIP LOCKED lets
-- any number of workers claim concurrently without waiting on each other or taking the same row.
-- Only a job the worker can run: one that leaves the backend to it (NULL) or names one of the
-- backends its pose_workers row advertises (migration 0010; a worker not registered runs only the former).
WITH next AS (
    SELECT id FROM pose_jobs
    WHERE state = 'queued' AND run_after <= now()
      AND (backend IS NULL OR backend = ANY (SELECT unnest(backends) FROM pose_workers WHERE id = :worker_id))
    ORDER BY priority DESC, run_after, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE pose_jobs AS j
SET state = 'running',
    attempt = j.attempt + 1,
    worker_id = :worker_id,
    started_at = COALESCE(j.started_at, now()),
    attempt_started_at = now(),
    lease_expires_at = now() + make_interval(secs => :lease_s),
    frames_done = 0,
    error_kind = NULL,
    error_message = NULL
FROM next
WHERE j.id = next.id
RETURNING j.*;

-- name: record_progress
-- Progress doubles as a lease extension; no row back means the worker no longer owns the job. A
-- segment whose parent ended (failed, cancelled) is to stop as if cancelled: cancelling the parent
-- skips segments locked at that instant (a claim in flight), and this catches those.
UPDATE pose_jobs
SET frames_done = :frames_done,
    frames_total = COALESCE(CAST(:frames_total AS integer), frames_total),
    lease_expires_at = now() + make_interval(secs => :lease_s)
WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
RETURNING cancel_requested OR (parent_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM pose_jobs AS p WHERE p.id = pose_jobs.parent_id AND p.state IN ('failed', 'cancelled')))
    AS cancel_requested;

-- name: extend_lease
UPDATE pose_jobs
SET lease_expires_at = now() + make_interval(secs => :lease_s)
WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
RETURNING cancel_requested OR (parent_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM pose_jobs AS p WHERE p.id = pose_jobs.parent_id AND p.state IN ('failed', 'cancelled')))
    AS cancel_requested;

-- name: finish_succeeded
-- finished_at is the statement's clock, not the transaction's start: a stitch (worker/stitch.py)
-- copies a long video's rows in the same transaction first.
-- :document is the result without its frames (those are the attempt's pose_frame_rows, written before);
-- :has_frames says whether the result has frames at all (then pose_results.tracks summarises them).
WITH done AS (
    UPDATE pose_jobs
    SET state = 'succeeded', finished_at = clock_timestamp(), lease_expires_at = NULL,
        frames_done = :frames_done, frames_total = COALESCE(CAST(:frames_total AS integer), frames_total)
    WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
    RETURNING id
)
INSERT INTO pose_results (job_id, document, tracks)
SELECT id, CAST(:document AS jsonb),
       CASE WHEN :has_frames THEN (CASE WHEN :frames_done > 0 THEN pose_track_summary(id, :attempt) ELSE '[]' END) END
FROM done
ON CONFLICT (job_id) DO UPDATE SET document = EXCLUDED.document, tracks = EXCLUDED.tracks, created_at = now()
RETURNING job_id;

-- name: finish_succeeded_and_claim
-- once: it claims, like claim_job.
-- finish_succeeded and claim_job in one statement, for a worker whose warm child will serve the next
-- job: one round trip and one commit per job instead of two. The claim part must stay identical to
-- claim_job (tests/test_claim_sql.py runs the claim-order test against both).
WITH done AS (
    UPDATE pose_jobs
    SET state = 'succeeded', finished_at = clock_timestamp(), lease_expires_at = NULL,
        frames_done = :frames_done, frames_total = COALESCE(CAST(:frames_total AS integer), frames_total)
    WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
    RETURNING id
), saved AS (
    INSERT INTO pose_results (job_id, document, tracks)
    SELECT id, CAST(:document AS jsonb),
       CASE WHEN :has_frames THEN (CASE WHEN :frames_done > 0 THEN pose_track_summary(id, :attempt) ELSE '[]' END) END
FROM done
    ON CONFLICT (job_id) DO UPDATE SET document = EXCLUDED.document, tracks = EXCLUDED.tracks, created_at = now()
    RETURNING job_id
), next AS (
    SELECT id FROM pose_jobs
    WHERE state = 'queued' AND run_after <= now()
      AND (backend IS NULL OR backend = ANY (SELECT unnest(backends) FROM pose_workers WHERE id = :worker_id))
    ORDER BY priority DESC, run_after, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE pose_jobs AS j
    SET state = 'running',
        attempt = j.attempt + 1,
        worker_id = :worker_id,
        started_at = COALESCE(j.started_at, now()),
        attempt_started_at = now(),
        lease_expires_at = now() + make_interval(secs => :lease_s),
        frames_done = 0,
        error_kind = NULL,
        error_message = NULL
    FROM next
    WHERE j.id = next.id
    RETURNING j.*
)
SELECT (SELECT count(*) FROM saved) AS finished, claimed.*
FROM (VALUES (1)) AS one LEFT JOIN claimed ON true;

-- name: finish_failed
-- A failed attempt: retried after an exponential, jittered backoff while attempts remain and the
-- error kind is retryable; otherwise final. A pending cancel request wins over a retry.
UPDATE pose_jobs
SET state = CASE
        WHEN cancel_requested THEN 'cancelled'
        WHEN :retryable AND attempt < max_attempts THEN 'queued'
        ELSE 'failed' END,
    run_after = CASE
        WHEN :retryable AND attempt < max_attempts AND NOT cancel_requested
        THEN now() + pose_retry_delay(attempt, CAST(:retry_base_s AS float8), CAST(:retry_cap_s AS float8))
        ELSE run_after END,
    finished_at = CASE WHEN cancel_requested OR NOT (:retryable AND attempt < max_attempts)
                       THEN now() END,
    worker_id = CASE WHEN :retryable AND attempt < max_attempts AND NOT cancel_requested
                     THEN NULL ELSE worker_id END,
    lease_expires_at = NULL,
    error_kind = :error_kind,
    error_message = :error_message
WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
RETURNING state;

-- name: finish_cancelled
UPDATE pose_jobs
SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL,
    error_kind = NULL, error_message = 'cancelled while running'
WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
RETURNING state;

-- name: release_job
-- Graceful shutdown: back to the queue without spending an attempt. The next attempt will carry the
-- same number, so the frames this one stored go with it.
WITH released AS (
    UPDATE pose_jobs
    SET state = 'queued', attempt = attempt - 1, worker_id = NULL, lease_expires_at = NULL,
        run_after = now(), frames_done = 0
    WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
    RETURNING id, state
), cleared AS (
    DELETE FROM pose_frame_rows AS f USING released AS r WHERE f.job_id = r.id AND f.attempt = :attempt
)
SELECT state FROM released;

-- name: rescue_expired
-- Jobs whose worker stopped heartbeating (killed, host gone). The attempt counter caps rescues, so a
-- video that kills every worker that touches it ends as failed/worker_lost instead of looping.
-- A worker never rescues its own job: it is alive, and its heartbeat will renew the lease (this
-- matters right after a database outage, when every lease looks expired).
WITH lost AS (
    SELECT id FROM pose_jobs
    WHERE state = 'running' AND lease_expires_at < now()
      AND worker_id IS DISTINCT FROM :rescuer_id
    ORDER BY lease_expires_at
    LIMIT 100
    FOR UPDATE SKIP LOCKED
)
UPDATE pose_jobs AS j
SET state = CASE
        WHEN j.cancel_requested THEN 'cancelled'
        WHEN j.attempt < j.max_attempts THEN 'queued'
        ELSE 'failed' END,
    run_after = CASE WHEN j.attempt < j.max_attempts AND NOT j.cancel_requested
                     THEN now() + pose_retry_delay(j.attempt, CAST(:retry_base_s AS float8),
                                                     CAST(:retry_cap_s AS float8))
                     ELSE j.run_after END,
    finished_at = CASE WHEN j.cancel_requested OR j.attempt >= j.max_attempts THEN now() END,
    worker_id = CASE WHEN j.attempt < j.max_attempts AND NOT j.cancel_requested
                     THEN NULL ELSE j.worker_id END,
    lease_expires_at = NULL,
    error_kind = CASE WHEN j.cancel_requested THEN NULL ELSE 'worker_lost' END,
    error_message = CASE WHEN j.cancel_requested THEN 'cancelled; its worker was lost'
                         ELSE 'lease expired: worker ' || COALESCE(j.worker_id, '?')
                              || ' stopped heartbeating' END
FROM lost
WHERE j.id = lost.id
RETURNING j.id, j.state, j.attempt;

-- name: cancel_job
-- Queued jobs are cancelled at once; running ones get a request that their worker hears (NOTIFY
-- from a trigger) and acts on. A waiting parent is cancelled at once with its queued segments, and
-- its running ones get the request (segments locked at this instant are skipped: record_progress
-- stops them). Finished jobs, and jobs the caller may not see (:visible_to as in get_visible_job),
-- are left alone.
WITH target AS (
    UPDATE pose_jobs
    SET state = CASE WHEN state IN ('queued', 'waiting') THEN 'cancelled' ELSE state END,
        finished_at = CASE WHEN state IN ('queued', 'waiting') THEN now() ELSE finished_at END,
        cancel_requested = true
    WHERE id = :id AND state IN ('queued', 'running', 'waiting')
      AND (CAST(:visible_to AS bigint) IS NULL OR owner_token_id = :visible_to)
    RETURNING *
), segments AS (
    UPDATE pose_jobs AS s
    SET state = CASE WHEN s.state = 'queued' THEN 'cancelled' ELSE s.state END,
        finished_at = CASE WHEN s.state = 'queued' THEN now() ELSE s.finished_at END,
        cancel_requested = true, error_message = 'cancelled with its parent job'
    WHERE s.id IN (SELECT c.id FROM pose_jobs AS c JOIN target AS t ON c.parent_id = t.id
                   WHERE c.state IN ('queued', 'running') FOR UPDATE OF c SKIP LOCKED)
)
SELECT * FROM target;

-- name: retry_job
-- A client's retry of a finished failure: a fresh set of attempts. Each one counts in `retries`, and
-- past :max_retries the job stays as it is, so a poison job cannot be re-queued forever. A job whose
-- upload retention already deleted has nothing left to run and stays as it is too. Its frame rows go
-- with its attempts, which start again from 1; a split job's segments go too (it is split again).
WITH retried AS (
    UPDATE pose_jobs AS j
    SET state = 'queued', attempt = 0, run_after = now(), cancel_requested = false, worker_id = NULL,
        started_at = NULL, attempt_started_at = NULL, finished_at = NULL, frames_done = 0,
        error_kind = NULL, error_message = NULL, retries = j.retries + 1, segment_count = NULL,
        frames_total = CASE WHEN j.segment_count IS NULL THEN j.frames_total END
    WHERE j.id = :id AND j.state IN ('failed', 'cancelled') AND j.retries < :max_retries
      AND j.parent_id IS NULL  -- a segment is retried through its parent
      AND (CAST(:visible_to AS bigint) IS NULL OR j.owner_token_id = :visible_to)
      AND NOT EXISTS (SELECT 1 FROM pose_uploads AS u WHERE u.id = j.upload_id AND u.deleted_at IS NOT NULL)
    RETURNING j.*
), cleared AS (
    DELETE FROM pose_frame_rows AS f USING retried WHERE f.job_id = retried.id
), unsplit AS (  -- a split job is split afresh; its segments' rows and results go with them
    DELETE FROM pose_jobs AS s USING retried WHERE s.parent_id = retried.id
)
SELECT * FROM retried;

-- name: job_events
SELECT * FROM pose_job_events WHERE job_id = :id ORDER BY id;

-- name: queue_depth
SELECT count(*) FILTER (WHERE run_after <= now()) AS ready,
       count(*) AS queued
FROM pose_jobs WHERE state = 'queued';

-- name: count_by_state
SELECT state, count(*) AS n FROM pose_jobs GROUP BY state;

-- name: register_worker
-- :backends: what the worker can run (the claim statements read it); NULL runs only jobs without a backend.
INSERT INTO pose_workers (id, host, pid, gpu, mode, backends)
VALUES (:id, :host, :pid, :gpu, :mode, CAST(:backends AS text[]))
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL, backends = EXCLUDED.backends;

-- name: worker_heartbeat
-- The worker is alive and runs :current_job_id (or nothing). Any other job still running under its
-- id is one it claimed without hearing the reply (the connection dropped after the commit), or one it
-- stopped while the database was away: it goes back to the queue at once, its attempt given back, and
-- any frames that attempt stored go with it (the next attempt carries the same number). The worker
-- serialises this with its own claims and finishes, so a job it is about to start is never taken from
-- it here.
WITH beat AS (
    UPDATE pose_workers SET heartbeat_at = now(), current_job_id = :current_job_id, stopped_at = NULL
    WHERE id = :id
), released AS (
    UPDATE pose_jobs
    SET state = 'queued', attempt = attempt - 1, worker_id = NULL, lease_expires_at = NULL,
        run_after = now(), frames_done = 0,
        error_message = 'returned to the queue: its worker was not running it (a lost claim reply, or '
                        || 'an attempt stopped while the database was away)'
    WHERE worker_id = :id AND state = 'running' AND id IS DISTINCT FROM CAST(:current_job_id AS bigint)
    RETURNING id, attempt
), cleared AS (
    DELETE FROM pose_frame_rows AS f USING released AS r WHERE f.job_id = r.id AND f.attempt = r.attempt + 1
)
SELECT id, attempt FROM released;

-- name: set_worker_problem
-- Why the worker cannot run jobs (its pipeline child cannot load), or NULL once it can.
UPDATE pose_workers SET problem = CAST(:problem AS text), heartbeat_at = now() WHERE id = :id;

-- name: worker_stopped
UPDATE pose_workers SET stopped_at = now(), current_job_id = NULL WHERE id = :id;

-- name: live_workers
-- Live = heartbeat within the lease; a worker killed with -9 drops out of this list by itself.
SELECT w.*, j.frames_done, j.frames_total, j.attempt_started_at AS job_started_at
FROM pose_workers AS w
LEFT JOIN pose_jobs AS j ON j.id = w.current_job_id AND j.state = 'running'
WHERE w.stopped_at IS NULL AND w.heartbeat_at > now() - make_interval(secs => :lease_s)
ORDER BY w.host, w.started_at;

-- name: forget_dead_workers
-- Keep the registry readable: rows of workers gone for a day are deleted.
DELETE FROM pose_workers
WHERE heartbeat_at < now() - interval '1 day';

-- name: recent_run_seconds
-- Mean run time of recent successes, for the estimated queue wait.
SELECT avg(extract(epoch FROM finished_at - attempt_started_at)) AS mean_run_s, count(*) AS n
FROM (SELECT finished_at, attempt_started_at FROM pose_jobs
      WHERE state = 'succeeded' AND finished_at > now() - interval '1 day'
      ORDER BY finished_at DESC LIMIT 50) AS recent;

-- name: daily_stats
-- pose_job_daily_stats over every job (:owner_token_id NULL) or one token's jobs (what a non-admin sees).
SELECT * FROM pose_job_daily_stats_for(CAST(:owner_token_id AS bigint))
WHERE day >= (now() AT TIME ZONE 'UTC')::date - :days + 1
ORDER BY day DESC;

-- name: failure_stats
-- pose_job_failures over every job or one token's, as daily_stats.
SELECT * FROM pose_job_failures_for(CAST(:owner_token_id AS bigint))
WHERE day >= (now() AT TIME ZONE 'UTC')::date - :days + 1
ORDER BY day DESC, failures DESC;

-- name: create_upload
INSERT INTO pose_uploads (filename, content_type) VALUES (:filename, :content_type) RETURNING id;

-- name: add_upload_chunk
INSERT INTO pose_upload_chunks (upload_id, seq, data) VALUES (:upload_id, :seq, :data);

-- name: complete_upload
UPDATE pose_uploads SET size_bytes = :size_bytes, sha256 = :sha256, complete = true
WHERE id = :upload_id;

-- name: get_upload
SELECT id, filename, content_type, size_bytes, sha256, complete, deleted_at FROM pose_uploads
WHERE id = :upload_id;

-- name: upload_chunk
SELECT data FROM pose_upload_chunks WHERE upload_id = :upload_id AND seq = :seq;

-- name: delete_upload
DELETE FROM pose_uploads WHERE id = :upload_id;

-- name: schema_revision
SELECT version_num FROM alembic_version;
