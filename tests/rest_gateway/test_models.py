"""Models and versions through the gateway: kinds, list and page, get, retrain, delete."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from rest_gateway import examples


def test_kinds_come_with_their_hyperparameter_specs(client: TestClient) -> None:
    kinds = {k["name"]: k for k in client.get("/v1/kinds").json()["kinds"]}

    assert set(kinds) == {"catboost", "logistic_regression"}
    iterations = next(h for h in kinds["catboost"]["hyperparameters"] if h["name"] == "iterations")
    assert iterations["type"] == "int"
    assert isinstance(iterations["default"], int)  # whole numbers stay integers in JSON
    solver = next(
        h for h in kinds["logistic_regression"]["hyperparameters"] if h["name"] == "solver"
    )
    assert solver["type"] == "string" and solver["choices"]


def test_get_and_list_models_and_versions(
    client: TestClient, penguins_model: dict[str, Any]
) -> None:
    model_id = penguins_model["model_id"]

    model = client.get(f"/v1/models/{model_id}").json()
    version = client.get(f"/v1/models/{model_id}/versions/1").json()
    versions = client.get(f"/v1/models/{model_id}/versions").json()

    assert model["kind"] == "catboost" and model["latest_version"] >= 1
    assert version == penguins_model
    assert versions["versions"][-1] == penguins_model
    assert model_id in [m["model_id"] for m in client.get("/v1/models").json()["models"]]


def test_list_models_pages(client: TestClient) -> None:
    for _ in range(2):
        response = client.post("/v1/jobs?wait=true", json=examples.TRAINING_REQUEST)
        assert response.status_code == 201

    first = client.get("/v1/models", params={"page_size": 1}).json()
    second = client.get(
        "/v1/models", params={"page_size": 1, "page_token": first["next_page_token"]}
    ).json()

    assert len(first["models"]) == 1 and first["next_page_token"]
    assert first["models"][0]["model_id"] != second["models"][0]["model_id"]


def test_retrain_changes_hyperparameters_and_keeps_lineage(client: TestClient) -> None:
    parent = client.post("/v1/jobs?wait=true", json=examples.TRAINING_REQUEST).json()
    model_id = parent["model_id"]

    response = client.post(
        f"/v1/models/{model_id}/retrain?wait=true", json={"hyperparameters": {"iterations": 30}}
    )

    assert response.status_code == 201, response.text
    child = response.json()
    assert response.headers["location"] == f"/v1/models/{model_id}/versions/2"
    assert child["version"] == 2
    assert child["hyperparameters"]["iterations"] == 30
    assert child["hyperparameters"]["depth"] == parent["hyperparameters"]["depth"]
    assert child["lineage"]["parent_version"] == 1
    assert child["lineage"]["dataset_digest"] == parent["lineage"]["dataset_digest"]


def test_retrain_passes_its_resource_requests_to_the_service(
    client: TestClient, penguins_model: dict[str, Any]
) -> None:
    retrain = f"/v1/models/{penguins_model['model_id']}/retrain"

    refused = client.post(retrain, json={"resources": {"cpus": 1000}})

    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"] == [
        {
            "field": "resources.cpus",
            "description": "asks for 1000 CPUs; this service allows at most 8 per job",
        }
    ]
    accepted = client.post(f"{retrain}?wait=true", json={"resources": {"cpus": 1}})
    assert accepted.status_code == 201, accepted.text


def test_retrain_from_a_new_csv_and_with_no_body(
    client: TestClient, penguins_model: dict[str, Any], penguins_csv: bytes
) -> None:
    model_id = penguins_model["model_id"]

    with_csv = client.post(
        f"/v1/models/{model_id}/retrain",
        files={"file": ("penguins.csv", penguins_csv, "text/csv")},
        data={"hyperparameters": json.dumps({"depth": 4}), "parent_version": "1"},
    )
    assert with_csv.status_code == 202, with_csv.text
    job = with_csv.json()
    assert job["parent_version"] == 1
    assert client.get(f"/v1/jobs/{job['job_id']}/events").text.rstrip().count("succeeded")

    bare = client.post(f"/v1/models/{model_id}/retrain?wait=true")

    assert bare.status_code == 201, bare.text
    assert bare.json()["lineage"]["dataset_digest"] == penguins_model["lineage"]["dataset_digest"]


def test_delete_a_version_then_the_model(client: TestClient) -> None:
    model_id = client.post("/v1/jobs?wait=true", json=examples.TRAINING_REQUEST).json()["model_id"]
    client.post(f"/v1/models/{model_id}/retrain?wait=true")

    deleted_version = client.delete(f"/v1/models/{model_id}/versions/1")
    deleted_model = client.delete(f"/v1/models/{model_id}")

    assert deleted_version.json() == {"model_deleted": False}
    assert deleted_model.json() == {"deleted_versions": 1}
    gone = client.get(f"/v1/models/{model_id}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert client.get(f"/v1/models/{model_id}/versions/2").status_code == 404


def test_a_version_carries_its_holdout_evaluation_and_learning_curve(
    penguins_model: dict[str, Any],
) -> None:
    evaluation = penguins_model["evaluation"]
    classes = penguins_model["signature"]["classes"]
    counts = evaluation["confusion_matrix"]
    assert len(counts) == len(classes) and all(len(row) == len(classes) for row in counts)
    assert sum(map(sum, counts)) == penguins_model["holdout_rows"]
    assert {(c["kind"], c["class_name"]) for c in evaluation["curves"]} == {
        (kind, name) for name in classes for kind in ("roc", "pr")
    }
    curve = penguins_model["learning_curve"]
    assert curve["iterations"][-1] == 20
    assert all(len(values) == len(curve["iterations"]) for values in curve["series"].values())
