"""Shared mode: job leases, cancel requests and progress on job rows; a model change log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigInt: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Double: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("owner", sa.Text))
        jobs.add_column(sa.Column("lease_until", Double))
        jobs.add_column(sa.Column("cancel_requested", BigInt, nullable=False, server_default="0"))
        jobs.add_column(sa.Column("progress", sa.Text))
    op.create_table(
        "model_events",
        sa.Column("seq", BigInt, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("version", BigInt, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("at", Double, nullable=False),
        sqlite_autoincrement=True,
        sqlite_strict=True,
    )


def downgrade() -> None:
    op.drop_table("model_events")
    with op.batch_alter_table("jobs") as jobs:
        for column in ("progress", "cancel_requested", "lease_until", "owner"):
            jobs.drop_column(column)
