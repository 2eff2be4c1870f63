-- Sport analysis (migration 0011): analysis jobs, what their worker reads and stores, and what the
-- analysis route, the exports and `pose-service analyze|export` read. Loaded with queries.sql by
-- jobs/queries.py; names are unique across files.

-- name: submit_analysis_job
-- once: a repeat would enqueue a second analysis.
-- An analysis job of a stored pose job's keypoints (:source_job_id) or of an uploaded file (:upload_id).
INSERT INTO pose_jobs (kind, source_job_id, upload_id, params, priority, owner_token_id)
VALUES ('analysis', :source_job_id, :upload_id, CAST(:params AS jsonb), :priority, :owner_token_id)
RETURNING *;

-- name: analysis_source
-- What an analysis of job :id reads: the pose job, whether its frames are there, its model and fps.
SELECT j.id, j.kind, j.state, r.frames_deleted_at, r.document -> 'model' AS model,
       CAST(r.document -> 'video' ->> 'fps' AS double precision) AS fps
FROM pose_jobs AS j LEFT JOIN pose_results AS r ON r.job_id = j.id
WHERE j.id = :id AND (CAST(:visible_to AS bigint) IS NULL OR j.owner_token_id = :visible_to);

-- name: analysis_source_bounds
SELECT min(frame_index) AS first, max(frame_index) AS last FROM pose_frame_people WHERE job_id = :id;

-- name: analysis_source_page
-- Frames [:first, :stop) of job :id's people, in frame order (the index on job, attempt and frame: no
-- sort), for the worker to spread over per-track files a page at a time. The numbers as PostgreSQL
-- prints them, as the result document has them, so an analysis of stored frames is exactly analyze()
-- of the job's result document.
SELECT frame_index, time_s, track_id, array_to_string(keypoints, ',', 'NaN') AS keypoints,
       array_to_string(world, ',', 'NaN') AS world
FROM pose_frame_people
WHERE job_id = :id AND frame_index >= :first AND frame_index < :stop AND track_id IS NOT NULL
ORDER BY frame_index, track_id;

-- name: clear_job_analysis
-- A retried attempt replaces what an earlier one stored (its tracks and series go by cascade).
DELETE FROM pose_analyses WHERE job_id = :id;

-- name: insert_analysis
INSERT INTO pose_analyses (job_id, source_job_id, upload_id, attempt, params, provenance, angle_names, summary)
VALUES (:job_id, :source_job_id, :upload_id, :attempt, CAST(:params AS jsonb), CAST(:provenance AS jsonb),
        CAST(:angle_names AS text[]), '{"tracks": []}')
RETURNING id;

-- name: insert_analysis_track
INSERT INTO pose_analysis_tracks (analysis_id, track_id, first_frame, frame_count, filled, outliers, spins)
VALUES (:analysis_id, :track_id, :first_frame, :frame_count, CAST(:filled AS integer[]),
        CAST(:outliers AS integer[]), CAST(:spins AS jsonb));

-- name: copy_analysis_series
COPY pose_analysis_series (analysis_id, track_id, series, name, vals) FROM STDIN (FORMAT BINARY);

-- name: set_analysis_summary
UPDATE pose_analyses SET summary = CAST(:summary AS jsonb) WHERE id = :id;

-- name: find_analysis
-- The analysis GET /v1/jobs/{id}/analysis and the exports serve for job :id (visible to :visible_to):
-- an analysis job's own, a pose job's latest (by id) among its succeeded analysis jobs; with the job's
-- kind and state and how many of its analyses are still to run (queued or running), so that "none"
-- can be told from "not yet".
SELECT j.id AS job_id, j.kind, j.state, a.id AS analysis_id, a.source_job_id, a.provenance::text AS provenance,
       a.angle_names, a.series_deleted_at,
       (SELECT count(*) FROM pose_jobs AS p
        WHERE p.source_job_id = j.id AND p.state IN ('queued', 'running')) AS pending
FROM pose_jobs AS j
LEFT JOIN LATERAL (
    SELECT x.* FROM pose_analyses AS x JOIN pose_jobs AS aj ON aj.id = x.job_id
    WHERE aj.state = 'succeeded' AND CASE WHEN j.kind = 'analysis' THEN x.job_id = j.id ELSE x.source_job_id = j.id END
    ORDER BY x.id DESC
    LIMIT 1
) AS a ON true
WHERE j.id = :id AND (CAST(:visible_to AS bigint) IS NULL OR j.owner_token_id = :visible_to);

-- name: analysis_tracks
-- An analysis's tracks that overlap frames [:first, :stop) (NULL: all), only :tracks (NULL: all).
SELECT track_id, first_frame, frame_count, filled, outliers, spins::text AS spins
FROM pose_analysis_tracks
WHERE analysis_id = :id
  AND (CAST(:tracks AS integer[]) IS NULL OR track_id = ANY (CAST(:tracks AS integer[])))
  AND (CAST(:first AS integer) IS NULL OR first_frame + frame_count > :first)
  AND (CAST(:stop AS integer) IS NULL OR first_frame < :stop)
ORDER BY track_id;

-- name: analysis_series_window
-- Series of an analysis for frames [:first, :stop) of each track that overlaps them (:track NULL: every
-- track; :series NULL: every series), as JSON-ready text (null for a missing value) in the order of
-- the document; ``from_frame`` is the first frame of the slice.
SELECT s.track_id, s.series, s.name, greatest(:first, t.first_frame) AS from_frame,
       array_to_string(s.vals[(:first - t.first_frame + 1):(:stop - t.first_frame)], ',', 'null') AS vals
FROM pose_analysis_series AS s
JOIN pose_analysis_tracks AS t ON t.analysis_id = s.analysis_id AND t.track_id = s.track_id
WHERE s.analysis_id = :id
  AND (CAST(:track AS integer) IS NULL OR s.track_id = :track)
  AND (CAST(:series AS text) IS NULL OR s.series = :series)
  AND t.first_frame < :stop AND t.first_frame + t.frame_count > :first
ORDER BY s.track_id, s.series, s.name;

-- name: export_people_page
-- Frames [:first, :stop) of job :id's people (of track :track, NULL: all), for the exports.
SELECT frame_index, time_s, track_id, array_to_string(keypoints, ',', '') AS keypoints,
       array_to_string(world, ',', '') AS world
FROM pose_frame_people
WHERE job_id = :id AND frame_index >= :first AND frame_index < :stop AND track_id IS NOT NULL
  AND (CAST(:track AS integer) IS NULL OR track_id = :track)
ORDER BY frame_index, track_id;

-- name: export_track_span
-- The frames job :id's track :track was seen in (first, last), and the keypoint names of its result.
SELECT min(p.frame_index) AS first, max(p.frame_index) AS last,
       (SELECT r.document -> 'keypoint_names' FROM pose_results AS r WHERE r.job_id = :id) AS keypoint_names
FROM pose_frame_people AS p WHERE p.job_id = :id AND p.track_id = :track;

-- name: export_keypoint_names
SELECT document -> 'keypoint_names' AS keypoint_names FROM pose_results WHERE job_id = :id;

-- name: delete_expired_analysis_series
-- Retention: the series and per-track rows of up to :batch analyses whose analysis job ended before
-- :before; the pose_analyses row (params, provenance, summary) stays, marked series_deleted_at.
WITH expired AS (
    SELECT a.id FROM pose_analyses AS a
    WHERE a.series_deleted_at IS NULL AND pose_job_ended_before(a.job_id, :before)
    ORDER BY a.id
    LIMIT :batch
    FOR UPDATE OF a SKIP LOCKED
), gone AS (
    DELETE FROM pose_analysis_tracks AS t USING expired AS e WHERE t.analysis_id = e.id
), marked AS (
    UPDATE pose_analyses AS a SET series_deleted_at = :now FROM expired AS e WHERE a.id = e.id RETURNING a.id
)
SELECT count(*) AS analyses FROM marked;
