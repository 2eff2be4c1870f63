-- Statements of the REST layer and its CLI: API tokens and the metrics histograms.
-- Loaded with queries.sql by jobs/queries.py; names are unique across files.

-- name: create_api_token
INSERT INTO pose_api_tokens (name, token_sha256, scopes, max_priority, rate_per_min)
VALUES (:name, :token_sha256, CAST(:scopes AS text[]), :max_priority, :rate_per_min)
RETURNING id, name, created_at, scopes, max_priority, rate_per_min;

-- name: list_api_tokens
SELECT id, name, created_at, revoked_at, last_used_at, scopes, max_priority, rate_per_min
FROM pose_api_tokens ORDER BY id;

-- name: revoke_api_token
-- Idempotent: revoking twice keeps the first revocation time.
UPDATE pose_api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = :id
RETURNING id, name, revoked_at;

-- name: api_token_snapshot
-- The whole (small) token table as the web process caches it: hashes only, never tokens.
SELECT id, name, token_sha256, revoked_at IS NOT NULL AS revoked, scopes, max_priority, rate_per_min
FROM pose_api_tokens;

-- name: touch_api_tokens
-- Batched last-use stamps, written at most once per refresh instead of once per request.
UPDATE pose_api_tokens SET last_used_at = now() WHERE id = ANY(CAST(:ids AS bigint[]));

-- name: recent_job_durations
-- Queue wait and run time of the latest successes finished within the last hour, for the /metrics
-- histograms. Walking pose_jobs_state_id_idx newest first keeps a scrape cheap on a long history.
SELECT extract(epoch FROM started_at - created_at) AS wait_s,
       extract(epoch FROM finished_at - attempt_started_at) AS run_s
FROM (SELECT created_at, started_at, attempt_started_at, finished_at FROM pose_jobs
      WHERE state = 'succeeded' ORDER BY id DESC LIMIT 1000) AS recent
WHERE finished_at > now() - interval '1 hour';
