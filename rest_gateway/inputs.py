"""Request models: training and retrain specs, rows to predict, path and query parameters.

HTTP and wire shape only: the service checks its own rules, which are documented here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query
from mlops import names
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError

from rest_gateway.problems import ProblemError, Violation
from rest_gateway.schemas import FeatureTypeName, Scalar

Row = dict[str, Scalar | None]
Rows = list[Row]
# NaN and infinity are no setting of any kind (and a Struct cannot carry NaN).
Hyperparameters = dict[str, str | int | FiniteFloat | bool]
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
# Fields that travel as JSON text in form fields and query parameters.
JSON_FIELDS = ("hyperparameters", "feature_columns", "feature_types", "resources")
# pydantic reports a value that is none of a scalar union's members once per member, the
# member's name ending the location; a client sees one violation for the value instead.
_SCALAR_MEMBERS = frozenset({"str", "int", "float", "bool"})
_NOT_SCALAR = "must be a string, number or boolean"


#: Documented for clients; the service checks it (see ID_RULE below).
HOLDOUT_RULE: dict[str, Any] = {"minimum": 0, "exclusiveMaximum": 0.9}


class TrainingResources(BaseModel):
    """What one job reserves where it trains; a field left out takes the service's default."""

    model_config = ConfigDict(extra="forbid")

    # Documented, not enforced: the service checks positivity and its own limits.
    cpus: FiniteFloat | None = Field(
        None,
        description=(
            "CPUs the job reserves and threads it trains with (rounded up); at most the"
            " service's MLOPS_MAX_JOB_CPUS."
        ),
        json_schema_extra={"exclusiveMinimum": 0},
    )
    memory_mb: int | None = Field(
        None,
        ge=0,
        le=UINT64_MAX,
        description=(
            "Memory the job reserves, in MiB; at most MLOPS_MAX_JOB_MEMORY_MB. Only a service"
            " training on Ray reserves memory; one with local workers refuses it."
        ),
        json_schema_extra={"exclusiveMinimum": 0},
    )


class TrainingSpec(BaseModel):
    """What to train: the kind, the label column and optional settings."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, description='Model kind, e.g. "catboost"; see /v1/kinds.')
    target_column: str = Field(min_length=1, description="Column holding the labels.")
    hyperparameters: Hyperparameters = Field(
        default_factory=dict, description="By name; any left out take the kind's defaults."
    )
    name: str = Field(
        "", description="Human-readable model name.", json_schema_extra={"maxLength": 200}
    )
    description: str = Field(
        "", description="Free text about the model.", json_schema_extra={"maxLength": 2000}
    )
    feature_columns: list[str] = Field(
        default_factory=list, description="Feature columns to use; empty means all but the target."
    )
    feature_types: dict[str, FeatureTypeName] = Field(
        default_factory=dict, description="Per-column type overrides; others are inferred."
    )
    holdout_fraction: FiniteFloat | None = Field(
        None,
        description="Share of rows held out for metrics; default 0.2.",
        json_schema_extra=HOLDOUT_RULE,
    )
    seed: int | None = Field(
        None, ge=-INT64_MAX - 1, le=INT64_MAX, description="Seed of the split and the model."
    )
    allow_many_classes: bool = Field(
        False,
        description=(
            "Train even when the target looks continuous or like an identifier (fractional "
            "float labels, over 50 classes, or 10+ classes with under 5 rows per class)."
        ),
    )
    resources: TrainingResources | None = Field(
        None, description="What the job reserves; default: the service's defaults."
    )


class TrainingRequest(TrainingSpec):
    """A training spec with the training rows inline."""

    rows: Rows = Field(min_length=1, description="Training rows, each a column -> value object.")


class RetrainSpec(BaseModel):
    """What a retrain changes; everything left out is the parent version's."""

    model_config = ConfigDict(extra="forbid")

    parent_version: int = Field(0, ge=0, le=2**32 - 1, description="Start from; 0 is latest.")
    hyperparameters: Hyperparameters = Field(
        default_factory=dict, description="Hyperparameters to change."
    )
    holdout_fraction: FiniteFloat | None = Field(
        None, description="Default: parent's.", json_schema_extra=HOLDOUT_RULE
    )
    seed: int | None = Field(
        None, ge=-INT64_MAX - 1, le=INT64_MAX, description="Default: parent's."
    )
    allow_many_classes: bool = Field(
        False, description="As for training; implied when the parent already has such a target."
    )
    resources: TrainingResources | None = Field(
        None, description="As for training; not the parent job's: default the service's."
    )


class RetrainRequest(RetrainSpec):
    """A retrain spec with optional new training rows; without rows the parent's data is used."""

    rows: Rows | None = Field(None, min_length=1, description="New training rows, if any.")


class PredictRequest(BaseModel):
    """Rows to predict: objects keyed by feature column name."""

    model_config = ConfigDict(extra="forbid")

    rows: Rows = Field(min_length=1, description="Feature values by column; extra keys ignored.")


M = TypeVar("M", bound=BaseModel)


def _violations(error: ValidationError, prefix: str) -> list[Violation]:
    found: dict[str, str] = {}
    for e in error.errors(include_url=False):
        loc, description = e["loc"], e["msg"]
        if len(loc) > 1 and loc[-1] in _SCALAR_MEMBERS:
            loc = loc[:-1]
            if e["type"].endswith("_type"):  # not of this member's type at all
                description = _NOT_SCALAR
        field = prefix + (".".join(str(p) for p in loc) or "body")
        # One violation per field; a member that took the type but not the value (NaN for a
        # float) says more than the members that did not take it.
        if found.get(field, _NOT_SCALAR) == _NOT_SCALAR:
            found[field] = description
    return [Violation(field=field, description=text) for field, text in found.items()]


def invalid(error: ValidationError, prefix: str = "") -> ProblemError:
    """Turn a pydantic validation error into a 400 problem with one violation per field."""
    violations = _violations(error, prefix)
    detail = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return ProblemError(
        400, detail, code="INVALID_ARGUMENT", title="Invalid argument", errors=violations
    )


def parse_json(model: type[M], body: bytes) -> M:
    """Validate a JSON body against a model, or raise a 400 problem."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise invalid(error) from None


def parse_fields(model: type[M], fields: Mapping[str, Any]) -> M:
    """Validate form fields or query parameters; the JSON_FIELDS hold JSON text."""
    values: dict[str, Any] = {}
    for key, value in fields.items():
        if key in JSON_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ProblemError.invalid(key, "must be JSON text") from None
            except RecursionError:
                raise ProblemError.invalid(
                    key, "must be JSON text whose arrays or objects nest less deep"
                ) from None
        values[key] = value
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise invalid(error) from None


# The gateway checks only what HTTP and the wire types decide (an integer that fits the
# message's field); the service is the rulebook for ids, lengths, ranges and page sizes, so
# both transports give the same answer in the same words.
UINT32_MAX = 2**32 - 1
# The service's rules still appear in the OpenAPI document (json_schema_extra documents
# without enforcing), so clients see them; only the service enforces them.
ID_RULE = {"pattern": f"^{names.ID_PATTERN}$"}
ModelId = Annotated[
    str, Path(description='The model\'s id, e.g. "m-3f2a9c0d1e4b".', json_schema_extra=ID_RULE)
]
JobId = Annotated[
    str, Path(description='The job\'s id, e.g. "j-5c1e0b9a7d2f".', json_schema_extra=ID_RULE)
]
ModelFilter = Annotated[
    str,
    Query(
        description="Only jobs of this model; empty for all.",
        json_schema_extra={"pattern": f"^$|^{names.ID_PATTERN}$"},
    ),
]
PageSize = Annotated[
    int,
    Query(ge=0, le=UINT32_MAX, description="Most items to return; 0 means 50; at most 1000."),
]
PageToken = Annotated[str, Query(description="`next_page_token` of the previous page.")]
Wait = Annotated[
    bool,
    Query(description="Block until training ends and answer 201 with the new model version."),
]
