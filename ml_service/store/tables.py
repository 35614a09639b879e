"""The metadata tables as SQLAlchemy Core objects, for building queries on either database.

These describe the schema at the Alembic head; the migrations in `migrations/versions`
create it and must move together with this module (tests compare the two).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

# SQLite STRICT tables accept only INTEGER, REAL, TEXT, BLOB and ANY; PostgreSQL gets 64-bit
# integers and doubles.
BigInt: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Double: sa.types.TypeEngine[float] = sa.Double().with_variant(sqlite.REAL(), "sqlite")
Text = sa.Text()

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    # seq orders models newest first and survives clock changes; ids come from the caller.
    sa.Column("seq", BigInt, primary_key=True, autoincrement=True),
    sa.Column("model_id", Text, nullable=False, unique=True),
    sa.Column("name", Text, nullable=False),
    sa.Column("description", Text, nullable=False),
    sa.Column("kind", Text, nullable=False),
    sa.Column("created_at", Text, nullable=False),
    sqlite_autoincrement=True,
    sqlite_strict=True,
)

# Outlives its model so that a version number is never handed out twice.
version_counters = sa.Table(
    "version_counters",
    metadata,
    sa.Column("model_id", Text, primary_key=True),
    sa.Column("last_version", BigInt, nullable=False),
    sqlite_strict=True,
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("model_id", Text, sa.ForeignKey("models.model_id"), primary_key=True),
    sa.Column("version", BigInt, primary_key=True),
    sa.Column("kind", Text, nullable=False),
    sa.Column("hyperparameters", Text, nullable=False),
    sa.Column("signature", Text, nullable=False),
    sa.Column("metrics", Text),
    sa.Column("feature_importance", Text, nullable=False),
    sa.Column("train_rows", BigInt, nullable=False),
    sa.Column("holdout_rows", BigInt, nullable=False),
    sa.Column("timings", Text, nullable=False),
    sa.Column("library_versions", Text, nullable=False),
    sa.Column("created_at", Text, nullable=False),
    sa.Column("artifact_key", Text, nullable=False, unique=True),
    sa.Column("artifact_sha256", Text, nullable=False),
    sa.Column("artifact_size", BigInt, nullable=False),
    sa.Column("parent_version", BigInt, nullable=False),
    sa.Column("dataset_digest", Text, nullable=False),
    sa.Column("job_id", Text, nullable=False),
    sa.Column("holdout_fraction", Double, nullable=False),
    sa.Column("seed", BigInt, nullable=False),
    # What the user should know about a fit (e.g. the solver did not converge), as JSON.
    sa.Column("notes", Text, nullable=False, server_default="[]"),
    # Confusion matrix and curves on the holdout, and losses by iteration, as JSON.
    sa.Column("evaluation", Text),
    sa.Column("learning_curve", Text),
    sqlite_strict=True,
)

# No foreign key to models: a job for a new model exists before its model does.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("seq", BigInt, primary_key=True, autoincrement=True),
    sa.Column("job_id", Text, nullable=False, unique=True),
    sa.Column("model_id", Text, nullable=False),
    sa.Column("kind", Text, nullable=False),
    sa.Column("state", Text, nullable=False),
    sa.Column("parent_version", BigInt, nullable=False),
    sa.Column("requested_hyperparameters", Text, nullable=False),
    sa.Column("target_column", Text, nullable=False),
    sa.Column("rows", BigInt, nullable=False),
    sa.Column("dataset_digest", Text, nullable=False),
    sa.Column("created_at", Text, nullable=False),
    sa.Column("started_at", Text),
    sa.Column("ended_at", Text),
    sa.Column("error_code", Text),
    sa.Column("error_message", Text),
    sa.Column("result_version", BigInt, nullable=False),
    sa.Column("name", Text, nullable=False),
    sa.Column("description", Text, nullable=False),
    # Shared mode: the replica running the job holds it while lease_until (database clock,
    # epoch seconds) is ahead; any replica may ask it to stop; its progress as JSON.
    sa.Column("owner", Text),
    sa.Column("lease_until", Double),
    sa.Column("cancel_requested", BigInt, nullable=False, server_default="0"),
    sa.Column("progress", Text),
    # Shared mode: the TrainingTask (training_contract's JSON) that whichever replica claims
    # the queued job runs; null in embedded mode, where the accepting process runs it.
    sa.Column("task", Text),
    sa.Index("jobs_by_model", "model_id", "seq"),
    sa.Index("jobs_by_state", "state"),
    sqlite_autoincrement=True,
    sqlite_strict=True,
)

# Commits and deletes in order, so other replicas drop what their model caches know of a
# model (version 0: the whole model) within one poll.
model_events = sa.Table(
    "model_events",
    metadata,
    sa.Column("seq", BigInt, primary_key=True, autoincrement=True),
    sa.Column("model_id", Text, nullable=False),
    sa.Column("version", BigInt, nullable=False),
    sa.Column("event", Text, nullable=False),
    sa.Column("at", Double, nullable=False),
    sqlite_autoincrement=True,
    sqlite_strict=True,
)
