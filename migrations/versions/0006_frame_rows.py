"""Per-frame pose data as rows: ``pose_frame_rows`` (what workers COPY while a job runs) and the view
``pose_frame_people`` (DESIGN.md section 3: one row per job × frame × person, only the rows of the
job's current attempt while it runs or once it succeeded).

Rows carry the attempt that wrote them, so a rescued attempt's rows never mix with its successor's:
the view shows only rows whose attempt is the job's, and a new attempt deletes the job's older rows
before its first batch. A frame in which nobody was found is one row with ``track_id`` NULL (the
result document lists it with ``"people": []``); the view leaves those out. ``extra`` keeps the fields
a backend adds under a person (section 5), NULL for the pose pipeline.

``pose_results.document`` keeps only what is small (video, model, names, skeleton, timings) and
``pose_results.tracks`` a summary per track; the frames of results stored before this migration
move into rows, and downgrade puts them back into the documents.

Revision ID: 0006_frame_rows
Revises: 0005_stats_per_owner
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006_frame_rows"
down_revision = "0005_stats_per_owner"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE pose_frame_rows (
    job_id      bigint NOT NULL REFERENCES pose_jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    frame_index integer NOT NULL,
    time_s      double precision NOT NULL,
    track_id    integer,
    score       real,
    bbox        real[],
    keypoints   real[],
    world       real[],
    extra       jsonb
);
CREATE INDEX pose_frame_rows_job_idx ON pose_frame_rows (job_id, attempt, frame_index);

CREATE VIEW pose_frame_people AS
SELECT r.job_id, r.frame_index, r.time_s, r.track_id, r.score, r.bbox, r.keypoints, r.world
FROM pose_frame_rows AS r
JOIN pose_jobs AS j ON j.id = r.job_id AND j.attempt = r.attempt AND j.state IN ('running', 'succeeded')
WHERE r.track_id IS NOT NULL;

-- One person of result@1 (section 5) from its row: keypoints and world unflattened.
CREATE FUNCTION pose_person_json(track_id integer, bbox real[], score real, keypoints real[], world real[],
                                 extra jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT jsonb_build_object(
    'track_id', track_id, 'bbox', to_jsonb(bbox), 'score', score,
    'keypoints', (SELECT jsonb_agg(to_jsonb(keypoints[i:i + 4]) ORDER BY i)
                  FROM generate_series(1, cardinality(keypoints), 5) AS i),
    'world', (SELECT jsonb_agg(to_jsonb(world[i:i + 2]) ORDER BY i)
              FROM generate_series(1, cardinality(world), 3) AS i)
) || COALESCE(extra, '{}'::jsonb)
$$;

-- The track summary pose_results.tracks keeps: per track, its frames, first and last frame, mean score.
CREATE FUNCTION pose_track_summary(job bigint, job_attempt integer)
RETURNS jsonb LANGUAGE sql STABLE AS $$
SELECT COALESCE(jsonb_agg(jsonb_build_object('track_id', t.track_id, 'frames', t.frames, 'first_frame', t.first_frame,
                                             'last_frame', t.last_frame, 'mean_score', t.mean_score)
                          ORDER BY t.track_id), '[]'::jsonb)
FROM (SELECT track_id, count(*) AS frames, min(frame_index) AS first_frame, max(frame_index) AS last_frame,
             round(avg(score)::numeric, 4) AS mean_score
      FROM pose_frame_rows
      WHERE job_id = job AND attempt = job_attempt AND track_id IS NOT NULL
      GROUP BY track_id) AS t
$$;

ALTER TABLE pose_results ADD COLUMN tracks jsonb;

-- results stored before: their frames become rows (of the job's current attempt)
INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s, track_id, score, bbox, keypoints, world, extra)
SELECT r.job_id, j.attempt, (f.value->>'index')::integer, (f.value->>'time_s')::double precision,
       (p.value->>'track_id')::integer, (p.value->>'score')::real,
       ARRAY(SELECT v::real FROM jsonb_array_elements_text(p.value->'bbox') WITH ORDINALITY AS b(v, n) ORDER BY n),
       ARRAY(SELECT v::real FROM jsonb_array_elements(p.value->'keypoints') WITH ORDINALITY AS k(pt, n),
                                 jsonb_array_elements_text(k.pt) WITH ORDINALITY AS c(v, m) ORDER BY n, m),
       ARRAY(SELECT v::real FROM jsonb_array_elements(p.value->'world') WITH ORDINALITY AS k(pt, n),
                                 jsonb_array_elements_text(k.pt) WITH ORDINALITY AS c(v, m) ORDER BY n, m),
       NULLIF(p.value - 'track_id' - 'score' - 'bbox' - 'keypoints' - 'world', '{}'::jsonb)
FROM pose_results AS r
JOIN pose_jobs AS j ON j.id = r.job_id
CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(r.document->'frames')
                                        WHEN 'array' THEN r.document->'frames' ELSE '[]' END) AS f
LEFT JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(f.value->'people')
                                       WHEN 'array' THEN f.value->'people' ELSE '[]' END) AS p ON true;
UPDATE pose_results AS r SET document = r.document - 'frames', tracks = pose_track_summary(r.job_id, j.attempt)
FROM pose_jobs AS j WHERE j.id = r.job_id AND r.document ? 'frames';
"""

DOWNGRADE = """
UPDATE pose_results AS r
SET document = r.document || jsonb_build_object('frames', COALESCE((
    SELECT jsonb_agg(jsonb_build_object('index', fr.frame_index, 'time_s', fr.time_s, 'people', fr.people)
                     ORDER BY fr.frame_index)
    FROM (SELECT f.frame_index, f.time_s,
                 COALESCE(jsonb_agg(pose_person_json(f.track_id, f.bbox, f.score, f.keypoints, f.world, f.extra)
                                    ORDER BY f.track_id) FILTER (WHERE f.track_id IS NOT NULL), '[]') AS people
          FROM pose_frame_rows AS f JOIN pose_jobs AS j ON j.id = f.job_id AND j.attempt = f.attempt
          WHERE f.job_id = r.job_id
          GROUP BY f.frame_index, f.time_s) AS fr), '[]'::jsonb))
WHERE r.tracks IS NOT NULL;
ALTER TABLE pose_results DROP COLUMN tracks;
DROP FUNCTION pose_track_summary(bigint, integer);
DROP FUNCTION pose_person_json(integer, real[], real, real[], real[], jsonb);
DROP VIEW pose_frame_people;
DROP TABLE pose_frame_rows;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
