"""The parts of the gateway's JSON the UI reads; unknown fields are ignored, so it can grow."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

Scalar = str | int | float | bool
FINAL_STATES = ("succeeded", "failed", "cancelled")
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "f1_macro": "F1 (macro)",
    "roc_auc": "ROC AUC",
    "log_loss": "Log loss",
}


class HyperparameterSpec(BaseModel):
    """One tunable setting of a model kind."""

    name: str
    type: Literal["int", "float", "string", "bool"]
    default: JsonValue = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: list[str] = Field(default_factory=list)
    description: str = ""


class ModelKind(BaseModel):
    """A kind of model the service can train."""

    name: str
    display_name: str
    description: str = ""
    hyperparameters: list[HyperparameterSpec] = Field(default_factory=list)


class FeatureColumn(BaseModel):
    """One feature column as a version saw it in training."""

    name: str
    feature_type: str | None = None
    arrow_type: str = ""
    categories: list[str] = Field(default_factory=list)
    null_count: int = 0


class Signature(BaseModel):
    """What a version takes in and gives out."""

    features: list[FeatureColumn] = Field(default_factory=list)
    target_column: str = ""
    classes: list[str] = Field(default_factory=list)


class Metrics(BaseModel):
    """Holdout metrics; None where undefined."""

    accuracy: float | None = None
    balanced_accuracy: float | None = None
    f1_macro: float | None = None
    roc_auc: float | None = None
    log_loss: float | None = None


class FeatureImportance(BaseModel):
    """One feature's share of the importance, in percent."""

    feature: str
    importance: float


class Curve(BaseModel):
    """One ROC or precision-recall curve of one class, on the holdout.

    ROC: x is the false-positive rate, y the true-positive rate, area the ROC AUC.
    PR: x is the recall, y the precision, area the average precision.
    """

    kind: str
    class_name: str = ""
    x: list[float] = Field(default_factory=list)
    y: list[float] = Field(default_factory=list)
    area: float | None = None


class Evaluation(BaseModel):
    """What the holdout says beyond the metrics: a confusion matrix and curves per class."""

    confusion_matrix: list[list[int]] = Field(default_factory=list)
    curves: list[Curve] = Field(default_factory=list)


class LearningCurve(BaseModel):
    """Losses by iteration; each series is aligned with `iterations`."""

    iterations: list[int] = Field(default_factory=list)
    series: dict[str, list[float | None]] = Field(default_factory=dict)


class Lineage(BaseModel):
    """Where a version came from."""

    parent_version: int = 0
    dataset_digest: str = ""
    job_id: str = ""


class Model(BaseModel):
    """A model: a stable identity over versions."""

    model_id: str
    name: str = ""
    description: str = ""
    kind: str
    latest_version: int
    version_count: int
    create_time: datetime | None = None
    update_time: datetime | None = None


class ModelVersion(BaseModel):
    """One immutable trained version."""

    model_id: str
    version: int
    kind: str
    hyperparameters: dict[str, JsonValue] = Field(default_factory=dict)
    signature: Signature
    metrics: Metrics | None = None
    feature_importance: list[FeatureImportance] = Field(default_factory=list)
    train_rows: int = 0
    holdout_rows: int = 0
    create_time: datetime | None = None
    lineage: Lineage = Field(default_factory=Lineage)
    notes: list[str] = Field(default_factory=list)
    # None from a gateway older than these members, or (evaluation) with no holdout.
    evaluation: Evaluation | None = None
    learning_curve: LearningCurve | None = None


class Progress(BaseModel):
    """How far a job has got."""

    stage: str = ""
    fraction: float = 0.0
    iteration: int = 0
    total_iterations: int = 0
    metrics: dict[str, float | None] = Field(default_factory=dict)


class JobError(BaseModel):
    """Why a job failed."""

    code: str = ""
    message: str = ""


class Job(BaseModel):
    """A training run."""

    job_id: str
    state: str
    model_id: str = ""
    kind: str = ""
    parent_version: int = 0
    target_column: str = ""
    rows: int = 0
    progress: Progress = Field(default_factory=Progress)
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: JobError | None = None
    result: ModelVersion | None = None

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state."""
        return self.state in FINAL_STATES


class Prediction(BaseModel):
    """The prediction for one row."""

    label: Scalar | None = None
    probabilities: dict[str, float | None] = Field(default_factory=dict)


class PredictResponse(BaseModel):
    """Predictions for every row, in order."""

    model_id: str
    version: int
    predictions: list[Prediction]


class Violation(BaseModel):
    """One problem with one field of a request."""

    field: str = ""
    description: str = ""


class Problem(BaseModel):
    """An RFC 9457 problem details body."""

    status: int = 0
    title: str = ""
    detail: str = ""
    code: str = ""
    errors: list[Violation] = Field(default_factory=list)
    #: The gateway's id of the request, to quote when reporting the error.
    request_id: str = ""
