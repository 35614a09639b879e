"""A scripted gateway behind httpx.MockTransport, with answers shaped like the real one's."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from ui.client import GatewayClient

URL = "http://gateway.test:8000"
Handler = Callable[[httpx.Request], httpx.Response]

KINDS: dict[str, Any] = {
    "kinds": [
        {
            "name": "catboost",
            "display_name": "CatBoost classifier",
            "description": "Gradient-boosted trees; a missing category becomes '__missing__'.",
            "hyperparameters": [
                {"name": "iterations", "type": "int", "default": 300, "minimum": 1,
                 "maximum": 10000, "description": "Number of trees to build."},
                {"name": "learning_rate", "type": "float", "default": 0.1, "minimum": 0,
                 "maximum": 1, "exclusive_minimum": True, "description": "Step size."},
                {"name": "class_weights", "type": "string", "default": "none",
                 "choices": ["none", "balanced"], "description": "Weigh classes."},
                {"name": "verbose", "type": "bool", "default": False,
                 "description": "Write CatBoost's log."},
            ],
        },
        {
            "name": "logistic_regression",
            "display_name": "Logistic regression",
            "description": "Linear model.",
            "hyperparameters": [
                {"name": "C", "type": "float", "default": 1.0, "minimum": 0,
                 "exclusive_minimum": True, "description": "Inverse regularisation strength."},
            ],
        },
    ]
}  # fmt: skip

MODEL: dict[str, Any] = {
    "model_id": "m-1",
    "name": "penguins",
    "description": "",
    "kind": "catboost",
    "latest_version": 2,
    "version_count": 2,
    "create_time": "2026-01-02T03:04:05Z",
    "update_time": "2026-01-02T03:05:05Z",
}


def version(number: int, accuracy: float = 0.97, **changes: Any) -> dict[str, Any]:
    """A model version of m-1 as the gateway shows it."""
    body: dict[str, Any] = {
        "model_id": "m-1",
        "version": number,
        "kind": "catboost",
        "hyperparameters": {"iterations": 20, "learning_rate": 0.1, "class_weights": "none",
                            "verbose": False},
        "signature": {
            "features": [
                {"name": "island", "feature_type": "categorical", "arrow_type": "string",
                 "categories": ["Biscoe", "Dream"], "null_count": 0},
                {"name": "bill_length_mm", "feature_type": "numeric", "arrow_type": "double",
                 "categories": [], "null_count": 2},
            ],
            "target_column": "species",
            "target_arrow_type": "string",
            "classes": ["Adelie", "Gentoo"],
        },
        "metrics": {"accuracy": accuracy, "balanced_accuracy": 0.96, "f1_macro": 0.95,
                    "roc_auc": 0.99, "log_loss": None},
        "feature_importance": [
            {"feature": "island", "importance": 30.0},
            {"feature": "bill_length_mm", "importance": 70.0},
        ],
        "train_rows": 275,
        "holdout_rows": 69,
        "timings": {"queue_seconds": 0, "prepare_seconds": 0, "fit_seconds": 1,
                    "evaluate_seconds": 0, "save_seconds": 0},
        "library_versions": {"catboost": "1.2.10"},
        "create_time": f"2026-01-02T03:0{number}:05Z",
        "artifact_sha256": "ab" * 32,
        "artifact_size_bytes": 1000,
        "lineage": {"parent_version": number - 1, "dataset_digest": "cd" * 32, "job_id": "j-1"},
    }  # fmt: skip
    body.update(changes)
    return body


# A binary version's evaluation and learning curve, as the gateway serves them.
EVALUATION: dict[str, Any] = {
    "confusion_matrix": [[12, 1], [3, 20]],
    "curves": [
        {"kind": "roc", "class_name": "yes", "x": [0.0, 0.1, 1.0], "y": [0.0, 0.8, 1.0],
         "area": 0.93},
        {"kind": "pr", "class_name": "yes", "x": [0.0, 0.5, 1.0], "y": [1.0, 0.9, 0.4],
         "area": 0.88},
    ],
}  # fmt: skip
LEARNING_CURVE: dict[str, Any] = {
    "iterations": [1, 2, 3],
    "series": {"learn_Logloss": [0.6, 0.5, 0.4], "holdout_Logloss": [0.65, 0.55, 0.5]},
}
PENGUINS = ["Adelie", "Chinstrap", "Gentoo"]
# Three classes, one-vs-rest: a ROC and a PR curve per class.
MULTICLASS_EVALUATION: dict[str, Any] = {
    "confusion_matrix": [[30, 2, 0], [1, 12, 0], [0, 0, 24]],
    "curves": [
        {"kind": kind, "class_name": name, "x": [0.0, 0.2, 1.0], "y": y, "area": area}
        for name, area in zip(PENGUINS, (0.99, 0.97, 1.0), strict=True)
        for kind, y in (("roc", [0.0, 0.9, 1.0]), ("pr", [1.0, 0.95, 0.3]))
    ],
}


def evaluated(number: int, **changes: Any) -> dict[str, Any]:
    """A version of m-1 with a yes/no target, its evaluation and learning curve."""
    body = version(number, evaluation=EVALUATION, learning_curve=LEARNING_CURVE, **changes)
    body["signature"]["classes"] = ["no", "yes"]
    return body


def job(state: str, stage: str = "", fraction: float = 0.0, **changes: Any) -> dict[str, Any]:
    """A training job of m-1 as the gateway shows it."""
    body: dict[str, Any] = {
        "job_id": "j-1",
        "state": state,
        "model_id": "m-1",
        "kind": "catboost",
        "parent_version": 0,
        "hyperparameters": {},
        "target_column": "species",
        "rows": 344,
        "dataset_digest": "cd" * 32,
        "progress": {"stage": stage or state, "fraction": fraction, "iteration": 0,
                     "total_iterations": 0, "metrics": {}},
        "create_time": None,
        "start_time": None,
        "end_time": None,
        "error": None,
        "result": None,
    }  # fmt: skip
    body.update(changes)
    return body


def fitting(iteration: int, total: int, metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """A running job in the middle of fitting, with its losses at this iteration."""
    body = job("running", "fitting", 0.1 + 0.8 * iteration / total)
    body["progress"].update(iteration=iteration, total_iterations=total, metrics=metrics or {})
    return body


def sse(events: Iterable[dict[str, Any]], ping: bool = True) -> httpx.Response:
    """An event stream of jobs, named after their states, with a keep-alive comment."""
    text = ": ping\n\n" if ping else ""
    for body in events:
        text += f"event: {body['state']}\ndata: {json.dumps(body)}\n\n"
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def problem(
    status: int, detail: str, errors: Iterable[tuple[str, str]] = (), title: str = ""
) -> httpx.Response:
    """A problem+json answer."""
    body = {
        "type": "urn:mlops:problem:x",
        "title": title or "Invalid argument",
        "status": status,
        "detail": detail,
        "instance": "/",
        "code": "INVALID_ARGUMENT",
        "errors": [{"field": f, "description": d} for f, d in errors],
    }
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


class FakeGateway:
    """Routes by (method, path) to canned answers; records every request; can go down."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.down = False
        self.routes: dict[tuple[str, str], Handler | dict[str, Any]] = {
            ("GET", "/readyz"): {"status": "ready"},
            ("GET", "/v1/kinds"): KINDS,
            ("GET", "/v1/models"): {"models": [MODEL], "next_page_token": ""},
            ("GET", "/v1/models/m-1"): MODEL,
            ("GET", "/v1/models/m-1/versions"): {
                "versions": [version(2, 0.95), version(1)],
                "next_page_token": "",
            },
            ("GET", "/v1/models/m-1/versions/1"): version(1),
            ("GET", "/v1/models/m-1/versions/2"): version(2, 0.95),
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return problem(404, f"Nothing at {request.url.path}.", title="Not found")
        if isinstance(route, dict):
            return httpx.Response(200, json=route)
        return route(request)

    def last(self, method: str, path: str) -> httpx.Request:
        """The latest request to a route."""
        for request in reversed(self.requests):
            if request.method == method and request.url.path == path:
                return request
        raise AssertionError(f"no {method} {path} in {[r.url.path for r in self.requests]}")

    def client(self) -> GatewayClient:
        """A gateway client whose HTTP goes to this fake."""
        http = httpx.Client(base_url=URL, transport=httpx.MockTransport(self), timeout=5)
        return GatewayClient(http)


def alert(shown: object) -> str:
    """The text of an error area, checked to be an alert; "" when the area is clear."""
    assert isinstance(shown, str), shown
    if not shown:
        return ""
    assert 'role="alert"' in shown, shown
    return html.unescape(re.sub(r"<[^>]+>", "", shown))
