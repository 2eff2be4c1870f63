-- One long video, many workers (migration 0007, docs/state_machine.md): a parent job split into
-- segment jobs, the segments' progress, and the stitch that makes the parent's frames from theirs.
-- Loaded with queries.sql by jobs/queries.py; names are unique across files.

-- name: split_job
-- The claimed parent becomes 'waiting' and gets one queued segment per [first, stop) of :firsts and
-- :stops (a NULL stop: to the end of the video), each inheriting what the parent was submitted with.
-- Fenced like a finish; the attempt is given back (splitting processed nothing), so the stitch runs
-- as the parent's first real attempt. A repeat after a lost reply finds the parent waiting and
-- inserts nothing (and the unique (parent_id, segment_index) index would refuse a second set).
WITH parent AS (
    UPDATE pose_jobs
    SET state = 'waiting', attempt = attempt - 1, worker_id = NULL, lease_expires_at = NULL,
        frames_done = 0, frames_total = :frames_total, segment_count = cardinality(CAST(:firsts AS integer[]))
    WHERE id = :id AND worker_id = :worker_id AND attempt = :attempt AND state = 'running'
    RETURNING *
), segments AS (
    INSERT INTO pose_jobs (video_path, upload_id, priority, params, max_attempts, timeout_s, owner_token_id,
                           parent_id, segment_index, segment_first, segment_stop, frames_total)
    SELECT p.video_path, p.upload_id, p.priority, p.params, p.max_attempts, p.timeout_s, p.owner_token_id,
           p.id, s.n - 1, s.first, s.stop, COALESCE(s.stop, :frames_total) - s.first
    FROM parent AS p,
         unnest(CAST(:firsts AS integer[]), CAST(:stops AS integer[])) WITH ORDINALITY AS s(first, stop, n)
    RETURNING id
)
SELECT p.state, (SELECT count(*) FROM segments) AS segments FROM parent AS p;

-- name: job_segments
-- A parent's segments in order, with what stitching needs: the attempt whose rows hold each one's
-- frames, and its track summary (every track id it used).
SELECT j.id, j.segment_index, j.segment_first, j.segment_stop, j.attempt, j.state, j.frames_done,
       j.frames_total, r.document::text AS document, r.tracks
FROM pose_jobs AS j LEFT JOIN pose_results AS r ON r.job_id = j.id
WHERE j.parent_id = :id
ORDER BY j.segment_index;

-- name: segment_boxes
-- The boxes of a segment's tracks in frames [:first, :stop): where two segments overlap, these tell
-- which of the later one's tracks continue which of the earlier one's.
SELECT frame_index, track_id, bbox
FROM pose_frame_rows
WHERE job_id = :id AND attempt = :attempt AND frame_index >= :first AND frame_index < :stop
  AND track_id IS NOT NULL;

-- name: stitch_segment
-- Inside the stitch's transaction (after fence_attempt on the parent): a segment's frames from :first
-- up to :stop (NULL: its last) become the parent's, its track ids replaced by the parent's
-- (:local_ids[i] -> :parent_ids[i]); frames without people keep their NULL track.
INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s, track_id, score, bbox, keypoints, world, extra)
SELECT :parent_id, :parent_attempt, r.frame_index, r.time_s, m.parent_id, r.score, r.bbox, r.keypoints, r.world,
       r.extra
FROM pose_frame_rows AS r
LEFT JOIN unnest(CAST(:local_ids AS integer[]), CAST(:parent_ids AS integer[])) AS m(local_id, parent_id)
       ON m.local_id = r.track_id
WHERE r.job_id = :segment_id AND r.attempt = :segment_attempt AND r.frame_index >= :first
  AND (CAST(:stop AS integer) IS NULL OR r.frame_index < :stop);

-- name: clear_segment_frames
-- Once the parent holds them, a segment's rows would only repeat its frames.
DELETE FROM pose_frame_rows WHERE job_id = :id;
