import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_TYPE_UNSPECIFIED: _ClassVar[FeatureType]
    FEATURE_TYPE_NUMERIC: _ClassVar[FeatureType]
    FEATURE_TYPE_CATEGORICAL: _ClassVar[FeatureType]

class HyperparameterType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HYPERPARAMETER_TYPE_UNSPECIFIED: _ClassVar[HyperparameterType]
    HYPERPARAMETER_TYPE_INT: _ClassVar[HyperparameterType]
    HYPERPARAMETER_TYPE_FLOAT: _ClassVar[HyperparameterType]
    HYPERPARAMETER_TYPE_STRING: _ClassVar[HyperparameterType]
    HYPERPARAMETER_TYPE_BOOL: _ClassVar[HyperparameterType]

class CurveKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CURVE_KIND_UNSPECIFIED: _ClassVar[CurveKind]
    CURVE_KIND_ROC: _ClassVar[CurveKind]
    CURVE_KIND_PRECISION_RECALL: _ClassVar[CurveKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
FEATURE_TYPE_UNSPECIFIED: FeatureType
FEATURE_TYPE_NUMERIC: FeatureType
FEATURE_TYPE_CATEGORICAL: FeatureType
HYPERPARAMETER_TYPE_UNSPECIFIED: HyperparameterType
HYPERPARAMETER_TYPE_INT: HyperparameterType
HYPERPARAMETER_TYPE_FLOAT: HyperparameterType
HYPERPARAMETER_TYPE_STRING: HyperparameterType
HYPERPARAMETER_TYPE_BOOL: HyperparameterType
CURVE_KIND_UNSPECIFIED: CurveKind
CURVE_KIND_ROC: CurveKind
CURVE_KIND_PRECISION_RECALL: CurveKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class HyperparameterSpec(_message.Message):
    __slots__ = ("name", "type", "default_value", "minimum", "maximum", "exclusive_minimum", "exclusive_maximum", "choices", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: HyperparameterType
    default_value: _struct_pb2.Value
    minimum: float
    maximum: float
    exclusive_minimum: bool
    exclusive_maximum: bool
    choices: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[HyperparameterType, str]] = ..., default_value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., exclusive_minimum: _Optional[bool] = ..., exclusive_maximum: _Optional[bool] = ..., choices: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class ModelKind(_message.Message):
    __slots__ = ("name", "display_name", "description", "hyperparameters")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    hyperparameters: _containers.RepeatedCompositeFieldContainer[HyperparameterSpec]
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., hyperparameters: _Optional[_Iterable[_Union[HyperparameterSpec, _Mapping]]] = ...) -> None: ...

class FeatureColumn(_message.Message):
    __slots__ = ("name", "feature_type", "arrow_type", "categories", "null_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ARROW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    NULL_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    feature_type: FeatureType
    arrow_type: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    null_count: int
    def __init__(self, name: _Optional[str] = ..., feature_type: _Optional[_Union[FeatureType, str]] = ..., arrow_type: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., null_count: _Optional[int] = ...) -> None: ...

class TrainingSignature(_message.Message):
    __slots__ = ("features", "target_column", "target_arrow_type", "classes")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TARGET_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TARGET_ARROW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[FeatureColumn]
    target_column: str
    target_arrow_type: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, features: _Optional[_Iterable[_Union[FeatureColumn, _Mapping]]] = ..., target_column: _Optional[str] = ..., target_arrow_type: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    BALANCED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    F1_MACRO_FIELD_NUMBER: _ClassVar[int]
    ROC_AUC_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_FIELD_NUMBER: _ClassVar[int]
    accuracy: float
    balanced_accuracy: float
    f1_macro: float
    roc_auc: float
    log_loss: float
    def __init__(self, accuracy: _Optional[float] = ..., balanced_accuracy: _Optional[float] = ..., f1_macro: _Optional[float] = ..., roc_auc: _Optional[float] = ..., log_loss: _Optional[float] = ...) -> None: ...

class FeatureImportance(_message.Message):
    __slots__ = ("feature", "importance")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    feature: str
    importance: float
    def __init__(self, feature: _Optional[str] = ..., importance: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_seconds", "prepare_seconds", "fit_seconds", "evaluate_seconds", "save_seconds")
    QUEUE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREPARE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAVE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    queue_seconds: float
    prepare_seconds: float
    fit_seconds: float
    evaluate_seconds: float
    save_seconds: float
    def __init__(self, queue_seconds: _Optional[float] = ..., prepare_seconds: _Optional[float] = ..., fit_seconds: _Optional[float] = ..., evaluate_seconds: _Optional[float] = ..., save_seconds: _Optional[float] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("parent_version", "dataset_digest", "job_id")
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    parent_version: int
    dataset_digest: str
    job_id: str
    def __init__(self, parent_version: _Optional[int] = ..., dataset_digest: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("model_id", "name", "description", "kind", "latest_version", "version_count", "create_time", "update_time")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    name: str
    description: str
    kind: str
    latest_version: int
    version_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, model_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., kind: _Optional[str] = ..., latest_version: _Optional[int] = ..., version_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("model_id", "version", "kind", "hyperparameters", "signature", "metrics", "feature_importance", "train_rows", "holdout_rows", "timings", "library_versions", "create_time", "artifact_sha256", "artifact_size_bytes", "lineage", "notes", "evaluation", "learning_curve")
    class LibraryVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_ROWS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    LEARNING_CURVE_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    kind: str
    hyperparameters: _struct_pb2.Struct
    signature: TrainingSignature
    metrics: Metrics
    feature_importance: _containers.RepeatedCompositeFieldContainer[FeatureImportance]
    train_rows: int
    holdout_rows: int
    timings: Timings
    library_versions: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    artifact_sha256: str
    artifact_size_bytes: int
    lineage: Lineage
    notes: _containers.RepeatedScalarFieldContainer[str]
    evaluation: Evaluation
    learning_curve: LearningCurve
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[str] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., signature: _Optional[_Union[TrainingSignature, _Mapping]] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., feature_importance: _Optional[_Iterable[_Union[FeatureImportance, _Mapping]]] = ..., train_rows: _Optional[int] = ..., holdout_rows: _Optional[int] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., library_versions: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., artifact_sha256: _Optional[str] = ..., artifact_size_bytes: _Optional[int] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., notes: _Optional[_Iterable[str]] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ..., learning_curve: _Optional[_Union[LearningCurve, _Mapping]] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("confusion_matrix", "curves")
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    CURVES_FIELD_NUMBER: _ClassVar[int]
    confusion_matrix: _containers.RepeatedCompositeFieldContainer[ConfusionRow]
    curves: _containers.RepeatedCompositeFieldContainer[Curve]
    def __init__(self, confusion_matrix: _Optional[_Iterable[_Union[ConfusionRow, _Mapping]]] = ..., curves: _Optional[_Iterable[_Union[Curve, _Mapping]]] = ...) -> None: ...

class ConfusionRow(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Curve(_message.Message):
    __slots__ = ("kind", "class_name", "x", "y", "area")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    kind: CurveKind
    class_name: str
    x: _containers.RepeatedScalarFieldContainer[float]
    y: _containers.RepeatedScalarFieldContainer[float]
    area: float
    def __init__(self, kind: _Optional[_Union[CurveKind, str]] = ..., class_name: _Optional[str] = ..., x: _Optional[_Iterable[float]] = ..., y: _Optional[_Iterable[float]] = ..., area: _Optional[float] = ...) -> None: ...

class LearningCurve(_message.Message):
    __slots__ = ("iterations", "series")
    class SeriesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricSeries
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricSeries, _Mapping]] = ...) -> None: ...
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    iterations: _containers.RepeatedScalarFieldContainer[int]
    series: _containers.MessageMap[str, MetricSeries]
    def __init__(self, iterations: _Optional[_Iterable[int]] = ..., series: _Optional[_Mapping[str, MetricSeries]] = ...) -> None: ...

class MetricSeries(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class TrainingProgress(_message.Message):
    __slots__ = ("stage", "fraction", "iteration", "total_iterations", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    fraction: float
    iteration: int
    total_iterations: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, stage: _Optional[str] = ..., fraction: _Optional[float] = ..., iteration: _Optional[int] = ..., total_iterations: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TrainingJobSpec(_message.Message):
    __slots__ = ("kind", "target_column", "hyperparameters", "name", "description", "feature_columns", "feature_types", "holdout_fraction", "seed", "allow_many_classes", "resources")
    class FeatureTypesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FeatureType
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FeatureType, str]] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_COLUMN_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FEATURE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_TYPES_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MANY_CLASSES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    target_column: str
    hyperparameters: _struct_pb2.Struct
    name: str
    description: str
    feature_columns: _containers.RepeatedScalarFieldContainer[str]
    feature_types: _containers.ScalarMap[str, FeatureType]
    holdout_fraction: float
    seed: int
    allow_many_classes: bool
    resources: TrainingResources
    def __init__(self, kind: _Optional[str] = ..., target_column: _Optional[str] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., feature_columns: _Optional[_Iterable[str]] = ..., feature_types: _Optional[_Mapping[str, FeatureType]] = ..., holdout_fraction: _Optional[float] = ..., seed: _Optional[int] = ..., allow_many_classes: _Optional[bool] = ..., resources: _Optional[_Union[TrainingResources, _Mapping]] = ...) -> None: ...

class TrainingResources(_message.Message):
    __slots__ = ("cpus", "memory_mb")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory_mb: int
    def __init__(self, cpus: _Optional[float] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class RetrainSpec(_message.Message):
    __slots__ = ("model_id", "parent_version", "hyperparameters", "holdout_fraction", "seed", "allow_many_classes", "resources")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    HOLDOUT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MANY_CLASSES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    parent_version: int
    hyperparameters: _struct_pb2.Struct
    holdout_fraction: float
    seed: int
    allow_many_classes: bool
    resources: TrainingResources
    def __init__(self, model_id: _Optional[str] = ..., parent_version: _Optional[int] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., holdout_fraction: _Optional[float] = ..., seed: _Optional[int] = ..., allow_many_classes: _Optional[bool] = ..., resources: _Optional[_Union[TrainingResources, _Mapping]] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("job_id", "state", "model_id", "kind", "parent_version", "hyperparameters", "target_column", "rows", "dataset_digest", "progress", "create_time", "start_time", "end_time", "error", "result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TARGET_COLUMN_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DATASET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    model_id: str
    kind: str
    parent_version: int
    hyperparameters: _struct_pb2.Struct
    target_column: str
    rows: int
    dataset_digest: str
    progress: TrainingProgress
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    error: JobError
    result: ModelVersion
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., model_id: _Optional[str] = ..., kind: _Optional[str] = ..., parent_version: _Optional[int] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., target_column: _Optional[str] = ..., rows: _Optional[int] = ..., dataset_digest: _Optional[str] = ..., progress: _Optional[_Union[TrainingProgress, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., result: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...
