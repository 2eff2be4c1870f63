"""The per-track summary (``pose_results.tracks``, function ``pose_track_summary``) also says how many
frames each track was predicted rather than seen: ``frames_predicted``, the frames between its first
and last frame in which it has no row. The pose pipeline keeps a track alive through a short gap (a
crossing, an occluder; its ``track_grace``) and only then, so every gap inside a track is such a
bridged stretch. The function keeps its signature and its other keys; summaries stored before keep
theirs (without the new key) until their job is stored again.

Revision ID: 0009_track_summary
Revises: 0008_frame_retention
Create Date: 2026-12-03
"""

from alembic import op

revision = "0009_track_summary"
down_revision = "0008_frame_retention"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE OR REPLACE FUNCTION pose_track_summary(job bigint, job_attempt integer)
RETURNS jsonb LANGUAGE sql STABLE AS $$
SELECT COALESCE(jsonb_agg(jsonb_build_object('track_id', t.track_id, 'frames', t.frames, 'first_frame', t.first_frame,
                                             'last_frame', t.last_frame, 'mean_score', t.mean_score,
                                             'frames_predicted',
                                             GREATEST(0, t.last_frame - t.first_frame + 1 - t.frames))
                          ORDER BY t.track_id), '[]'::jsonb)
FROM (SELECT track_id, count(*) AS frames, min(frame_index) AS first_frame, max(frame_index) AS last_frame,
             round(avg(score)::numeric, 4) AS mean_score
      FROM pose_frame_rows
      WHERE job_id = job AND attempt = job_attempt AND track_id IS NOT NULL
      GROUP BY track_id) AS t
$$;
"""

# 0006's definition, as it was
DOWNGRADE = """
CREATE OR REPLACE FUNCTION pose_track_summary(job bigint, job_attempt integer)
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
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
