"""Every mapping between protobuf messages and the REST models, in one place."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2
from mlops.v1 import types_pb2 as pb

from rest_gateway import inputs, schemas

_FEATURE_TYPE_NAME: dict[int, schemas.FeatureTypeName] = {
    pb.FEATURE_TYPE_NUMERIC: "numeric",
    pb.FEATURE_TYPE_CATEGORICAL: "categorical",
}
_FEATURE_TYPE = {"numeric": pb.FEATURE_TYPE_NUMERIC, "categorical": pb.FEATURE_TYPE_CATEGORICAL}
_HYPERPARAMETER_TYPE_NAME: dict[int, schemas.HyperparameterTypeName] = {
    pb.HYPERPARAMETER_TYPE_INT: "int",
    pb.HYPERPARAMETER_TYPE_FLOAT: "float",
    pb.HYPERPARAMETER_TYPE_STRING: "string",
    pb.HYPERPARAMETER_TYPE_BOOL: "bool",
}
_JOB_STATE_NAME: dict[int, schemas.JobStateName] = {
    pb.JOB_STATE_QUEUED: "queued",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_SUCCEEDED: "succeeded",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_CANCELLED: "cancelled",
}
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def _finite(value: float) -> float | None:
    # JSON has no NaN or infinity; an undefined metric (e.g. AUC without a class) is null.
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    # Struct numbers are doubles; show whole numbers as JSON integers, as the contract says.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Convert a Struct to a JSON object."""
    result: dict[str, Any] = _plain(json_format.MessageToDict(struct))
    return result


def dict_to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    """Convert a JSON object to a Struct."""
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    result: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    return result


def kind(message: pb.ModelKind) -> schemas.ModelKind:
    """Convert a ModelKind."""
    return schemas.ModelKind(
        name=message.name,
        display_name=message.display_name,
        description=message.description,
        hyperparameters=[
            schemas.HyperparameterSpec(
                name=h.name,
                type=_HYPERPARAMETER_TYPE_NAME.get(h.type, "string"),
                default=_plain(json_format.MessageToDict(h.default_value)),
                minimum=h.minimum if h.HasField("minimum") else None,
                maximum=h.maximum if h.HasField("maximum") else None,
                exclusive_minimum=h.exclusive_minimum,
                exclusive_maximum=h.exclusive_maximum,
                choices=list(h.choices),
                description=h.description,
            )
            for h in message.hyperparameters
        ],
    )


def model(message: pb.Model) -> schemas.Model:
    """Convert a Model."""
    return schemas.Model(
        model_id=message.model_id,
        name=message.name,
        description=message.description,
        kind=message.kind,
        latest_version=message.latest_version,
        version_count=message.version_count,
        create_time=_time(message, "create_time"),
        update_time=_time(message, "update_time"),
    )


def _signature(message: pb.TrainingSignature) -> schemas.Signature:
    return schemas.Signature(
        features=[
            schemas.FeatureColumn(
                name=f.name,
                feature_type=_FEATURE_TYPE_NAME.get(f.feature_type),
                arrow_type=f.arrow_type,
                categories=list(f.categories),
                null_count=f.null_count,
            )
            for f in message.features
        ],
        target_column=message.target_column,
        target_arrow_type=message.target_arrow_type,
        classes=list(message.classes),
    )


def version(message: pb.ModelVersion) -> schemas.ModelVersion:
    """Convert a ModelVersion."""
    m, t = message.metrics, message.timings
    return schemas.ModelVersion(
        model_id=message.model_id,
        version=message.version,
        kind=message.kind,
        hyperparameters=struct_to_dict(message.hyperparameters),
        signature=_signature(message.signature),
        metrics=schemas.Metrics(
            accuracy=_finite(m.accuracy),
            balanced_accuracy=_finite(m.balanced_accuracy),
            f1_macro=_finite(m.f1_macro),
            roc_auc=_finite(m.roc_auc),
            log_loss=_finite(m.log_loss),
        )
        if message.HasField("metrics")
        else None,
        feature_importance=[
            schemas.FeatureImportance(feature=f.feature, importance=f.importance)
            for f in message.feature_importance
        ],
        train_rows=message.train_rows,
        holdout_rows=message.holdout_rows,
        timings=schemas.Timings(
            queue_seconds=t.queue_seconds,
            prepare_seconds=t.prepare_seconds,
            fit_seconds=t.fit_seconds,
            evaluate_seconds=t.evaluate_seconds,
            save_seconds=t.save_seconds,
        ),
        library_versions=dict(message.library_versions),
        create_time=_time(message, "create_time"),
        artifact_sha256=message.artifact_sha256,
        artifact_size_bytes=message.artifact_size_bytes,
        lineage=schemas.Lineage(
            parent_version=message.lineage.parent_version,
            dataset_digest=message.lineage.dataset_digest,
            job_id=message.lineage.job_id,
        ),
        notes=list(message.notes),
        evaluation=_evaluation(message) if message.HasField("evaluation") else None,
        learning_curve=_learning_curve(message) if message.HasField("learning_curve") else None,
    )


def job_state(message: pb.TrainingJob) -> schemas.JobStateName:
    """Name a job's state as the REST API does, e.g. "running"."""
    return _JOB_STATE_NAME.get(message.state, "queued")


def job(message: pb.TrainingJob) -> schemas.Job:
    """Convert a TrainingJob."""
    p = message.progress
    return schemas.Job(
        job_id=message.job_id,
        state=job_state(message),
        model_id=message.model_id,
        kind=message.kind,
        parent_version=message.parent_version,
        hyperparameters=struct_to_dict(message.hyperparameters),
        target_column=message.target_column,
        rows=message.rows,
        dataset_digest=message.dataset_digest,
        progress=schemas.Progress(
            stage=p.stage,
            fraction=p.fraction,
            iteration=p.iteration,
            total_iterations=p.total_iterations,
            metrics={k: _finite(v) for k, v in p.metrics.items()},
        ),
        create_time=_time(message, "create_time"),
        start_time=_time(message, "start_time"),
        end_time=_time(message, "end_time"),
        error=schemas.JobError(code=message.error.code, message=message.error.message)
        if message.HasField("error")
        else None,
        result=version(message.result) if message.HasField("result") else None,
    )


def training_spec(spec: inputs.TrainingSpec) -> pb.TrainingJobSpec:
    """Convert a training spec to its message."""
    message = pb.TrainingJobSpec(
        kind=spec.kind,
        target_column=spec.target_column,
        hyperparameters=dict_to_struct(spec.hyperparameters),
        name=spec.name,
        description=spec.description,
        feature_columns=spec.feature_columns,
        feature_types={k: _FEATURE_TYPE[v] for k, v in spec.feature_types.items()},
        allow_many_classes=spec.allow_many_classes,
    )
    if spec.holdout_fraction is not None:
        message.holdout_fraction = spec.holdout_fraction
    if spec.seed is not None:
        message.seed = spec.seed
    if spec.resources is not None:
        message.resources.CopyFrom(training_resources(spec.resources))
    return message


def retrain_spec(model_id: str, spec: inputs.RetrainSpec) -> pb.RetrainSpec:
    """Convert a retrain spec to its message."""
    message = pb.RetrainSpec(
        model_id=model_id,
        parent_version=spec.parent_version,
        hyperparameters=dict_to_struct(spec.hyperparameters),
        allow_many_classes=spec.allow_many_classes,
    )
    if spec.holdout_fraction is not None:
        message.holdout_fraction = spec.holdout_fraction
    if spec.seed is not None:
        message.seed = spec.seed
    if spec.resources is not None:
        message.resources.CopyFrom(training_resources(spec.resources))
    return message


_CURVE_KIND = {pb.CURVE_KIND_ROC: "roc", pb.CURVE_KIND_PRECISION_RECALL: "pr"}


def _evaluation(message: pb.ModelVersion) -> schemas.Evaluation:
    value = message.evaluation
    return schemas.Evaluation(
        confusion_matrix=[list(row.counts) for row in value.confusion_matrix],
        curves=[
            schemas.Curve(
                kind=_CURVE_KIND[c.kind],  # type: ignore[arg-type]
                class_name=c.class_name,
                x=list(c.x),
                y=list(c.y),
                area=c.area,
            )
            for c in value.curves
        ],
    )


def _learning_curve(message: pb.ModelVersion) -> schemas.LearningCurve:
    value = message.learning_curve
    # JSON has no NaN: a value the fit did not report is null.
    return schemas.LearningCurve(
        iterations=list(value.iterations),
        series={
            name: [v if math.isfinite(v) else None for v in series.values]
            for name, series in value.series.items()
        },
    )


def training_resources(resources: inputs.TrainingResources) -> pb.TrainingResources:
    """Convert a job's resource requests, keeping which fields were left out."""
    message = pb.TrainingResources()
    if resources.cpus is not None:
        message.cpus = resources.cpus
    if resources.memory_mb is not None:
        message.memory_mb = resources.memory_mb
    return message
