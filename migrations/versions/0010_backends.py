"""Backends: a job records the backend it needs, a worker the backends it has (issue 15).

A job may ask for a backend in its params (``{"backend": "phalp"}``, the 4D-Humans/PHALP mesh tracker)
or leave it to the worker (absent: the worker's default backend). ``pose_jobs.backend`` is that choice
as a column, written by a trigger from ``params->>'backend'`` on every insert and params update, so a
plain SQL ``INSERT ... params`` is routed exactly like a REST submission; a CHECK names the known
backends, so an unknown one fails the INSERT instead of waiting forever for a worker that cannot exist.

``pose_workers.backends`` is what a worker can run (NULL for a worker that never said: it runs only
jobs that leave the choice to it). The claim statements (``claim_job``, ``finish_succeeded_and_claim``)
take a job only when its backend is NULL or among the claiming worker's, read from its own row: a
worker whose PHALP checkout is missing never claims a PHALP job, and the job waits for one that has
it. The filter is evaluated on the claim index's rows (all queued jobs, in claim order), so a queue
full of jobs no live worker can run costs the claim a longer walk over that partial index, never a
scan of the history.

Revision ID: 0010_backends
Revises: 0009_track_summary
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010_backends"
down_revision = "0009_track_summary"
branch_labels = None
depends_on = None

#: The backends the service knows; worker/pipeline/params.py's BACKENDS lists the same names
#: (tests/phalp/test_units.py compares them).
KNOWN = ("blazepose", "phalp")

UPGRADE = f"""
ALTER TABLE pose_jobs ADD COLUMN backend text
    CONSTRAINT pose_jobs_backend_known CHECK (backend IN ({", ".join(f"'{name}'" for name in KNOWN)}));

-- params is the one source of the choice: the column follows it on every write that could change it
-- (including a direct UPDATE of the column, which is put back).
CREATE FUNCTION pose_jobs_set_backend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.backend := NULLIF(NEW.params ->> 'backend', '');
    RETURN NEW;
END $$;

CREATE TRIGGER pose_jobs_backend BEFORE INSERT OR UPDATE OF params, backend ON pose_jobs
    FOR EACH ROW EXECUTE FUNCTION pose_jobs_set_backend();

-- Jobs stored before: only names the service knows (params were validated by the pipeline schema,
-- which had no backend, so there should be none).
UPDATE pose_jobs SET backend = params ->> 'backend'
WHERE params ->> 'backend' IN ({", ".join(f"'{name}'" for name in KNOWN)});

ALTER TABLE pose_workers ADD COLUMN backends text[];
"""

DOWNGRADE = """
ALTER TABLE pose_workers DROP COLUMN backends;
DROP TRIGGER pose_jobs_backend ON pose_jobs;
DROP FUNCTION pose_jobs_set_backend();
ALTER TABLE pose_jobs DROP COLUMN backend;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
