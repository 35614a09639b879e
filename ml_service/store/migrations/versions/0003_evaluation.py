"""Versions keep their holdout evaluation and learning curve.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as versions:
        # Confusion matrix and curves on the holdout, and losses by iteration, as JSON;
        # null for versions trained before they were kept.
        versions.add_column(sa.Column("evaluation", sa.Text))
        versions.add_column(sa.Column("learning_curve", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("versions") as versions:
        versions.drop_column("learning_curve")
        versions.drop_column("evaluation")
