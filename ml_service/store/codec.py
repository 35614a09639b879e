"""Convert domain records to and from metadata rows; structured fields travel as JSON text."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from ml_service.domain import (
    JobError,
    JobRecord,
    JobState,
    Metrics,
    ModelRecord,
    Signature,
    Timings,
    VersionRecord,
)
from ml_service.training_contract import (
    TrainingResult,
    evaluation_from_dict,
    learning_curve_from_dict,
    signature_from_dict,
)


def dumps(value: Any) -> str:
    """Encode a value as compact JSON, keeping NaN and infinities."""
    # Metrics such as roc_auc can be NaN; a REAL column would turn NaN into NULL, while
    # Python's JSON writes and reads NaN/Infinity as literal extensions.
    return json.dumps(value, allow_nan=True, separators=(",", ":"), default=_builtin)


def _builtin(value: Any) -> Any:
    # Libraries hand back numpy scalars (np.int64 depth, np.float64 C); store them as the
    # plain numbers they are rather than failing a commit after training finished.
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def timestamp(value: datetime) -> str:
    """Encode a datetime as ISO 8601 text."""
    return value.isoformat()


def parse_timestamp(value: str | None) -> datetime | None:
    """Decode ISO 8601 text, passing None through."""
    return None if value is None else datetime.fromisoformat(value)


def _optional_json(value: Any) -> str | None:
    return None if value is None else dumps(dataclasses.asdict(value))


def _signature_json(signature: Signature) -> str:
    return dumps(dataclasses.asdict(signature))


def version_params(record: VersionRecord) -> dict[str, Any]:
    """Return the named SQL parameters of a versions row."""
    trained = record.training
    return {
        "model_id": record.model_id,
        "version": record.version,
        "kind": record.kind,
        "hyperparameters": dumps(record.hyperparameters),
        "signature": _signature_json(trained.signature),
        "metrics": None if trained.metrics is None else dumps(dataclasses.asdict(trained.metrics)),
        "feature_importance": dumps([[name, value] for name, value in trained.feature_importance]),
        "train_rows": trained.train_rows,
        "holdout_rows": trained.holdout_rows,
        "timings": dumps(dataclasses.asdict(trained.timings)),
        "library_versions": dumps(trained.library_versions),
        "notes": dumps(list(trained.notes)),
        "evaluation": _optional_json(trained.evaluation),
        "learning_curve": _optional_json(trained.learning_curve),
        "created_at": timestamp(record.created_at),
        "artifact_key": record.artifact_key,
        "artifact_sha256": trained.artifact_sha256,
        "artifact_size": trained.artifact_size,
        "parent_version": record.parent_version,
        "dataset_digest": record.dataset_digest,
        "job_id": record.job_id,
        "holdout_fraction": record.holdout_fraction,
        "seed": record.seed,
    }


def version_from_row(row: RowMapping) -> VersionRecord:
    """Build a VersionRecord from a versions row."""
    metrics = row["metrics"]
    notes = row["notes"]
    evaluation, curve = row["evaluation"], row["learning_curve"]
    trained = TrainingResult(
        signature=signature_from_dict(json.loads(row["signature"])),
        metrics=None if metrics is None else Metrics(**json.loads(metrics)),
        feature_importance=tuple(
            (str(name), float(value)) for name, value in json.loads(row["feature_importance"])
        ),
        train_rows=row["train_rows"],
        holdout_rows=row["holdout_rows"],
        timings=Timings(**json.loads(row["timings"])),
        library_versions=json.loads(row["library_versions"]),
        artifact_sha256=row["artifact_sha256"],
        artifact_size=row["artifact_size"],
        notes=tuple(json.loads(notes)) if notes else (),
        evaluation=None if evaluation is None else evaluation_from_dict(json.loads(evaluation)),
        learning_curve=None if curve is None else learning_curve_from_dict(json.loads(curve)),
    )
    return VersionRecord(
        model_id=row["model_id"],
        version=row["version"],
        kind=row["kind"],
        hyperparameters=json.loads(row["hyperparameters"]),
        training=trained,
        created_at=datetime.fromisoformat(row["created_at"]),
        artifact_key=row["artifact_key"],
        parent_version=row["parent_version"],
        dataset_digest=row["dataset_digest"],
        job_id=row["job_id"],
        holdout_fraction=row["holdout_fraction"],
        seed=row["seed"],
    )


def model_from_row(row: RowMapping) -> ModelRecord:
    """Build a ModelRecord from a models row joined with its version summary."""
    return ModelRecord(
        model_id=row["model_id"],
        name=row["name"],
        description=row["description"],
        kind=row["kind"],
        latest_version=row["latest_version"],
        version_count=row["version_count"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


def job_params(job: JobRecord) -> dict[str, Any]:
    """Return the named SQL parameters of a jobs row."""
    return {
        "job_id": job.job_id,
        "model_id": job.model_id,
        "kind": job.kind,
        "state": job.state.value,
        "parent_version": job.parent_version,
        "requested_hyperparameters": dumps(job.requested_hyperparameters),
        "target_column": job.target_column,
        "rows": job.rows,
        "dataset_digest": job.dataset_digest,
        "created_at": timestamp(job.created_at),
        "started_at": None if job.started_at is None else timestamp(job.started_at),
        "ended_at": None if job.ended_at is None else timestamp(job.ended_at),
        "error_code": None if job.error is None else job.error.code,
        "error_message": None if job.error is None else job.error.message,
        "result_version": job.result_version,
        "name": job.name,
        "description": job.description,
    }


def job_from_row(row: RowMapping) -> JobRecord:
    """Build a JobRecord from a jobs row."""
    code = row["error_code"]
    return JobRecord(
        job_id=row["job_id"],
        model_id=row["model_id"],
        kind=row["kind"],
        state=JobState(row["state"]),
        parent_version=row["parent_version"],
        requested_hyperparameters=json.loads(row["requested_hyperparameters"]),
        target_column=row["target_column"],
        rows=row["rows"],
        dataset_digest=row["dataset_digest"],
        created_at=datetime.fromisoformat(row["created_at"]),
        started_at=parse_timestamp(row["started_at"]),
        ended_at=parse_timestamp(row["ended_at"]),
        error=None if code is None else JobError(code, row["error_message"] or ""),
        result_version=row["result_version"],
        name=row["name"],
        description=row["description"],
    )
