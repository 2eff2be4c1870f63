"""Workers say why they cannot run jobs: ``pose_workers.problem``.

A worker whose pipeline child cannot load (missing model weights, a broken install) stays alive and
keeps retrying, but claims nothing; without a reason stored where operators look, jobs sit queued
with no explanation anywhere. The worker writes the child's own reason here (NULL once it loads), and
``/readyz`` and ``/v1/pool`` show it.

Revision ID: 0003_worker_problem
Revises: 0002_tenancy
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003_worker_problem"
down_revision = "0002_tenancy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE pose_workers ADD COLUMN problem text")


def downgrade() -> None:
    op.execute("ALTER TABLE pose_workers DROP COLUMN problem")
