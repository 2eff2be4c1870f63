-- Retention of per-frame rows (POSE_RETENTION_DAYS, DESIGN.md section 3): the statements of the
-- retention duty, jobs/retention.py. pose_frame_rows is partitioned by job id ranges (migration 0008):
-- a partition all of whose jobs ended long enough ago is dropped whole; rows that cannot go that way
-- (a partition held back by one job still running or recent; the DEFAULT partition) are deleted a job
-- at a time in small batches; uploads of jobs that ended that long ago by delete_expired_uploads (below).
-- A job "ended before T" when it succeeded, failed or was cancelled before T, and so did its parent
-- for a segment: pose_job_ended_before (migration 0008).

-- name: retention_try_lock
-- One pass at a time, whichever process runs it (web, workers): a session-level advisory lock, taken
-- without waiting; a process that finds it held skips its pass.
SELECT pg_try_advisory_lock(:key) AS locked;

-- name: retention_unlock
SELECT pg_advisory_unlock(:key) AS unlocked;

-- name: database_now
SELECT now() AS now;

-- name: retention_lock_timeout
-- For the transaction that takes pose_frame_rows exclusively (a partition's creation or drop): give up
-- after :timeout rather than queue the frame writers and readers behind a wait; the next pass retries.
SELECT set_config('lock_timeout', :timeout, true) AS lock_timeout;

-- name: frame_partitions
-- pose_frame_rows' partitions, oldest ids first, the DEFAULT partition last.
SELECT name, lo, hi, is_default FROM pose_frame_partitions() ORDER BY is_default, lo NULLS FIRST;

-- name: frame_partition_facts
-- What sizing the next partition needs: the highest job id, the highest one with rows in the DEFAULT
-- partition (a new partition must start above it), and the jobs created per UTC day (the more of
-- yesterday and today so far, through pose_jobs_created_day_idx); and whether a fence was left on
-- the DEFAULT partition (fence_default_frames) by a pass that was interrupted.
SELECT (SELECT COALESCE(max(id), 0) FROM pose_jobs) AS max_job_id,
       (SELECT max(job_id) FROM pose_frame_rows_default) AS default_max_job_id,
       EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = CAST('pose_frame_rows_default' AS regclass)
                 AND conname = 'pose_frame_rows_default_fence') AS default_fenced,
       (SELECT COALESCE(max(n), 0) FROM (
            SELECT count(*) AS n FROM pose_jobs
            WHERE ((created_at AT TIME ZONE 'UTC')::date) >= CAST(:today AS date) - 1
            GROUP BY ((created_at AT TIME ZONE 'UTC')::date)) AS days) AS jobs_per_day;

-- name: add_frame_partition
SELECT pose_frame_rows_add_partition(:lo, :hi) AS name;

-- name: fence_default_frames
-- Before creating partition [:lo, :hi) while the DEFAULT partition holds rows: a CHECK on the DEFAULT
-- partition, validated here with only that partition locked, proves it holds no row of the new range,
-- so the creation need not scan it while it holds pose_frame_rows exclusively.
SELECT pose_frame_rows_fence_default(:lo, :hi) AS fenced;

-- name: unfence_default_frames
-- The fence goes once the partition exists (or at the start of a pass, if one was interrupted).
ALTER TABLE pose_frame_rows_default DROP CONSTRAINT IF EXISTS pose_frame_rows_default_fence;

-- name: lock_frame_rows
-- Taken first by a drop's transaction, so that it never waits for pose_frame_rows while holding a
-- partition (a reader holds pose_frame_rows, then takes its partition).
LOCK TABLE pose_frame_rows IN ACCESS EXCLUSIVE MODE;

-- name: ended_frame_partitions
-- Partitions that may be dropped: their id range is used up (a job with a higher id exists) and every
-- job in it ended before :before (or :name's alone, checked again under the lock before its drop).
-- A job whose own row says it ended needs no function call; segments ask about their parent.
SELECT p.name, p.lo, p.hi FROM pose_frame_partitions() AS p
WHERE NOT p.is_default AND p.hi IS NOT NULL
  AND (CAST(:name AS text) IS NULL OR p.name = :name)
  AND p.hi <= (SELECT max(id) + 1 FROM pose_jobs)
  AND NOT EXISTS (
      SELECT 1 FROM pose_jobs AS j
      WHERE j.id >= COALESCE(p.lo, 0) AND j.id < p.hi  -- job ids start at 1
        AND (j.state NOT IN ('succeeded', 'failed', 'cancelled') OR j.finished_at IS NULL
             OR j.finished_at >= :before
             OR (j.parent_id IS NOT NULL AND NOT pose_job_ended_before(j.id, :before))))
ORDER BY p.lo NULLS FIRST;

-- name: mark_frames_deleted_in_range
-- In a drop's transaction: the succeeded jobs of the partition's range lose their frames now.
UPDATE pose_results SET frames_deleted_at = :now
WHERE job_id >= :lo AND job_id < :hi AND tracks IS NOT NULL AND frames_deleted_at IS NULL;

-- name: drop_frame_partition
SELECT pose_frame_rows_drop_partition(:name) AS dropped;

-- name: frame_partitions_with_ended_jobs
-- Partitions where deleting may find work: the DEFAULT one, and those holding a job that ended
-- before :before (cheaply: by the job's own row; the statements below check the parents).
SELECT p.name, p.lo, p.hi, p.is_default FROM pose_frame_partitions() AS p
WHERE p.is_default
   OR EXISTS (SELECT 1 FROM pose_jobs AS j
              WHERE j.id >= COALESCE(p.lo, 0) AND j.id < COALESCE(p.hi, 9223372036854775807)
                AND j.state IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < :before)
ORDER BY p.is_default, p.lo NULLS FIRST;

-- name: ended_jobs_with_frames
-- Jobs above :after with rows in ids [:lo, :hi) that ended before :before, in id order, at most
-- :limit. The ids come from the partition's index, one probe per job that has rows (a loose index
-- scan), so a partition whose rows are mostly gone costs little however many jobs its range had.
WITH RECURSIVE ids (job_id) AS (
    (SELECT f.job_id FROM pose_frame_rows AS f
     WHERE f.job_id > :after AND f.job_id >= :lo AND f.job_id < :hi ORDER BY f.job_id LIMIT 1)
    UNION ALL
    SELECT (SELECT f.job_id FROM pose_frame_rows AS f
            WHERE f.job_id > ids.job_id AND f.job_id >= :lo AND f.job_id < :hi ORDER BY f.job_id LIMIT 1)
    FROM ids WHERE ids.job_id IS NOT NULL
)
SELECT job_id FROM ids WHERE job_id IS NOT NULL AND pose_job_ended_before(job_id, :before) LIMIT :limit;

-- name: ended_jobs_with_default_frames
-- The same for the DEFAULT partition (ids outside every range).
WITH RECURSIVE ids (job_id) AS (
    (SELECT f.job_id FROM pose_frame_rows_default AS f WHERE f.job_id > :after ORDER BY f.job_id LIMIT 1)
    UNION ALL
    SELECT (SELECT f.job_id FROM pose_frame_rows_default AS f WHERE f.job_id > ids.job_id ORDER BY f.job_id LIMIT 1)
    FROM ids WHERE ids.job_id IS NOT NULL
)
SELECT job_id FROM ids WHERE job_id IS NOT NULL AND pose_job_ended_before(job_id, :before) LIMIT :limit;

-- name: delete_ended_job_frames
-- Up to :batch rows of job :id, if it still ended before :before (a job retried since it was found
-- keeps its rows). A succeeded job's result is marked in the same transaction as its first batch, so
-- no reader is served a result that is losing its frames.
WITH ended AS (
    SELECT pose_job_ended_before(:id, :before) AS yes
), marked AS (
    UPDATE pose_results SET frames_deleted_at = :now
    WHERE job_id = :id AND tracks IS NOT NULL AND frames_deleted_at IS NULL AND (SELECT yes FROM ended)
    RETURNING job_id
), gone AS (
    DELETE FROM pose_frame_rows
    WHERE job_id = :id AND (SELECT yes FROM ended)
      AND ctid = ANY (ARRAY(SELECT ctid FROM pose_frame_rows WHERE job_id = :id LIMIT :batch))
    RETURNING 1
)
SELECT (SELECT yes FROM ended) AS ended, (SELECT count(*) FROM gone) AS deleted,
       (SELECT count(*) FROM marked) AS marked;

-- name: delete_expired_uploads
-- Retention (POSE_RETENTION_DAYS): the bytes of uploads whose jobs all ended more than :retention_s
-- ago are deleted; the pose_uploads row stays (the jobs refer to it) and is marked deleted_at.
-- Uploads no job refers to (a web process died between storing and submitting) go entirely once
-- they are that old. Batches of :batch rows keep each transaction short; SKIP LOCKED lets several
-- processes run it at once.
WITH expired AS (
    SELECT u.id, EXISTS (SELECT 1 FROM pose_jobs AS j WHERE j.upload_id = u.id) AS referenced
    FROM pose_uploads AS u
    WHERE u.deleted_at IS NULL
      AND u.created_at < now() - make_interval(secs => :retention_s)
      AND NOT EXISTS (SELECT 1 FROM pose_jobs AS j
                      WHERE j.upload_id = u.id
                        AND (j.finished_at IS NULL OR j.state NOT IN ('succeeded', 'failed', 'cancelled')
                             OR j.finished_at >= now() - make_interval(secs => :retention_s)))
    ORDER BY u.id
    LIMIT :batch
    FOR UPDATE OF u SKIP LOCKED
), chunks AS (
    DELETE FROM pose_upload_chunks AS c USING expired AS e WHERE c.upload_id = e.id AND e.referenced
), orphans AS (  -- their chunks go by ON DELETE CASCADE
    DELETE FROM pose_uploads AS u USING expired AS e WHERE u.id = e.id AND NOT e.referenced
    RETURNING u.id
), marked AS (
    UPDATE pose_uploads AS u SET deleted_at = now()
    FROM expired AS e WHERE u.id = e.id AND e.referenced
    RETURNING u.id
)
SELECT (SELECT count(*) FROM marked) AS emptied, (SELECT count(*) FROM orphans) AS removed;
