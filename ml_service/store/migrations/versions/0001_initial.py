"""The schema as the pre-Alembic store left it (PRAGMA user_version 2, with versions.notes).

Revision ID: 0001
Revises:

A SQLite database made by that code is stamped with this revision instead of running it;
tests compare the two schemas column by column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigInt: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Double: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")
STRICT = {"sqlite_strict": True}
AUTO = {"sqlite_autoincrement": True, **STRICT}


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("seq", BigInt, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        **AUTO,
    )
    op.create_table(
        "version_counters",
        sa.Column("model_id", sa.Text, primary_key=True),
        sa.Column("last_version", BigInt, nullable=False),
        **STRICT,
    )
    op.create_table(
        "versions",
        sa.Column("model_id", sa.Text, sa.ForeignKey("models.model_id"), primary_key=True),
        sa.Column("version", BigInt, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("hyperparameters", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text),
        sa.Column("feature_importance", sa.Text, nullable=False),
        sa.Column("train_rows", BigInt, nullable=False),
        sa.Column("holdout_rows", BigInt, nullable=False),
        sa.Column("timings", sa.Text, nullable=False),
        sa.Column("library_versions", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("artifact_key", sa.Text, nullable=False, unique=True),
        sa.Column("artifact_sha256", sa.Text, nullable=False),
        sa.Column("artifact_size", BigInt, nullable=False),
        sa.Column("parent_version", BigInt, nullable=False),
        sa.Column("dataset_digest", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("holdout_fraction", Double, nullable=False),
        sa.Column("seed", BigInt, nullable=False),
        sa.Column("notes", sa.Text, nullable=False, server_default="[]"),
        **STRICT,
    )
    op.create_table(
        "jobs",
        sa.Column("seq", BigInt, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, nullable=False, unique=True),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("parent_version", BigInt, nullable=False),
        sa.Column("requested_hyperparameters", sa.Text, nullable=False),
        sa.Column("target_column", sa.Text, nullable=False),
        sa.Column("rows", BigInt, nullable=False),
        sa.Column("dataset_digest", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text),
        sa.Column("ended_at", sa.Text),
        sa.Column("error_code", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("result_version", BigInt, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        **AUTO,
    )
    op.create_index("jobs_by_model", "jobs", ["model_id", "seq"])
    op.create_index("jobs_by_state", "jobs", ["state"])


def downgrade() -> None:
    for table in ("jobs", "versions", "version_counters", "models"):
        op.drop_table(table)
