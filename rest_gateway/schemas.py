"""Response bodies: models, versions, jobs, kinds and predictions as the REST API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

FeatureTypeName = Literal["numeric", "categorical"]
HyperparameterTypeName = Literal["int", "float", "string", "bool"]
JobStateName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Scalar = str | int | float | bool


class HyperparameterSpec(BaseModel):
    """One tunable setting of a model kind, with the values it accepts."""

    name: str = Field(description="Key in a request's `hyperparameters`.")
    type: HyperparameterTypeName = Field(description="The value type.")
    default: JsonValue = Field(description="Value used when a request leaves it out.")
    minimum: float | None = Field(None, description="Smallest accepted value, if bounded.")
    maximum: float | None = Field(None, description="Largest accepted value, if bounded.")
    exclusive_minimum: bool = Field(False, description="True when `minimum` is not accepted.")
    exclusive_maximum: bool = Field(False, description="True when `maximum` is not accepted.")
    choices: list[str] = Field(default_factory=list, description="Accepted strings, if any.")
    description: str = Field("", description="What the hyperparameter does.")


class ModelKind(BaseModel):
    """A kind of model the service can train."""

    name: str = Field(description='Identifier used in requests, e.g. "catboost".')
    display_name: str = Field(description="Human-readable name.")
    description: str = Field(description="What the kind is and how it preprocesses columns.")
    hyperparameters: list[HyperparameterSpec]


class KindList(BaseModel):
    """Every kind the service can train."""

    kinds: list[ModelKind]


class FeatureColumn(BaseModel):
    """One feature column as a model version saw it in training."""

    name: str
    feature_type: FeatureTypeName | None = Field(description="How the model treated it.")
    arrow_type: str = Field(description='Arrow type in the training data, e.g. "int64".')
    categories: list[str] = Field(description="Categories seen in training (categorical only).")
    null_count: int = Field(description="Training rows where the column was missing.")


class Signature(BaseModel):
    """What a model version takes in and gives out."""

    features: list[FeatureColumn]
    target_column: str
    target_arrow_type: str
    classes: list[str] = Field(description="Target classes, sorted, as text.")


class Metrics(BaseModel):
    """Holdout classification metrics; null where undefined (e.g. a class missing)."""

    accuracy: float | None
    balanced_accuracy: float | None
    f1_macro: float | None
    roc_auc: float | None
    log_loss: float | None


class FeatureImportance(BaseModel):
    """How much one feature contributes; the scores of a version sum to 100."""

    feature: str
    importance: float


class Timings(BaseModel):
    """Wall-clock seconds of the training stages."""

    queue_seconds: float
    prepare_seconds: float
    fit_seconds: float
    evaluate_seconds: float
    save_seconds: float


class Lineage(BaseModel):
    """Where a model version came from."""

    parent_version: int = Field(description="Version retrained from; 0 for a first version.")
    dataset_digest: str = Field(description="sha256 of the Parquet training data.")
    job_id: str = Field(description="Training job that produced the version.")


class Model(BaseModel):
    """A trained model: a stable identity over immutable versions."""

    model_id: str
    name: str
    description: str
    kind: str
    latest_version: int
    version_count: int
    create_time: datetime | None
    update_time: datetime | None


class Curve(BaseModel):
    """A curve of one class against the rest, on the holdout."""

    kind: Literal["roc", "pr"] = Field(
        description="roc: x false-positive rate, y true-positive rate; pr: x recall, y precision."
    )
    class_name: str = Field(description="The class treated as positive.")
    x: list[float]
    y: list[float]
    area: float = Field(description="ROC AUC, or average precision for pr.")


class Evaluation(BaseModel):
    """How the version did on its holdout rows."""

    confusion_matrix: list[list[int]] = Field(
        description="Rows: true class; columns: predicted class; both in signature order."
    )
    curves: list[Curve] = Field(
        description="Binary: the positive class's ROC and PR; multiclass: both per class."
    )


class LearningCurve(BaseModel):
    """Losses by iteration as the fit reported them."""

    iterations: list[int]
    series: dict[str, list[float | None]] = Field(
        description="Metric name to one value per iteration (null where not reported)."
    )


class ModelVersion(BaseModel):
    """One immutable trained version of a model."""

    model_id: str
    version: int
    kind: str
    hyperparameters: dict[str, JsonValue] = Field(description="As used, defaults included.")
    signature: Signature
    metrics: Metrics | None = Field(description="Absent when trained without a holdout.")
    feature_importance: list[FeatureImportance]
    train_rows: int
    holdout_rows: int
    timings: Timings
    library_versions: dict[str, str]
    create_time: datetime | None
    artifact_sha256: str
    artifact_size_bytes: int
    lineage: Lineage
    notes: list[str] = Field(
        default_factory=list,
        description="Things to know about the fit, e.g. that the solver did not converge.",
    )
    evaluation: Evaluation | None = Field(
        None, description="Confusion matrix and curves on the holdout; null without one."
    )
    learning_curve: LearningCurve | None = Field(
        None, description="Losses by iteration; null for versions trained before it was kept."
    )


class ModelList(BaseModel):
    """One page of models, newest first."""

    models: list[Model]
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty last.")


class VersionList(BaseModel):
    """One page of versions, newest first."""

    versions: list[ModelVersion]
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty last.")


class DeletedModel(BaseModel):
    """What a model deletion removed."""

    deleted_versions: int


class DeletedVersion(BaseModel):
    """What a version deletion removed."""

    model_deleted: bool = Field(description="True when it was the last version.")


class Progress(BaseModel):
    """How far a training job has got."""

    stage: str = Field(description="queued, preparing, fitting, evaluating, saving or done.")
    fraction: float = Field(description="Overall completion in [0, 1].")
    iteration: int
    total_iterations: int
    metrics: dict[str, float | None] = Field(description="Latest loss values by name.")


class JobError(BaseModel):
    """Why a job failed."""

    code: str = Field(description='gRPC status code name, e.g. "INVALID_ARGUMENT".')
    message: str


class Job(BaseModel):
    """A training run: a state, progress and, on success, the new model version."""

    job_id: str
    state: JobStateName
    model_id: str = Field(description="For a new model it exists once the job succeeds.")
    kind: str
    parent_version: int
    hyperparameters: dict[str, JsonValue] = Field(description="As requested, before defaults.")
    target_column: str
    rows: int
    dataset_digest: str
    progress: Progress
    create_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    error: JobError | None
    result: ModelVersion | None


class JobList(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[Job]
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty last.")


class Prediction(BaseModel):
    """The prediction for one input row."""

    label: Scalar | None = Field(description="Predicted class, in the target's type.")
    probabilities: dict[str, float | None] = Field(description="Probability of each class.")


class PredictResponse(BaseModel):
    """Predictions for every input row, in order."""

    model_id: str
    version: int = Field(description="The version that answered.")
    predictions: list[Prediction]


class Liveness(BaseModel):
    """The gateway process is up."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """The gRPC service's readiness as seen through the gateway."""

    status: Literal["ready"] = "ready"
