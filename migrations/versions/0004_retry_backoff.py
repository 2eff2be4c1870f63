"""The retry backoff, defined once: ``pose_retry_delay(attempt, base_s, cap_s)``.

Both statements that send a job back to the queue after a failure (finish_failed, rescue_expired)
used to paste the same formula; a SQL function keeps it in one place, where an operator can also
read it: min(cap, base * 2^(attempt - 1)) * U(0.5, 1.5), the jitter spreading retries of jobs that
failed together (a database outage, a lost host).

Revision ID: 0004_retry_backoff
Revises: 0003_worker_problem
Create Date: 2026-12-02
"""

from alembic import op

revision = "0004_retry_backoff"
down_revision = "0003_worker_problem"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE FUNCTION pose_retry_delay(attempt integer, base_s double precision, cap_s double precision)
RETURNS interval LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT make_interval(secs => least(cap_s, base_s * power(2, attempt - 1)) * (0.5 + random()))
$$;
COMMENT ON FUNCTION pose_retry_delay(integer, double precision, double precision) IS
    'pose-service retry backoff: min(cap, base * 2^(attempt - 1)) * U(0.5, 1.5)';
""")


def downgrade() -> None:
    op.execute("DROP FUNCTION pose_retry_delay(integer, double precision, double precision)")
