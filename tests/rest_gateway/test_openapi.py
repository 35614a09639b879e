"""The OpenAPI schema: schemathesis with every check on the live ASGI app; runnable examples."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import schemathesis
import schemathesis.engine
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.engine import Status, events

from rest_gateway.app import create_app
from tests.conftest import ServiceThread
from tests.rest_gateway.conftest import gateway_settings

# Upload bodies (CSV, Arrow, rows) are valid or not by their content, which JSON Schema cannot
# say: a schema-valid body may still be bad data (400) or over a service limit (413). Page
# tokens are opaque: a made-up one is a 400 too.
DATA_OPERATIONS = r"^/v1/(jobs|models/\{model_id\}/(retrain|predict))$"
LIST_OPERATIONS = r"^/v1/(jobs|models|models/\{model_id\}/versions)$"
FAILED = (Status.FAILURE, Status.ERROR)
# Few examples per operation keep the suite quick; GATEWAY_FUZZ_EXAMPLES=100 digs deeper.
MAX_EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "8"))
CONFIG = {
    "generation": {"max-examples": MAX_EXAMPLES},
    "operations": [
        {
            "include-path-regex": DATA_OPERATIONS,
            "include-method": "POST",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "404", "409", "413", "429"]
                }
            },
        },
        {
            # V2 names models by id or name and answers "not ready" with 400, as Triton does.
            "include-path-regex": r"^/v2/models/",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404"]}},
        },
        {
            "include-path-regex": LIST_OPERATIONS,
            "include-method": "GET",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404"]}},
        },
    ],
}


@pytest.fixture(scope="module")
def app(service: ServiceThread) -> FastAPI:
    """A gateway app in front of the module's service."""
    return create_app(gateway_settings(service.target))


@pytest.fixture(scope="module")
def api_schema(app: FastAPI) -> Any:
    """The app's own OpenAPI schema, loaded by schemathesis."""
    config = schemathesis.Config.from_dict(CONFIG)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


def test_schemathesis_finds_no_failures(api_schema: Any) -> None:
    # The engine runs what `schemathesis run` runs: every phase and every check.
    problems = []
    for event in schemathesis.engine.from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status in FAILED:
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        problems.append(f"{check.name}: {check.failure_info.code_sample}")
                        problems.append(f"  {check.failure_info.failure.title}")
                    elif check.status in FAILED:
                        problems.append(f"{event.label} {case_id}: {check.name} {check.status}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"error: {event!r}")
    assert not problems, "\n".join(problems)


def test_the_docs_examples_run_as_they_are(app: FastAPI) -> None:
    with TestClient(app) as http:
        paths = http.get("/openapi.json").json()["paths"]
        train = paths["/v1/jobs"]["post"]["requestBody"]["content"]
        predict = paths["/v1/models/{model_id}/predict"]["post"]["requestBody"]["content"]

        trained = http.post("/v1/jobs?wait=true", json=train["application/json"]["example"])
        assert trained.status_code == 201, trained.text
        model_id = trained.json()["model_id"]
        url = f"/v1/models/{model_id}/predict"
        predicted = http.post(url, json=predict["application/json"]["example"])
        assert predicted.status_code == 200, predicted.text
        assert [p["label"] for p in predicted.json()["predictions"]] == ["Adelie", "Gentoo"]

        example = predict["text/csv"]["example"]
        as_csv = http.post(url, content=example, headers={"content-type": "text/csv"})
        assert as_csv.status_code == 200, as_csv.text
        assert http.get("/docs").status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_gateway_itself(app: FastAPI, page: str) -> None:
    with TestClient(app) as http:
        html = http.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        # Nothing from a CDN: a network without internet still gets working docs.
        assert assets and all(url.startswith("/docs-static/") for url in assets), assets
        for url in assets:
            answer = http.get(url)
            assert answer.status_code == 200 and len(answer.content) > 1000, url
