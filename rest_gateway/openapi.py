"""OpenAPI for bodies FastAPI cannot describe by itself: one operation, several media types."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from rest_gateway import examples, inputs, tabular
from rest_gateway.problems import PROBLEM_JSON, Problem

REF = "#/components/schemas/{model}"
# Models referenced from hand-written request bodies and problem responses.
EXTRA_MODELS: tuple[type[BaseModel], ...] = (
    Problem,
    inputs.TrainingRequest,
    inputs.RetrainRequest,
    inputs.PredictRequest,
)
_TITLES = {
    400: "Invalid request: see `errors` for the fields.",
    401: "The service wants a bearer token: send `Authorization: Bearer <token>`.",
    404: "No such kind, model, version or job.",
    406: "None of the accepted media types can be produced.",
    409: "The request conflicts with the current state.",
    413: "The body or the data is over a configured limit.",
    415: "The Content-Type is not accepted here.",
    429: "The service is busy (e.g. the training queue is full); retry later.",
    500: "Internal error.",
    503: "The gRPC service is unavailable.",
    504: "The gRPC service did not answer in time.",
    507: "The service has no storage space left for the upload or the trained model.",
}
COMMON = (400, 401, 500, 503, 504)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document problem responses for the given statuses plus the common ones."""
    ref = {"schema": {"$ref": REF.format(model="Problem")}}
    return {
        status: {"description": _TITLES[status], "content": {PROBLEM_JSON: ref}}
        for status in sorted({*statuses, *COMMON})
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _text_fields(model: type[BaseModel]) -> tuple[dict[str, Any], list[str]]:
    """Schema of a model's fields as form fields or query parameters: JSON fields are text."""
    schema = model.model_json_schema(ref_template=REF)
    properties: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        options = [p for p in prop.pop("anyOf", []) if p.get("type") != "null"]
        if options:
            prop.update(options[0])
        if prop.get("default") is None:
            prop.pop("default", None)
        if name in inputs.JSON_FIELDS:
            kind = "array" if prop.get("type") == "array" else "object"
            prop = {
                "type": "string",
                "contentMediaType": "application/json",
                "description": f"{prop.get('description', '')} JSON {kind} as text.",
            }
        properties[name] = prop
    return properties, list(schema.get("required", []))


def query_spec(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The spec as query parameters, for bodies that carry only data (CSV or Arrow)."""
    properties, required = _text_fields(model)
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": (
                f"{prop.pop('description', '')} Only with a text/csv or Arrow body"
                + (" (required then)." if name in required else ".")
            ),
            "schema": prop,
        }
        for name, prop in properties.items()
    ]


def _multipart(model: type[BaseModel], file_required: bool, file_doc: str) -> dict[str, Any]:
    properties, required = _text_fields(model)
    properties["file"] = {"type": "string", "format": "binary", "description": file_doc}
    return {
        "type": "object",
        "properties": properties,
        "required": [*required, "file"] if file_required else required,
        "additionalProperties": False,
    }


def _raw_bodies(csv_example: str) -> dict[str, Any]:
    return {
        tabular.ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}, "example": csv_example},
    }


def training_body(
    spec: type[BaseModel], json_model: type[BaseModel], required: bool, example: dict[str, Any]
) -> Any:
    """The openapi_extra of a training upload: JSON, multipart CSV, raw CSV or Arrow."""
    file_doc = "Training data as CSV with a header row; empty fields are missing values."
    return {
        "parameters": query_spec(spec),
        "requestBody": {
            "required": required,
            "content": {
                # A media type example keeps the column order; schema examples get sorted.
                "application/json": {"schema": _ref(json_model), "example": example},
                "multipart/form-data": {"schema": _multipart(spec, required, file_doc)},
                **_raw_bodies(examples.TRAINING_CSV),
            },
        },
    }


def predict_body() -> Any:
    """The openapi_extra of a prediction: JSON rows, multipart CSV, raw CSV or Arrow."""
    multipart = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary", "description": "CSV."}},
        "required": ["file"],
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref(inputs.PredictRequest),
                    "example": examples.PREDICT_REQUEST,
                },
                "multipart/form-data": {"schema": multipart},
                **_raw_bodies(examples.PREDICT_CSV),
            },
        }
    }


PREDICT_OUTPUTS = {
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        tabular.ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
    }
}


def install(app: FastAPI) -> None:
    """Make app.openapi() add the extra models and document 400 problems instead of 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        _, extra = models_json_schema([(m, "validation") for m in EXTRA_MODELS], ref_template=REF)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(extra.get("$defs", {}))
        # Validation errors are answered as 400 problems, never as FastAPI's 422.
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
