"""SQL for models, versions and jobs; every call holds one lock over one connection."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from ml_service.domain import JobError, JobRecord, JobState, ModelRecord, VersionRecord
from ml_service.errors import FailedPrecondition, NotFound
from ml_service.store import codec
from ml_service.store.schema import connect, transaction

_MODEL_SELECT = """
    SELECT m.seq, m.model_id, m.name, m.description, m.kind, m.created_at,
           v.version AS latest_version, v.created_at AS updated_at,
           (SELECT COUNT(*) FROM versions c WHERE c.model_id = m.model_id) AS version_count
    FROM models m
    JOIN versions v ON v.model_id = m.model_id
     AND v.version = (SELECT MAX(version) FROM versions x WHERE x.model_id = m.model_id)
"""

_VERSION_COLUMNS = (
    "model_id, version, kind, hyperparameters, signature, metrics, feature_importance,"
    " train_rows, holdout_rows, timings, library_versions, created_at, artifact_key,"
    " artifact_sha256, artifact_size, parent_version, dataset_digest, job_id,"
    " holdout_fraction, seed, notes, evaluation, learning_curve"
)

_JOB_COLUMNS = (
    "job_id, model_id, kind, state, parent_version, requested_hyperparameters, target_column,"
    " rows, dataset_digest, created_at, started_at, ended_at, error_code, error_message,"
    " result_version, name, description"
)

_ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)


def _placeholders(columns: str) -> str:
    return ", ".join(f":{c.strip()}" for c in columns.split(","))


def _model_missing(model_id: str) -> NotFound:
    return NotFound(f"model {model_id!r} not found")


class Metadata:
    """Models, versions and jobs in SQLite."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path)
        # One connection, one lock: SQLite allows one writer anyway and our queries are short.
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # Models and versions

    def allocate_version(self, model_id: str) -> int:
        """Take the next version number of a model; a number is never handed out twice."""
        with self._lock, transaction(self._conn) as conn:
            row = conn.execute(
                "INSERT INTO version_counters (model_id, last_version) VALUES (?, 1)"
                " ON CONFLICT (model_id) DO UPDATE SET last_version = last_version + 1"
                " RETURNING last_version",
                (model_id,),
            ).fetchone()
            return int(row[0])

    def insert_version(self, record: VersionRecord, name: str, description: str) -> None:
        """Insert a version, and its model when it is the first; mark its job as succeeded."""
        with self._lock, transaction(self._conn) as conn:
            model = conn.execute(
                "SELECT kind FROM models WHERE model_id = ?", (record.model_id,)
            ).fetchone()
            if record.parent_version == 0:
                if model is not None:
                    raise FailedPrecondition(f"model {record.model_id!r} already exists")
                conn.execute(
                    "INSERT INTO models (model_id, name, description, kind, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        record.model_id,
                        name,
                        description,
                        record.kind,
                        codec.timestamp(record.created_at),
                    ),
                )
            elif model is None:
                # Deleted while a retrain ran; the new version has nothing to belong to.
                raise _model_missing(record.model_id)
            elif model["kind"] != record.kind:
                raise FailedPrecondition(
                    f"model {record.model_id!r} is of kind {model['kind']!r}, not {record.kind!r}"
                )
            conn.execute(
                f"INSERT INTO versions ({_VERSION_COLUMNS}) VALUES"
                f" ({_placeholders(_VERSION_COLUMNS)})",
                codec.version_params(record),
            )
            # Same transaction, so a crash cannot leave a committed version whose job reads as
            # interrupted; a later update_job from the job manager writes the same outcome.
            conn.execute(
                "UPDATE jobs SET state = ?, result_version = ?, ended_at = ?"
                " WHERE job_id = ? AND state IN (?, ?)",
                (
                    JobState.SUCCEEDED.value,
                    record.version,
                    codec.timestamp(record.created_at),
                    record.job_id,
                    *_ACTIVE_STATES,
                ),
            )

    def get_model(self, model_id: str) -> ModelRecord:
        """Return a model or raise NotFound."""
        with self._lock:
            row = self._conn.execute(f"{_MODEL_SELECT} WHERE m.model_id = ?", (model_id,))
            found = row.fetchone()
        if found is None:
            raise _model_missing(model_id)
        return codec.model_from_row(found)

    def list_models(self, limit: int, after: int | None) -> list[tuple[int, ModelRecord]]:
        """Return up to `limit` models older than seq `after`, newest first, with their seq."""
        with self._lock:
            rows = self._conn.execute(
                f"{_MODEL_SELECT} WHERE m.seq < ? ORDER BY m.seq DESC LIMIT ?",
                (after if after is not None else 2**63 - 1, limit),
            ).fetchall()
        return [(row["seq"], codec.model_from_row(row)) for row in rows]

    def get_version(self, model_id: str, version: int) -> VersionRecord:
        """Return a version (0 = latest) or raise NotFound naming what is missing."""
        with self._lock:
            if version == 0:
                row = self._conn.execute(
                    f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model_id = ?"
                    " ORDER BY version DESC LIMIT 1",
                    (model_id,),
                ).fetchone()
            else:
                row = self._conn.execute(
                    f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model_id = ? AND version = ?",
                    (model_id, version),
                ).fetchone()
            if row is None:
                self._require_model(model_id)
                raise NotFound(f"model {model_id!r} has no version {version}")
        return codec.version_from_row(row)

    def list_versions(self, model_id: str, limit: int, after: int | None) -> list[VersionRecord]:
        """Return up to `limit` versions numbered below `after`, newest first."""
        with self._lock:
            self._require_model(model_id)
            rows = self._conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model_id = ? AND version < ?"
                " ORDER BY version DESC LIMIT ?",
                (model_id, after if after is not None else 2**63 - 1, limit),
            ).fetchall()
        return [codec.version_from_row(row) for row in rows]

    def delete_model(self, model_id: str) -> list[str]:
        """Delete a model with its versions; return the artifact keys they used."""
        with self._lock, transaction(self._conn) as conn:
            self._require_model(model_id)
            keys = [
                row[0]
                for row in conn.execute(
                    "SELECT artifact_key FROM versions WHERE model_id = ?", (model_id,)
                )
            ]
            conn.execute("DELETE FROM versions WHERE model_id = ?", (model_id,))
            conn.execute("DELETE FROM models WHERE model_id = ?", (model_id,))
        return keys

    def delete_version(self, model_id: str, version: int) -> tuple[str, bool]:
        """Delete a version, and its model when it was the last; return its artifact key."""
        with self._lock, transaction(self._conn) as conn:
            row = conn.execute(
                "DELETE FROM versions WHERE model_id = ? AND version = ? RETURNING artifact_key",
                (model_id, version),
            ).fetchone()
            if row is None:
                self._require_model(model_id)
                raise NotFound(f"model {model_id!r} has no version {version}")
            left = conn.execute(
                "SELECT COUNT(*) FROM versions WHERE model_id = ?", (model_id,)
            ).fetchone()[0]
            if left == 0:
                conn.execute("DELETE FROM models WHERE model_id = ?", (model_id,))
        return str(row[0]), left == 0

    def _require_model(self, model_id: str) -> None:
        # Callers hold the lock.
        found = self._conn.execute("SELECT 1 FROM models WHERE model_id = ?", (model_id,))
        if found.fetchone() is None:
            raise _model_missing(model_id)

    # Jobs

    def insert_job(self, job: JobRecord) -> None:
        """Insert a new job; its id must be new."""
        try:
            with self._lock, transaction(self._conn) as conn:
                conn.execute(
                    f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({_placeholders(_JOB_COLUMNS)})",
                    codec.job_params(job),
                )
        except sqlite3.IntegrityError:
            raise FailedPrecondition(f"job {job.job_id!r} already exists") from None

    def update_job(self, job: JobRecord) -> None:
        """Overwrite a stored job with this record."""
        params = codec.job_params(job)
        assignments = ", ".join(f"{c.strip()} = :{c.strip()}" for c in _JOB_COLUMNS.split(","))
        with self._lock, transaction(self._conn) as conn:
            updated = conn.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = :job_id", params
            ).rowcount
        if updated == 0:
            raise NotFound(f"job {job.job_id!r} not found")

    def get_job(self, job_id: str) -> JobRecord:
        """Return a job or raise NotFound."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return codec.job_from_row(row)

    def list_jobs(
        self, limit: int, after: int | None, model_id: str
    ) -> list[tuple[int, JobRecord]]:
        """Return up to `limit` jobs older than seq `after`, newest first, with their seq."""
        query = f"SELECT seq, {_JOB_COLUMNS} FROM jobs WHERE seq < ?"
        params: list[object] = [after if after is not None else 2**63 - 1]
        if model_id:
            query += " AND model_id = ?"
            params.append(model_id)
        with self._lock:
            rows = self._conn.execute(f"{query} ORDER BY seq DESC LIMIT ?", (*params, limit))
            found = rows.fetchall()
        return [(row["seq"], codec.job_from_row(row)) for row in found]

    def fail_interrupted_jobs(self, now: datetime, error: JobError) -> int:
        """Mark jobs a previous process left queued or running as failed; return how many."""
        with self._lock, transaction(self._conn) as conn:
            return conn.execute(
                "UPDATE jobs SET state = ?, ended_at = ?, error_code = ?, error_message = ?"
                " WHERE state IN (?, ?)",
                (
                    JobState.FAILED.value,
                    codec.timestamp(now),
                    error.code,
                    error.message,
                    *_ACTIVE_STATES,
                ),
            ).rowcount

    # Sweep support

    def artifact_keys(self) -> set[str]:
        """Return every artifact key a version row points at."""
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT artifact_key FROM versions")}

    def dataset_digests(self) -> set[str]:
        """Return the digests of datasets that a version or a non-final job references."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT dataset_digest FROM versions UNION"
                " SELECT dataset_digest FROM jobs WHERE state IN (?, ?)",
                _ACTIVE_STATES,
            )
            return {row[0] for row in rows}
