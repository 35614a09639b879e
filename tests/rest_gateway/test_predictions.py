"""Predictions through the gateway: JSON, CSV and Arrow in, by Content-Type; out by Accept."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from fastapi.testclient import TestClient

from rest_gateway import examples
from rest_gateway.app import create_app
from tests.rest_gateway.conftest import gateway_settings
from tests.rest_gateway.test_jobs import ARROW, arrow_stream

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture(scope="module")
def predict_url(penguins_model: dict[str, Any]) -> str:
    """Where to predict with the module's penguins model."""
    return f"/v1/models/{penguins_model['model_id']}/predict"


def test_json_rows_give_labels_and_probabilities(client: TestClient, predict_url: str) -> None:
    response = client.post(predict_url, json=examples.PREDICT_REQUEST)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1
    assert [p["label"] for p in body["predictions"]] == ["Adelie", "Gentoo"]
    for prediction in body["predictions"]:
        assert sorted(prediction["probabilities"]) == CLASSES
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)


def test_a_csv_upload_answers_csv_or_json_by_accept(
    client: TestClient, predict_url: str, penguins_csv: bytes
) -> None:
    files = {"file": ("penguins.csv", penguins_csv, "text/csv")}

    as_csv = client.post(predict_url, files=files)
    as_json = client.post(predict_url, files=files, headers={"accept": "application/json"})

    assert as_csv.headers["content-type"].startswith("text/csv")
    table = pacsv.read_csv(io.BytesIO(as_csv.content))
    assert table.num_rows == 344
    assert table.column_names == ["label", *(f"proba_{name}" for name in CLASSES)]
    assert len(as_json.json()["predictions"]) == 344
    assert as_json.json()["predictions"][0]["label"] == table.column("label")[0].as_py()


def test_a_raw_csv_body_works_like_the_docs_example(client: TestClient, predict_url: str) -> None:
    response = client.post(
        predict_url, content=examples.PREDICT_CSV, headers={"content-type": "text/csv"}
    )

    assert response.status_code == 200, response.text
    assert (
        response.text.splitlines()[0] == '"label","proba_Adelie","proba_Chinstrap","proba_Gentoo"'
    )


def test_arrow_in_arrow_out(client: TestClient, predict_url: str, penguins_csv: bytes) -> None:
    response = client.post(
        predict_url, content=arrow_stream(penguins_csv), headers={"content-type": ARROW}
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.num_rows == 344
    assert table.schema.field("proba_Gentoo").type == pa.float64()


def test_a_named_version_and_accept_that_cannot_be_met(
    client: TestClient, predict_url: str
) -> None:
    versioned = client.post(predict_url, params={"version": 1}, json=examples.PREDICT_REQUEST)
    refused = client.post(
        predict_url, json=examples.PREDICT_REQUEST, headers={"accept": "image/png"}
    )

    assert versioned.json()["version"] == 1
    assert refused.status_code == 406
    assert refused.headers["content-type"] == "application/problem+json"


def test_a_schema_mismatch_is_a_400_naming_the_column(client: TestClient, predict_url: str) -> None:
    rows = [{k: v for k, v in row.items() if k != "island"} for row in examples.PREDICT_ROWS]

    response = client.post(predict_url, json={"rows": rows})

    assert response.status_code == 400, response.text
    assert "island" in response.json()["detail"]


@pytest.fixture(scope="module")
def small_blocks(service: Any) -> Iterator[TestClient]:
    """A gateway that parses CSV in the smallest blocks, so files span many batches."""
    settings = gateway_settings(service.target, csv_block_bytes=64 * 1024)
    with TestClient(create_app(settings)) as http:
        yield http


def test_a_csv_of_many_batches_is_predicted_in_order(
    small_blocks: TestClient, predict_url: str, penguins_csv: bytes
) -> None:
    header, body = penguins_csv.split(b"\n", 1)
    big = header + b"\n" + body * 20  # 6880 rows, about 300 KB: several batches

    response = small_blocks.post(
        predict_url, content=big, headers={"content-type": "text/csv", "accept": "text/csv"}
    )

    assert response.status_code == 200, response.text
    labels = pacsv.read_csv(io.BytesIO(response.content)).column("label").to_pylist()
    assert len(labels) == 344 * 20
    assert labels[:344] == labels[-344:]


def test_bad_csv_deep_in_the_file_is_a_400_not_a_hang(
    small_blocks: TestClient, predict_url: str, penguins_csv: bytes
) -> None:
    header, body = penguins_csv.split(b"\n", 1)
    broken = header + b"\n" + body * 10 + b"Adelie,Dream,1,2\n" + body

    response = small_blocks.post(predict_url, content=broken, headers={"content-type": "text/csv"})

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "file"


def test_an_unknown_model_is_a_404_for_csv_too(client: TestClient) -> None:
    response = client.post(
        "/v1/models/m-000000000000/predict",
        content=examples.PREDICT_CSV,
        headers={"content-type": "text/csv"},
    )

    assert response.status_code == 404, response.text
