"""Every mapping between protobuf messages and domain records."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from mlops.v1 import types_pb2 as pb

from ml_service.domain import (
    Evaluation,
    FeatureKind,
    JobState,
    LearningCurve,
    ModelRecord,
    VersionRecord,
)
from ml_service.errors import InvalidArgument
from ml_service.kinds.base import HyperparameterSpec, Kind
from ml_service.live_jobs import JobView
from ml_service.training_requests import ResourceRequest, RetrainRequest, TrainRequest

FEATURE_TYPE_TO_PB = {
    FeatureKind.NUMERIC: pb.FEATURE_TYPE_NUMERIC,
    FeatureKind.CATEGORICAL: pb.FEATURE_TYPE_CATEGORICAL,
}
FEATURE_TYPE_FROM_PB: dict[int, FeatureKind] = {v: k for k, v in FEATURE_TYPE_TO_PB.items()}
JOB_STATE_TO_PB = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
HP_TYPE_TO_PB = {
    "int": pb.HYPERPARAMETER_TYPE_INT,
    "float": pb.HYPERPARAMETER_TYPE_FLOAT,
    "string": pb.HYPERPARAMETER_TYPE_STRING,
    "bool": pb.HYPERPARAMETER_TYPE_BOOL,
}


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """Convert an aware datetime to a Timestamp; None stays absent."""
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def struct_to_dict(value: struct_pb2.Struct, field: str = "hyperparameters") -> dict[str, Any]:
    """Convert a Struct to plain Python values; NaN and infinity are refused by name."""
    try:
        return json_format.MessageToDict(value)
    except ValueError as exc:
        raise InvalidArgument.field(
            field, "values must be finite numbers, text, booleans or null"
        ) from exc


def dict_to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    """Convert plain values to a Struct."""
    out = struct_pb2.Struct()
    out.update(dict(value))
    return out


def feature_types_from_pb(
    value: Mapping[str, int], field: str = "feature_types"
) -> dict[str, FeatureKind]:
    """Convert the per-column overrides, refusing unspecified values by name."""
    out = {}
    for column, kind in value.items():
        if kind not in FEATURE_TYPE_FROM_PB:
            raise InvalidArgument.field(
                f"{field}.{column}", "must be FEATURE_TYPE_NUMERIC or FEATURE_TYPE_CATEGORICAL"
            )
        out[column] = FEATURE_TYPE_FROM_PB[kind]
    return out


def train_request(spec: pb.TrainingJobSpec) -> TrainRequest:
    """Convert the first message of CreateTrainingJob."""
    return TrainRequest(
        kind=spec.kind,
        target_column=spec.target_column,
        hyperparameters=struct_to_dict(spec.hyperparameters),
        name=spec.name,
        description=spec.description,
        feature_columns=tuple(spec.feature_columns),
        feature_types=feature_types_from_pb(spec.feature_types),
        holdout_fraction=spec.holdout_fraction if spec.HasField("holdout_fraction") else None,
        seed=spec.seed if spec.HasField("seed") else None,
        allow_many_classes=spec.allow_many_classes,
        resources=resource_request(spec.resources),
    )


def resource_request(message: pb.TrainingResources) -> ResourceRequest:
    """Convert a job's resource requests; a field left out takes the service's default."""
    return ResourceRequest(
        cpus=message.cpus if message.HasField("cpus") else None,
        memory_mb=message.memory_mb if message.HasField("memory_mb") else None,
    )


def retrain_request(spec: pb.RetrainSpec) -> RetrainRequest:
    """Convert the first message of RetrainModel."""
    return RetrainRequest(
        model_id=spec.model_id,
        parent_version=spec.parent_version,
        hyperparameters=struct_to_dict(spec.hyperparameters),
        holdout_fraction=spec.holdout_fraction if spec.HasField("holdout_fraction") else None,
        seed=spec.seed if spec.HasField("seed") else None,
        allow_many_classes=spec.allow_many_classes,
        resources=resource_request(spec.resources),
    )


def hyperparameter_spec(spec: HyperparameterSpec) -> pb.HyperparameterSpec:
    """Convert one hyperparameter's description."""
    default = dict_to_struct({"value": spec.default}).fields["value"]
    out = pb.HyperparameterSpec(
        name=spec.name,
        type=HP_TYPE_TO_PB[spec.type],
        default_value=default,
        exclusive_minimum=spec.exclusive_minimum,
        exclusive_maximum=spec.exclusive_maximum,
        choices=list(spec.choices),
        description=spec.description,
    )
    if spec.minimum is not None:
        out.minimum = spec.minimum
    if spec.maximum is not None:
        out.maximum = spec.maximum
    return out


def model_kind(kind: Kind) -> pb.ModelKind:
    """Convert a model kind with its hyperparameters."""
    return pb.ModelKind(
        name=kind.name,
        display_name=kind.display_name,
        description=kind.description,
        hyperparameters=[hyperparameter_spec(s) for s in kind.hyperparameters],
    )


def model(record: ModelRecord) -> pb.Model:
    """Convert a model record."""
    return pb.Model(
        model_id=record.model_id,
        name=record.name,
        description=record.description,
        kind=record.kind,
        latest_version=record.latest_version,
        version_count=record.version_count,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )


CURVE_KIND_TO_PB = {"roc": pb.CURVE_KIND_ROC, "pr": pb.CURVE_KIND_PRECISION_RECALL}


def evaluation(value: Evaluation | None) -> pb.Evaluation | None:
    """Convert a holdout evaluation, None staying unset."""
    if value is None:
        return None
    return pb.Evaluation(
        confusion_matrix=[pb.ConfusionRow(counts=list(row)) for row in value.confusion_matrix],
        curves=[
            pb.Curve(
                kind=CURVE_KIND_TO_PB[c.kind],
                class_name=c.class_name,
                x=list(c.x),
                y=list(c.y),
                area=c.area,
            )
            for c in value.curves
        ],
    )


def learning_curve(value: LearningCurve | None) -> pb.LearningCurve | None:
    """Convert losses by iteration, None staying unset."""
    if value is None:
        return None
    return pb.LearningCurve(
        iterations=list(value.iterations),
        series={name: pb.MetricSeries(values=list(v)) for name, v in value.series.items()},
    )


def model_version(record: VersionRecord) -> pb.ModelVersion:
    """Convert a version record with its signature, metrics and lineage."""
    trained = record.training
    sig = trained.signature
    out = pb.ModelVersion(
        model_id=record.model_id,
        version=record.version,
        kind=record.kind,
        hyperparameters=dict_to_struct(record.hyperparameters),
        signature=pb.TrainingSignature(
            features=[
                pb.FeatureColumn(
                    name=c.name,
                    feature_type=FEATURE_TYPE_TO_PB[c.kind],
                    arrow_type=c.arrow_type,
                    categories=list(c.categories),
                    null_count=c.null_count,
                )
                for c in sig.features
            ],
            target_column=sig.target_column,
            target_arrow_type=sig.target_arrow_type,
            classes=list(sig.classes),
        ),
        feature_importance=[
            pb.FeatureImportance(feature=name, importance=value)
            for name, value in trained.feature_importance
        ],
        train_rows=trained.train_rows,
        holdout_rows=trained.holdout_rows,
        timings=pb.Timings(
            queue_seconds=trained.timings.queue_seconds,
            prepare_seconds=trained.timings.prepare_seconds,
            fit_seconds=trained.timings.fit_seconds,
            evaluate_seconds=trained.timings.evaluate_seconds,
            save_seconds=trained.timings.save_seconds,
        ),
        library_versions=trained.library_versions,
        notes=list(trained.notes),
        evaluation=evaluation(trained.evaluation),
        learning_curve=learning_curve(trained.learning_curve),
        create_time=timestamp(record.created_at),
        artifact_sha256=trained.artifact_sha256,
        artifact_size_bytes=trained.artifact_size,
        lineage=pb.Lineage(
            parent_version=record.parent_version,
            dataset_digest=record.dataset_digest,
            job_id=record.job_id,
        ),
    )
    if trained.metrics is not None:
        m = trained.metrics
        out.metrics.CopyFrom(
            pb.Metrics(
                accuracy=m.accuracy,
                balanced_accuracy=m.balanced_accuracy,
                f1_macro=m.f1_macro,
                roc_auc=m.roc_auc,
                log_loss=m.log_loss,
            )
        )
    return out


def training_job(view: JobView, *, with_result: bool = True) -> pb.TrainingJob:
    """Convert a job snapshot, with the version it made when it has one and with_result."""
    record, progress = view.record, view.progress
    out = pb.TrainingJob(
        job_id=record.job_id,
        state=JOB_STATE_TO_PB[record.state],
        model_id=record.model_id,
        kind=record.kind,
        parent_version=record.parent_version,
        hyperparameters=dict_to_struct(record.requested_hyperparameters),
        target_column=record.target_column,
        rows=record.rows,
        dataset_digest=record.dataset_digest,
        progress=pb.TrainingProgress(
            stage=progress.stage,
            fraction=progress.fraction,
            iteration=progress.iteration,
            total_iterations=progress.total_iterations,
            metrics={k: v for k, v in progress.metrics.items() if math.isfinite(v)},
        ),
        create_time=timestamp(record.created_at),
        start_time=timestamp(record.started_at),
        end_time=timestamp(record.ended_at),
    )
    if record.error is not None:
        out.error.CopyFrom(pb.JobError(code=record.error.code, message=record.error.message))
    if with_result and view.result is not None:
        out.result.CopyFrom(model_version(view.result))
    return out
