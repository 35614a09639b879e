"""SQL for models and versions: numbering, commits, lookups, pages and deletes.

Every commit and delete appends to the model change log in the transaction of the change,
and a version's commit marks its job succeeded in that same transaction.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ml_service.domain import JobState, ModelRecord, VersionRecord
from ml_service.errors import FailedPrecondition, NotFound
from ml_service.store import codec
from ml_service.store.database import Database, db_now
from ml_service.store.errors import LeaseLost
from ml_service.store.job_rows import ACTIVE_STATES
from ml_service.store.paging import MAX_KEY
from ml_service.store.tables import jobs, model_events, models, version_counters, versions

_VERSION_COLUMNS = [c for c in versions.c]


def _model_select() -> sa.Select[Any]:
    """Select models with their newest version's number and time and their version count."""
    latest, counted, newest = versions.alias("v"), versions.alias("c"), versions.alias("x")
    count = sa.select(sa.func.count()).where(counted.c.model_id == models.c.model_id)
    top = sa.select(sa.func.max(newest.c.version)).where(newest.c.model_id == models.c.model_id)
    return (
        sa.select(
            models,
            latest.c.version.label("latest_version"),
            latest.c.created_at.label("updated_at"),
            count.scalar_subquery().label("version_count"),
        )
        .select_from(models)
        .join(
            latest,
            sa.and_(
                latest.c.model_id == models.c.model_id, latest.c.version == top.scalar_subquery()
            ),
        )
    )


def _log_event(conn: sa.Connection, model_id: str, version: int, event: str) -> None:
    if conn.dialect.name == "sqlite":
        # Only other replicas read the log, and SQLite is never shared; nothing would prune
        # it either (replicas do), so it would grow by a row per commit and delete for ever.
        return
    # In the transaction of the change itself: no replica can see one without the other.
    conn.execute(
        model_events.insert().values(
            model_id=model_id, version=version, event=event, at=time.time()
        )
    )


def _require_lease(conn: sa.Connection, job_id: str, owner: str) -> None:
    # The row stays locked until the version commits, so no replica can fail the job as
    # lapsed in between; a replica that already did has left it no longer running.
    held = conn.execute(
        sa.select(jobs.c.job_id)
        .where(
            jobs.c.job_id == job_id,
            jobs.c.owner == owner,
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.lease_until >= db_now(conn.dialect.name),
        )
        .with_for_update()
    ).first()
    if held is None:
        raise LeaseLost(f"this replica no longer holds the lease of job {job_id!r}")


def _model_missing(model_id: str) -> NotFound:
    return NotFound(f"model {model_id!r} not found")


class ModelRows(Database):
    """Models and versions in the metadata database."""

    def allocate_version(self, model_id: str) -> int:
        """Take the next version number of a model; a number is never handed out twice."""
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        counted = insert(version_counters).values(model_id=model_id, last_version=1)
        statement = counted.on_conflict_do_update(
            index_elements=[version_counters.c.model_id],
            set_={"last_version": version_counters.c.last_version + 1},
        ).returning(version_counters.c.last_version)
        with self._write() as conn:
            return int(conn.execute(statement).scalar_one())

    def insert_version(
        self, record: VersionRecord, name: str, description: str, owner: str | None = None
    ) -> None:
        """Insert a version, and its model when it is the first; mark its job as succeeded.

        With `owner` (shared mode), only while that replica still holds the running job's
        lease; otherwise raise LeaseLost and insert nothing.
        """
        try:
            with self._write() as conn:
                if owner is not None:
                    _require_lease(conn, record.job_id, owner)
                self._insert_version(conn, record, name, description)
        except sa.exc.IntegrityError:
            # Two first versions of one model committed at once on two replicas.
            raise FailedPrecondition(f"model {record.model_id!r} already exists") from None

    def _insert_version(
        self, conn: sa.Connection, record: VersionRecord, name: str, description: str
    ) -> None:
        kind = conn.execute(
            sa.select(models.c.kind).where(models.c.model_id == record.model_id)
        ).scalar_one_or_none()
        if record.parent_version == 0:
            if kind is not None:
                raise FailedPrecondition(f"model {record.model_id!r} already exists")
            conn.execute(
                models.insert().values(
                    model_id=record.model_id,
                    name=name,
                    description=description,
                    kind=record.kind,
                    created_at=codec.timestamp(record.created_at),
                )
            )
        elif kind is None:
            # Deleted while a retrain ran; the new version has nothing to belong to.
            raise _model_missing(record.model_id)
        elif kind != record.kind:
            raise FailedPrecondition(
                f"model {record.model_id!r} is of kind {kind!r}, not {record.kind!r}"
            )
        conn.execute(versions.insert().values(codec.version_params(record)))
        _log_event(conn, record.model_id, record.version, "committed")
        # Same transaction, so a crash cannot leave a committed version whose job reads as
        # interrupted; a later update_job from the job manager writes the same outcome.
        conn.execute(
            jobs.update()
            .where(jobs.c.job_id == record.job_id, jobs.c.state.in_(ACTIVE_STATES))
            .values(
                state=JobState.SUCCEEDED.value,
                result_version=record.version,
                ended_at=codec.timestamp(record.created_at),
            )
        )

    def get_model(self, model_id: str) -> ModelRecord:
        """Return a model or raise NotFound."""
        with self._read() as conn:
            found = conn.execute(_model_select().where(models.c.model_id == model_id)).first()
        if found is None:
            raise _model_missing(model_id)
        return codec.model_from_row(found._mapping)

    def list_models(self, limit: int, after: int | None) -> list[tuple[int, ModelRecord]]:
        """Return up to `limit` models older than seq `after`, newest first, with their seq."""
        query = (
            _model_select()
            .where(models.c.seq < (MAX_KEY if after is None else after))
            .order_by(models.c.seq.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [(row.seq, codec.model_from_row(row._mapping)) for row in rows]

    def get_version(self, model_id: str, version: int) -> VersionRecord:
        """Return a version (0 = latest) or raise NotFound naming what is missing."""
        query = sa.select(*_VERSION_COLUMNS).where(versions.c.model_id == model_id)
        if version == 0:
            query = query.order_by(versions.c.version.desc()).limit(1)
        else:
            query = query.where(versions.c.version == version)
        with self._read() as conn:
            row = conn.execute(query).first()
            if row is None:
                self._require_model(conn, model_id)
                raise NotFound(f"model {model_id!r} has no version {version}")
        return codec.version_from_row(row._mapping)

    def list_versions(self, model_id: str, limit: int, after: int | None) -> list[VersionRecord]:
        """Return up to `limit` versions numbered below `after`, newest first."""
        query = (
            sa.select(*_VERSION_COLUMNS)
            .where(
                versions.c.model_id == model_id,
                versions.c.version < (MAX_KEY if after is None else after),
            )
            .order_by(versions.c.version.desc())
            .limit(limit)
        )
        with self._read() as conn:
            self._require_model(conn, model_id)
            rows = conn.execute(query).all()
        return [codec.version_from_row(row._mapping) for row in rows]

    def delete_model(self, model_id: str) -> list[str]:
        """Delete a model with its versions; return the artifact keys they used."""
        with self._write() as conn:
            self._require_model(conn, model_id)
            keys = conn.execute(
                versions.delete()
                .where(versions.c.model_id == model_id)
                .returning(versions.c.artifact_key)
            ).scalars()
            found = list(keys)
            conn.execute(models.delete().where(models.c.model_id == model_id))
            _log_event(conn, model_id, 0, "deleted")
        return found

    def delete_version(self, model_id: str, version: int) -> tuple[str, bool]:
        """Delete a version, and its model when it was the last; return its artifact key."""
        with self._write() as conn:
            key = conn.execute(
                versions.delete()
                .where(versions.c.model_id == model_id, versions.c.version == version)
                .returning(versions.c.artifact_key)
            ).scalar_one_or_none()
            if key is None:
                self._require_model(conn, model_id)
                raise NotFound(f"model {model_id!r} has no version {version}")
            left = conn.execute(
                sa.select(sa.func.count()).where(versions.c.model_id == model_id)
            ).scalar_one()
            if left == 0:
                conn.execute(models.delete().where(models.c.model_id == model_id))
            _log_event(conn, model_id, 0 if left == 0 else version, "deleted")
        return str(key), left == 0

    @staticmethod
    def _require_model(conn: sa.Connection, model_id: str) -> None:
        found = conn.execute(sa.select(models.c.seq).where(models.c.model_id == model_id))
        if found.first() is None:
            raise _model_missing(model_id)
