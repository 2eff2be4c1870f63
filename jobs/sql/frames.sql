-- Per-frame pose data (migration 0006): the rows a worker COPYs while a job runs, fenced by
-- (job, worker, attempt), and the pages the result route and `pose-service result` stream out.
-- Loaded with queries.sql by jobs/queries.py; names are unique across files.

-- name: fence_attempt
-- Inside a frame batch's transaction: the batch is written only while this worker still owns this
-- attempt, and the row lock (FOR SHARE) holds off a rescue until the batch is committed, so a
-- rescued attempt can never add rows after its successor cleared the job's rows.
SELECT 1 AS owned FROM pose_jobs
WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
FOR SHARE;

-- name: clear_job_frames
-- Before a second or later attempt's first frame: whatever earlier attempts stored goes, so every
-- attempt starts clean (attempt 1 has nothing to clear: retry_job deletes the rows when it resets
-- the attempts).
DELETE FROM pose_frame_rows WHERE job_id = :id;

-- name: clear_frame_range
-- A batch repeated after its reply was lost replaces itself instead of adding its rows twice.
DELETE FROM pose_frame_rows
WHERE job_id = :id AND attempt = :attempt AND frame_index BETWEEN :first AND :last;

-- name: copy_frame_rows
COPY pose_frame_rows (job_id, attempt, frame_index, time_s, track_id, score, bbox, keypoints, world, extra)
FROM STDIN (FORMAT BINARY);

-- name: get_result_head
-- The small part of a succeeded job's result (everything but the frames) and the attempt whose rows
-- hold its frames, or when retention deleted them; :visible_to as in get_visible_job.
SELECT r.document::text AS document, j.attempt, r.tracks IS NOT NULL AS has_frames, r.frames_deleted_at
FROM pose_results AS r JOIN pose_jobs AS j ON j.id = r.job_id
WHERE r.job_id = :id AND j.state = 'succeeded'
  AND (CAST(:visible_to AS bigint) IS NULL OR j.owner_token_id = :visible_to);

-- name: frame_bounds
SELECT min(frame_index) AS first, max(frame_index) AS last
FROM pose_frame_rows WHERE job_id = :id AND attempt = :attempt;

-- name: result_people_page
-- Frames [:first, :stop) of one attempt, a row per person (or one with person NULL for a frame
-- without people), each person as result@1 JSON text (pose_person_text, migration 0012): the numbers
-- are PostgreSQL's shortest exact text of each stored value, and jobs/result_stream.py only joins a
-- frame's people.
SELECT frame_index, time_s::text AS time_s,
       CASE WHEN track_id IS NOT NULL
            THEN pose_person_text(track_id, bbox, score, keypoints, world, extra) END AS person
FROM pose_frame_rows
WHERE job_id = :id AND attempt = :attempt AND frame_index >= :first AND frame_index < :stop
ORDER BY frame_index, track_id;

-- name: result_rows_page
-- The same frames with each field's numbers as PostgreSQL prints them, for the CSV format (a line per
-- keypoint): jobs/result_stream.py writes them without parsing a number.
SELECT frame_index, time_s::text AS time_s, track_id, score::text AS score,
       array_to_string(bbox, ',') AS bbox, array_to_string(keypoints, ',') AS keypoints,
       array_to_string(world, ',') AS world
FROM pose_frame_rows
WHERE job_id = :id AND attempt = :attempt AND frame_index >= :first AND frame_index < :stop
ORDER BY frame_index, track_id;
