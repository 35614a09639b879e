"""Training through the gateway: every body format, waiting, Location, jobs and SSE progress."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from fastapi.testclient import TestClient

from rest_gateway import examples
from rest_gateway.app import create_app
from tests.rest_gateway.conftest import FAST, gateway_settings

ARROW = "application/vnd.apache.arrow.stream"


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse a text/event-stream body into (event name, JSON data) pairs, skipping comments."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def arrow_stream(csv: bytes) -> bytes:
    """Convert CSV bytes to an Arrow IPC stream, empty fields missing."""
    options = pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    table = pacsv.read_csv(io.BytesIO(csv), convert_options=options)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def test_json_rows_with_wait_answer_201_with_the_version(client: TestClient) -> None:
    response = client.post("/v1/jobs?wait=true", json=examples.TRAINING_REQUEST)

    assert response.status_code == 201, response.text
    version = response.json()
    assert response.headers["location"] == f"/v1/models/{version['model_id']}/versions/1"
    assert version["kind"] == "catboost"
    assert version["hyperparameters"]["iterations"] == 20
    assert version["signature"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    sex = next(f for f in version["signature"]["features"] if f["name"] == "sex")
    assert sex["feature_type"] == "categorical"
    assert sex["null_count"] == 1  # a JSON null is a missing value
    assert version["train_rows"] + version["holdout_rows"] == len(examples.TRAINING_ROWS)
    assert 0 <= version["metrics"]["accuracy"] <= 1


def test_csv_upload_answers_202_and_sse_follows_it_to_success(
    client: TestClient, penguins_csv: bytes
) -> None:
    response = client.post(
        "/v1/jobs",
        files={"file": ("penguins.csv", penguins_csv, "text/csv")},
        data={
            "kind": "logistic_regression",
            "target_column": "species",
            "hyperparameters": json.dumps({"max_iter": 200}),
            "name": "penguins-lr",
            "feature_types": json.dumps({"year": "categorical"}),
            "holdout_fraction": "0.25",
            "seed": "7",
            "resources": json.dumps({"cpus": 1}),
        },
    )

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['job_id']}"
    assert job["state"] in ("queued", "running")
    assert job["rows"] == 344

    events = client.get(f"/v1/jobs/{job['job_id']}/events")

    assert events.status_code == 200
    assert events.headers["content-type"].startswith("text/event-stream")
    parsed = sse_events(events.text)
    assert [name for name, _ in parsed][-1] == "succeeded"
    assert all(name in ("queued", "running") for name, _ in parsed[:-1])
    final = parsed[-1][1]
    assert final["progress"]["fraction"] == 1.0
    fractions = [event["progress"]["fraction"] for _, event in parsed]
    assert fractions == sorted(fractions)  # a progress bar never goes back
    assert final["result"]["holdout_rows"] == 86  # a quarter of 344
    year = next(f for f in final["result"]["signature"]["features"] if f["name"] == "year")
    assert year["feature_type"] == "categorical"

    got = client.get(response.headers["location"]).json()
    assert got["state"] == "succeeded"
    listed = client.get("/v1/jobs", params={"model_id": final["model_id"]}).json()
    assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]


def test_arrow_body_with_spec_in_the_query(client: TestClient, penguins_csv: bytes) -> None:
    params = {"kind": "catboost", "target_column": "species", "wait": "true"}
    params["hyperparameters"] = json.dumps(FAST)

    response = client.post(
        "/v1/jobs",
        params=params,
        content=arrow_stream(penguins_csv),
        headers={"content-type": ARROW},
    )

    assert response.status_code == 201, response.text
    assert response.json()["train_rows"] + response.json()["holdout_rows"] == 344


def test_raw_csv_body_is_streamed_in_pieces(client: TestClient, penguins_csv: bytes) -> None:
    params = {"kind": "catboost", "target_column": "species", "wait": "true"}
    params["hyperparameters"] = json.dumps(FAST)

    response = client.post(
        "/v1/jobs", params=params, content=penguins_csv, headers={"content-type": "text/csv"}
    )

    assert response.status_code == 201, response.text


def test_cancel_a_running_job_and_see_it_end_cancelled(
    client: TestClient, penguins_csv: bytes
) -> None:
    slow = json.dumps({"iterations": 10000, "learning_rate": 0.01})
    job = client.post(
        "/v1/jobs",
        files={"file": ("penguins.csv", penguins_csv, "text/csv")},
        data={"kind": "catboost", "target_column": "species", "hyperparameters": slow},
    ).json()

    cancelled = client.post(f"/v1/jobs/{job['job_id']}/cancel")

    assert cancelled.status_code == 200, cancelled.text
    events = sse_events(client.get(f"/v1/jobs/{job['job_id']}/events").text)
    assert events[-1][0] == "cancelled"
    again = client.post(f"/v1/jobs/{job['job_id']}/cancel")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


def test_a_failed_training_under_wait_answers_with_the_jobs_error(client: TestClient) -> None:
    rows = [{"x": i, "y": "only-class"} for i in range(20)]
    body = {"kind": "catboost", "target_column": "y", "hyperparameters": FAST, "rows": rows}

    response = client.post("/v1/jobs?wait=true", json=body)

    assert 400 <= response.status_code < 500, response.text
    problem = response.json()
    assert problem["status"] == response.status_code
    assert "y" in problem["detail"]


def test_bad_csv_deep_in_an_upload_is_a_400_and_starts_no_job(
    service: Any, penguins_csv: bytes
) -> None:
    header, body = penguins_csv.split(b"\n", 1)
    broken = header + b"\n" + body * 10 + b"Adelie,Dream,1,2\n" + body
    settings = gateway_settings(service.target, csv_block_bytes=64 * 1024)
    params = {"kind": "catboost", "target_column": "species"}

    with TestClient(create_app(settings)) as http:
        before = http.get("/v1/jobs", params={"page_size": 1000}).json()["jobs"]
        response = http.post(
            "/v1/jobs", params=params, content=broken, headers={"content-type": "text/csv"}
        )
        after = http.get("/v1/jobs", params={"page_size": 1000}).json()["jobs"]

    assert response.status_code == 400, response.text
    line = 1 + body.count(b"\n") * 10 + 1
    description = response.json()["errors"][0]["description"]
    assert description == f"line {line}: 4 fields where the header has 8: 'Adelie,Dream,1,2'"
    assert len(after) == len(before)
