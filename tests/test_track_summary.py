"""pose_track_summary (migration 0009): per track, frames seen and frames predicted (the gaps between
its first and last frame, which the pose pipeline bridges with its grace period), by SQL alone."""

from __future__ import annotations

import psycopg

from jobs.database import libpq_url


def test_the_summary_counts_frames_predicted(store, database_url) -> None:
    job, _ = store.submit("/videos/a.mp4")
    rows = [(0, 5), (0, 6), (0, 7), (0, 11), (0, 12), (1, 6), (None, 8)]  # track 0 unseen in 8, 9, 10
    with psycopg.connect(libpq_url(database_url)) as conn:
        for track, frame in rows:
            conn.execute("INSERT INTO pose_frame_rows (job_id, attempt, frame_index, time_s, track_id, score) "
                         "VALUES (%s, 1, %s, %s, %s, 0.5)", (job.id, frame, frame / 30, track))
        summary = conn.execute("SELECT pose_track_summary(%s, 1)", (job.id,)).fetchone()[0]
    assert [(t["track_id"], t["frames"], t["first_frame"], t["last_frame"], t["frames_predicted"])
            for t in summary] == [(0, 5, 5, 12, 3), (1, 1, 6, 6, 0)]
    assert summary[0]["mean_score"] == 0.5
