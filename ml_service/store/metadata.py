"""The metadata database as the store uses it: models, versions and jobs, and what the
sweeps keep. SQLAlchemy Core, on SQLite or PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from ml_service.store.job_rows import ACTIVE_STATES, JobRows
from ml_service.store.model_rows import ModelRows
from ml_service.store.tables import jobs, versions


class Metadata(ModelRows, JobRows):
    """Models, versions and jobs in one SQL database."""

    # Sweep support

    def artifact_keys(self) -> set[str]:
        """Return every artifact key a version row points at."""
        with self._read() as conn:
            return set(conn.execute(sa.select(versions.c.artifact_key)).scalars())

    def dataset_digests(self) -> set[str]:
        """Return the digests of datasets that a version or a non-final job references."""
        query = sa.union(
            sa.select(versions.c.dataset_digest),
            sa.select(jobs.c.dataset_digest).where(jobs.c.state.in_(ACTIVE_STATES)),
        )
        with self._read() as conn:
            return set(conn.execute(query).scalars())
