"""Retention of per-frame rows: ``pose_frame_rows`` partitioned by job id, so that the rows of jobs
that ended long ago go by dropping a partition instead of by DELETE (DESIGN.md sections 3 and 7).

Layout
- ``pose_frame_rows`` is partitioned by RANGE (``job_id``): the key is a column every row already
  has, so the workers' COPY and its column list stay as they were, every statement about one job
  reads one partition (pruning), and a partition holds whole jobs: it can go once every job whose id
  lies in its range has ended long enough ago, which ``pose_jobs`` alone says. (A key of the day a
  row was written, filled by a DEFAULT, would make every read of one job probe every partition, and
  knowing which jobs a partition holds would take reading its index.)
- The table as it was becomes the partition ``pose_frame_rows_0`` (ids below the next job id), in
  place: no row is copied (attaching it reads it once, to check the bound). ``pose_frame_rows_<lo>``
  covers ids [lo, hi); this migration adds the first one ahead, the retention duty
  (jobs/retention.py) the next ones, sized to about a day of jobs. ``pose_frame_rows_default`` takes
  rows whose id has no partition (a burst of jobs that overtook the duty, a retried job whose
  partition is gone), so a COPY never fails for want of one.
- The foreign key to ``pose_jobs`` goes: creating a partition would have cloned it, which locks
  ``pose_jobs`` (SHARE ROW EXCLUSIVE) and so stalls every claim, and could deadlock with a worker
  finishing a job (which holds ``pose_jobs`` and then reads the frames). A worker's rows are committed
  only by a transaction that holds a lock on their job's row (``fence_attempt``), so they belong to a
  job that exists; a statement trigger deletes the rows of deleted jobs, as ON DELETE CASCADE did.
- ``pose_results.frames_deleted_at``: when retention deleted a succeeded job's frames (its result
  is then 410 Gone; the summary, ``document`` and ``tracks``, stays).

Functions (the duty calls them; operators may too): ``pose_frame_partitions()`` lists the partitions
with their id ranges; ``pose_frame_rows_add_partition(lo, hi)``, ``pose_frame_rows_drop_partition(name)``
and ``pose_frame_rows_fence_default(lo, hi)`` (a CHECK on the DEFAULT partition that lets a new
partition be created without scanning it); ``pose_job_ended_before(job, t)``: the job, and its parent
for a segment, ended (succeeded, failed, cancelled) before t.

Downgrade copies the rows back into one plain table with its foreign key (rows retention deleted
stay deleted).

Revision ID: 0008_frame_retention
Revises: 0007_segments
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008_frame_retention"
down_revision = "0007_segments"
branch_labels = None
depends_on = None

#: Job ids in the first partition this migration creates (the duty sizes the next ones).
FIRST_PARTITION_JOBS = 1000

COLUMNS = """
    job_id      bigint NOT NULL,
    attempt     integer NOT NULL,
    frame_index integer NOT NULL,
    time_s      double precision NOT NULL,
    track_id    integer,
    score       real,
    bbox        real[],
    keypoints   real[],
    world       real[],
    extra       jsonb
"""

FUNCTIONS = r"""
-- The partitions of pose_frame_rows: job ids [lo, hi) (NULL: unbounded), and which one is DEFAULT.
CREATE FUNCTION pose_frame_partitions()
RETURNS TABLE (name text, lo bigint, hi bigint, is_default boolean)
LANGUAGE sql STABLE AS $$
SELECT c.relname::text,
       CAST(NULLIF(m.bounds[1], 'MINVALUE') AS bigint),
       CAST(NULLIF(m.bounds[2], 'MAXVALUE') AS bigint),
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
FROM pg_inherits AS i
JOIN pg_class AS c ON c.oid = i.inhrelid
LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                               'FROM \(''?([^'')]+)''?\) TO \(''?([^'')]+)''?\)') AS m(bounds) ON true
WHERE i.inhparent = 'pose_frame_rows'::regclass
$$;

-- A partition for job ids [lo, hi), named after lo.
CREATE FUNCTION pose_frame_rows_add_partition(lo bigint, hi bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    partition text := 'pose_frame_rows_' || lo;
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF pose_frame_rows FOR VALUES FROM (%s) TO (%s)', partition, lo, hi);
    RETURN partition;
END $$;

-- Proves to PostgreSQL that the DEFAULT partition holds no row with an id in [lo, hi), scanning it
-- here (with only the DEFAULT partition locked), so that creating that partition next need not scan
-- it while it holds pose_frame_rows exclusively. Dropped again once the partition exists.
CREATE FUNCTION pose_frame_rows_fence_default(lo bigint, hi bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE pose_frame_rows_default DROP CONSTRAINT IF EXISTS pose_frame_rows_default_fence;
    EXECUTE format('ALTER TABLE pose_frame_rows_default ADD CONSTRAINT pose_frame_rows_default_fence '
                   'CHECK (job_id < %s OR job_id >= %s)', lo, hi);
END $$;

-- Drops a partition of pose_frame_rows by name (never the DEFAULT one, never another table).
CREATE FUNCTION pose_frame_rows_drop_partition(partition text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pose_frame_partitions() AS p WHERE p.name = partition AND NOT p.is_default) THEN
        RAISE EXCEPTION '% is not a partition of pose_frame_rows that may be dropped', partition;
    END IF;
    EXECUTE format('DROP TABLE %I', partition);
END $$;

-- Whether the job ended (succeeded, failed or cancelled) before `before` and, for a segment, its parent
-- too (a waiting parent still needs its segments' frames). A final job without finished_at (set by
-- hand) has not: it is kept.
CREATE FUNCTION pose_job_ended_before(job bigint, before timestamptz)
RETURNS boolean LANGUAGE sql STABLE AS $$
SELECT EXISTS (
    SELECT 1 FROM pose_jobs AS j LEFT JOIN pose_jobs AS p ON p.id = j.parent_id
    WHERE j.id = job AND j.state IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < before
      AND (j.parent_id IS NULL OR (p.state IN ('succeeded', 'failed', 'cancelled') AND p.finished_at < before)))
$$;

-- What ON DELETE CASCADE did before the foreign key went: a deleted job's rows go with it.
CREATE FUNCTION pose_frame_rows_of_deleted_jobs()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pose_frame_rows AS f USING gone AS g WHERE f.job_id = g.id;
    RETURN NULL;
END $$;
CREATE TRIGGER pose_jobs_deleted_frames AFTER DELETE ON pose_jobs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION pose_frame_rows_of_deleted_jobs();
"""

UPGRADE = f"""
ALTER TABLE pose_results ADD COLUMN frames_deleted_at timestamptz;

DO $$
DECLARE
    -- the view reads the table by its identity, which stays with the old table: it is made again
    people text := pg_get_viewdef('pose_frame_people'::regclass);
BEGIN
    DROP VIEW pose_frame_people;
    ALTER TABLE pose_frame_rows RENAME TO pose_frame_rows_0;
    ALTER INDEX pose_frame_rows_job_idx RENAME TO pose_frame_rows_0_job_idx;
    ALTER TABLE pose_frame_rows_0 DROP CONSTRAINT pose_frame_rows_job_id_fkey;
    CREATE TABLE pose_frame_rows ({COLUMNS}) PARTITION BY RANGE (job_id);
    EXECUTE 'CREATE VIEW pose_frame_people AS ' || people;
END $$;

{FUNCTIONS}

-- The rows there are stay where they are, as the partition of the ids up to now; then the first
-- partition ahead, the DEFAULT one and the index (which adopts the old table's as that partition's).
DO $$
DECLARE
    next_id bigint := (SELECT COALESCE(max(id), 0) + 1 FROM pose_jobs);
BEGIN
    IF EXISTS (SELECT 1 FROM pose_frame_rows_0) THEN
        EXECUTE format('ALTER TABLE pose_frame_rows ATTACH PARTITION pose_frame_rows_0 '
                       'FOR VALUES FROM (MINVALUE) TO (%s)', next_id);
    ELSE
        DROP TABLE pose_frame_rows_0;
    END IF;
    PERFORM pose_frame_rows_add_partition(next_id, next_id + {FIRST_PARTITION_JOBS});
END $$;
CREATE TABLE pose_frame_rows_default PARTITION OF pose_frame_rows DEFAULT;
CREATE INDEX pose_frame_rows_job_idx ON pose_frame_rows (job_id, attempt, frame_index);
"""

DOWNGRADE = f"""
DROP TRIGGER pose_jobs_deleted_frames ON pose_jobs;
DROP FUNCTION pose_frame_rows_of_deleted_jobs();

DO $$
DECLARE
    people text := pg_get_viewdef('pose_frame_people'::regclass);
BEGIN
    DROP VIEW pose_frame_people;
    CREATE TABLE pose_frame_rows_plain ({COLUMNS});
    INSERT INTO pose_frame_rows_plain
    SELECT f.* FROM pose_frame_rows AS f WHERE EXISTS (SELECT 1 FROM pose_jobs AS j WHERE j.id = f.job_id);
    DROP TABLE pose_frame_rows;
    ALTER TABLE pose_frame_rows_plain RENAME TO pose_frame_rows;
    ALTER TABLE pose_frame_rows ADD CONSTRAINT pose_frame_rows_job_id_fkey
        FOREIGN KEY (job_id) REFERENCES pose_jobs (id) ON DELETE CASCADE;
    CREATE INDEX pose_frame_rows_job_idx ON pose_frame_rows (job_id, attempt, frame_index);
    EXECUTE 'CREATE VIEW pose_frame_people AS ' || people;
END $$;

DROP FUNCTION pose_job_ended_before(bigint, timestamptz);
DROP FUNCTION pose_frame_rows_drop_partition(text);
DROP FUNCTION pose_frame_rows_fence_default(bigint, bigint);
DROP FUNCTION pose_frame_rows_add_partition(bigint, bigint);
DROP FUNCTION pose_frame_partitions();
ALTER TABLE pose_results DROP COLUMN frames_deleted_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
