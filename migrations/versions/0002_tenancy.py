"""Tenancy: token scopes, ceilings and rates; job owners and API retry counts; upload retention.

- ``pose_api_tokens`` gains ``scopes`` (subset of submit, read, admin), ``max_priority`` (the
  highest priority the token may submit; NULL = the default ceiling) and ``rate_per_min`` (submits
  per minute; NULL = the default rate, 0 = unlimited). Tokens that existed before this revision get
  the default scopes ``{submit, read}``: least privilege, they no longer see other tokens' jobs.
- ``pose_jobs`` gains ``owner_token_id`` (the token that submitted the job; NULL for SQL inserts, env
  tokens and the open API) and ``retries`` (how often the API re-queued it; capped by the API).
- Idempotency keys become unique per owner rather than globally, so two tenants neither collide
  nor learn about each other's keys; ownerless jobs (SQL inserts) still share one namespace.
- ``pose_uploads`` gains ``deleted_at``: retention removes the bytes of an upload whose jobs all
  ended long ago but keeps the row (name, size, sha256) that the jobs refer to.

Revision ID: 0002_tenancy
Revises: 0001_job_core
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002_tenancy"
down_revision = "0001_job_core"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE pose_api_tokens
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY['submit', 'read']::text[]
        CONSTRAINT pose_api_tokens_scopes_known
        CHECK (scopes <@ ARRAY['submit', 'read', 'admin']::text[] AND cardinality(scopes) > 0),
    ADD COLUMN max_priority integer,
    ADD COLUMN rate_per_min integer CONSTRAINT pose_api_tokens_rate_non_negative
        CHECK (rate_per_min IS NULL OR rate_per_min >= 0);

ALTER TABLE pose_jobs
    ADD COLUMN owner_token_id bigint REFERENCES pose_api_tokens (id) ON DELETE SET NULL,
    ADD COLUMN retries integer NOT NULL DEFAULT 0;

-- Listings of one tenant's jobs, newest first.
CREATE INDEX pose_jobs_owner_id_idx ON pose_jobs (owner_token_id, id DESC) WHERE owner_token_id IS NOT NULL;

-- One namespace of idempotency keys per owner; ownerless jobs (owner 0 here: token ids start at 1)
-- share one, so the SQL contract's "unique key" still holds for SQL inserts.
ALTER TABLE pose_jobs DROP CONSTRAINT pose_jobs_idempotency_key_key;
CREATE UNIQUE INDEX pose_jobs_owner_idempotency_key_idx
    ON pose_jobs ((COALESCE(owner_token_id, 0)), idempotency_key);

ALTER TABLE pose_uploads ADD COLUMN deleted_at timestamptz;
"""

DOWNGRADE = """
ALTER TABLE pose_uploads DROP COLUMN deleted_at;

-- Keys that are unique per owner may repeat across owners: only the oldest job keeps its key, so
-- the global constraint can come back without losing a job.
UPDATE pose_jobs AS j SET idempotency_key = NULL
WHERE j.idempotency_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM pose_jobs AS o WHERE o.idempotency_key = j.idempotency_key AND o.id < j.id);
DROP INDEX pose_jobs_owner_idempotency_key_idx;
ALTER TABLE pose_jobs ADD CONSTRAINT pose_jobs_idempotency_key_key UNIQUE (idempotency_key);

DROP INDEX pose_jobs_owner_id_idx;
ALTER TABLE pose_jobs DROP COLUMN retries, DROP COLUMN owner_token_id;

ALTER TABLE pose_api_tokens DROP COLUMN rate_per_min, DROP COLUMN max_priority, DROP COLUMN scopes;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
