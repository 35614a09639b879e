"""Queued jobs carry their training task, so any replica with a free worker can run them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        # The TrainingTask as training_contract encodes it; null for jobs queued before,
        # which only the replica that accepted them runs.
        jobs.add_column(sa.Column("task", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("task")
