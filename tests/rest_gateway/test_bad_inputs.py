"""The REST half of the bad-input catalogue (docs/bad-inputs.md).

Every bad input gets its status and a problem whose detail names what is wrong; after each
test the gateway still answers, and the model trained first is unchanged at the end.
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rest_gateway import examples
from rest_gateway.app import create_app
from tests.conftest import ServiceThread
from tests.rest_gateway.conftest import FAST, gateway_settings
from tests.rest_gateway.test_jobs import ARROW, arrow_stream, sse_events
from tests.rest_gateway.test_problems import problem, upload

SLOW = {"iterations": 10000, "learning_rate": 0.001}
SPEC = {"kind": "catboost", "target_column": "species", "hyperparameters": json.dumps(FAST)}
CSV = {"content-type": "text/csv"}
ACCEPT_JSON = {"accept": "application/json"}
FEATURES = examples.PREDICT_CSV.split("\n", 1)[0]  # the penguins header without species


@pytest.fixture(scope="module")
def stored(client: TestClient, penguins_model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A model trained before the bad inputs; it must be unchanged after all of them."""
    yield penguins_model
    after = client.get(f"/v1/models/{penguins_model['model_id']}/versions/1")
    assert after.json() == penguins_model


@pytest.fixture(autouse=True)
def still_serving(client: TestClient) -> Iterator[None]:
    """After each bad input the gateway, and the service behind it, still answer."""
    yield
    assert client.get("/v1/kinds").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.fixture(scope="module")
def predict_url(stored: dict[str, Any]) -> str:
    """Where to predict with the stored model."""
    return f"/v1/models/{stored['model_id']}/predict"


@pytest.fixture(scope="module")
def small_blocks(service: ServiceThread) -> Iterator[TestClient]:
    """A gateway that parses CSV in 64 KiB blocks, so a bad row can sit blocks deep."""
    with TestClient(create_app(gateway_settings(service.target, csv_block_bytes=65536))) as http:
        yield http


def fields(body: dict[str, Any]) -> list[str]:
    """The fields a problem's violations name, in order."""
    return [e["field"] for e in body["errors"]]


def job_ids(client: TestClient) -> list[str]:
    """Every job the service knows, newest first."""
    listed = client.get("/v1/jobs", params={"page_size": 1000}).json()["jobs"]
    return [job["job_id"] for job in listed]


def raw_csv(client: TestClient, url: str, csv: bytes, **params: str) -> Any:
    """Post CSV as the request body."""
    return client.post(url, params=params, content=csv, headers=CSV)


def extended(header_end: str, row_end: str) -> bytes:
    """The example training CSV with `header_end` added to its header and `row_end` to each row."""
    header, rows = examples.TRAINING_CSV.split("\n", 1)
    lines = [header + header_end, *(line + row_end for line in rows.splitlines())]
    return "".join(f"{line}\n" for line in lines).encode()


def spoil(csv: bytes, row: int, old: bytes, new: bytes) -> bytes:
    """Replace `old` with `new` in one data row (0 is the first after the header)."""
    lines = csv.split(b"\n")
    assert old in lines[row + 1]
    lines[row + 1] = lines[row + 1].replace(old, new, 1)
    return b"\n".join(lines)


# CSV bodies


def test_non_utf8_cells_are_a_400_naming_the_column(
    client: TestClient, small_blocks: TestClient, penguins_csv: bytes, predict_url: str
) -> None:
    early = spoil(penguins_csv, 0, b"Torgersen", b"Torg\xe9rsen")  # Latin-1, in the first block
    header, rows = penguins_csv.split(b"\n", 1)
    late = header + b"\n" + rows * 10 + b"Adelie,Dream,39.1,18.7,181,3750,m\xe2le,2007\n"
    before = job_ids(client)

    answers = {
        "island": [
            upload(client, early, **SPEC),
            raw_csv(client, "/v1/jobs", early, **SPEC),
            raw_csv(client, predict_url, early),
            client.post(predict_url, files={"file": ("p.csv", early, "text/csv")}),
        ],
        "sex": [  # past the first block, where Arrow has already typed the column as text
            raw_csv(small_blocks, "/v1/jobs", late, **SPEC),
            raw_csv(small_blocks, predict_url, late),
        ],
    }

    for column, responses in answers.items():
        for response in responses:
            body = problem(response, 400)
            assert fields(body) == ["file"]
            assert f"'{column}'" in body["detail"] and "UTF-8" in body["detail"]
    assert job_ids(client) == before


@pytest.mark.parametrize(
    ("row", "expected"),
    [("Adelie,Dream,39.1,18.7,181,3750,male,2007,extra", 9), ("Adelie,Dream,39.1", 3)],
    ids=["more-fields", "fewer-fields"],
)
def test_ragged_csv_rows_are_a_400_saying_how_many_fields(
    client: TestClient, penguins_csv: bytes, predict_url: str, row: str, expected: int
) -> None:
    header, rows = penguins_csv.split(b"\n", 1)
    middle = rows.index(b"\n", len(rows) // 2) + 1
    ragged = header + b"\n" + rows[:middle] + row.encode() + b"\n" + rows[middle:]

    answers = [
        upload(client, ragged, **SPEC),
        raw_csv(client, "/v1/jobs", ragged, **SPEC),
        raw_csv(client, predict_url, ragged),
    ]

    line = 2 + rows[:middle].count(b"\n")  # as an editor counts, the header line 1
    for response in answers:
        body = problem(response, 400)
        assert fields(body) == ["file"]
        says = f"file: line {line}: {expected} fields where the header has 8: {row!r}"
        assert body["detail"] == says


def test_a_header_only_csv_trains_nothing_and_predicts_nothing(
    client: TestClient, penguins_csv: bytes, predict_url: str
) -> None:
    header = penguins_csv.split(b"\n", 1)[0] + b"\n"

    train = problem(upload(client, header, **SPEC), 400)
    as_json = client.post(predict_url, content=header, headers={**CSV, **ACCEPT_JSON})
    as_csv = raw_csv(client, predict_url, FEATURES.encode() + b"\n")
    wrong = problem(raw_csv(client, predict_url, b"species,beak\n"), 400)

    assert "no rows" in train["detail"]
    # A header alone still names the columns: they are checked, and no rows means no answers.
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["predictions"] == []
    assert as_csv.text.splitlines() == ['"label","proba_Adelie","proba_Chinstrap","proba_Gentoo"']
    assert "missing column 'island'" in wrong["detail"]


def test_duplicate_column_names_are_a_400_naming_the_column(
    client: TestClient, predict_url: str
) -> None:
    doubled = extended(",island", ",Biscoe")

    train = problem(upload(client, doubled, **SPEC), 400)
    predict = problem(raw_csv(client, predict_url, doubled), 400)

    assert fields(train) == ["columns.island"]
    assert fields(predict) == ["batches[0].columns.island"]  # the CSV is predicted batch by batch
    assert "more than once" in predict["detail"]


def test_unnamed_empty_columns_of_a_spreadsheet_export(
    client: TestClient, predict_url: str
) -> None:
    # Two columns a spreadsheet exported past the last one used: no name, no values.
    exported = extended(",,", ",,")

    train = problem(upload(client, exported, **SPEC), 400)
    predicted = raw_csv(client, predict_url, exported)

    assert fields(train) == ["columns"]
    assert "2 columns have no name in the header" in train["detail"]
    # The model reads neither column, so they stand in no prediction's way.
    assert predicted.status_code == 200, predicted.text
    answers = predicted.text.splitlines()  # CSV in, CSV out: a header, then a line per row
    assert answers[0].startswith('"label"') and len(answers) == len(exported.splitlines())


def test_compressed_csv_bodies_are_read_and_a_cut_one_is_named(
    client: TestClient, predict_url: str
) -> None:
    # A .csv.gz that `mlops train` takes is taken over REST too; the bytes tell the codec.
    training = gzip.compress(examples.TRAINING_CSV.encode())
    gz = {"file": ("data.csv.gz", training, "application/gzip")}
    trained = client.post("/v1/jobs", params={"wait": "true"}, data=SPEC, files=gz)
    assert trained.status_code == 201, trained.text
    rows = examples.PREDICT_CSV.encode()
    answered = raw_csv(client, predict_url, bz2.compress(rows))
    assert answered.text == raw_csv(client, predict_url, rows).text
    cut = problem(upload(client, training[: len(training) // 2], **SPEC), 400)
    assert fields(cut) == ["file"]
    assert cut["detail"].startswith("file: the file cannot be decompressed: ")
    # A workbook sent as the CSV: named for what it is, not "not UTF-8".
    workbook = problem(upload(client, b"PK\x03\x04" + bytes(200), **SPEC), 400)
    assert workbook["detail"] == (
        "file: the file is a zip archive, as an Excel workbook (.xlsx) is: save the sheet as CSV"
    )


def test_bodies_sent_with_a_content_encoding_are_read_through_it(
    client: TestClient, predict_url: str
) -> None:
    # requests and curl users gzip bodies by hand and say so in Content-Encoding.
    rows = examples.PREDICT_CSV.encode()
    plain = {
        "application/json": json.dumps({"rows": examples.PREDICT_ROWS}).encode(),
        "text/csv": rows,
        ARROW: arrow_stream(rows),
    }
    for encoding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        for media, body in plain.items():
            headers = {"content-type": media, "accept": "application/json"}
            sent = client.post(
                predict_url,
                content=compress(body),
                headers={**headers, "content-encoding": encoding},
            )
            assert sent.status_code == 200, (encoding, media, sent.text)
            assert sent.json() == client.post(predict_url, content=body, headers=headers).json()
    training = json.dumps({**examples.TRAINING_REQUEST, "hyperparameters": FAST}).encode()
    trained = client.post(
        "/v1/jobs",
        content=gzip.compress(training),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert trained.status_code == 202, trained.text


@pytest.mark.parametrize(
    ("encoding", "body", "status", "words"),
    [
        ("br", b"\x0b\x02\x80rows", 415, "Content-Encoding br is not accepted here"),
        ("gzip", b"rows=1", 400, "body: the body is not gzip data"),
        ("gzip", gzip.compress(b'{"rows": []}')[:-12], 400, "body: the gzip body is cut short"),
    ],
    ids=["unknown", "not-gzip", "cut-short"],
)
def test_a_content_encoding_the_body_does_not_match_is_refused(
    client: TestClient, predict_url: str, encoding: str, body: bytes, status: int, words: str
) -> None:
    headers = {"content-type": "application/json", "content-encoding": encoding}
    before = job_ids(client)

    for url in ("/v1/jobs", predict_url):
        refused = problem(client.post(url, content=body, headers=headers), status)
        assert words in refused["detail"]
    assert job_ids(client) == before


def test_a_body_inflating_past_the_cap_is_a_413(service: ServiceThread) -> None:
    settings = gateway_settings(service.target, max_body_bytes=1024 * 1024)
    bomb = gzip.compress(b" " * 64 * 1024 * 1024)  # 64 kB inflating to 64 MiB
    headers = {"content-type": "text/csv", "content-encoding": "gzip"}

    with TestClient(create_app(settings)) as small:
        refused = problem(
            small.post("/v1/models/m-0123456789ab/predict", content=bomb, headers=headers), 413
        )

    assert refused["detail"] == "The request body is larger than 1048576 bytes once decompressed."


def test_ten_thousand_columns_are_a_413_naming_the_limit(client: TestClient) -> None:
    header = ",".join(f"c{i}" for i in range(10_000)) + ",species\n"
    row = ",".join("1" for _ in range(10_000))
    wide = header + "".join(f"{row},{label}\n" for label in ("a", "b") * 5)

    body = problem(upload(client, wide.encode(), **SPEC), 413)

    assert body["code"] == "RESOURCE_EXHAUSTED"
    assert "10001 columns" in body["detail"] and "2000" in body["detail"]


# Empty, malformed and oddly shaped bodies


@pytest.mark.parametrize(
    ("content_type", "train_field", "predict_field"),
    [
        ("application/json", "body", "body"),
        ("text/csv", "body", "body"),
        (ARROW, "body", "arrow_ipc"),  # predict passes Arrow through; the service says
        ("multipart/form-data; boundary=x", "file", "file"),
    ],
    ids=["json", "csv", "arrow", "multipart"],
)
def test_an_empty_body_is_a_400(
    client: TestClient, predict_url: str, content_type: str, train_field: str, predict_field: str
) -> None:
    params = SPEC if content_type in ("text/csv", ARROW) else {}
    headers = {"content-type": content_type}

    train = problem(client.post("/v1/jobs", params=params, content=b"", headers=headers), 400)
    predict = problem(client.post(predict_url, content=b"", headers=headers), 400)

    assert fields(train) == [train_field]
    assert fields(predict) == [predict_field]


def test_an_empty_csv_file_part_is_a_400(client: TestClient) -> None:
    body = problem(upload(client, b"", **SPEC), 400)

    assert fields(body) == ["file"]
    says = "the file is empty; a CSV file begins with a line naming its columns"
    assert body["detail"] == f"file: {says}"


@pytest.mark.parametrize(
    "text",
    [
        b'{"kind": "catboost", "rows": [',
        b"rows=1",
        '{"rows": [{"island": "Dr\xe9am"}]}'.encode("latin-1"),
    ],
    ids=["truncated", "not-json", "latin-1"],
)
def test_invalid_json_is_a_400(client: TestClient, predict_url: str, text: bytes) -> None:
    headers = {"content-type": "application/json"}

    for url in ("/v1/jobs", predict_url):
        body = problem(client.post(url, content=text, headers=headers), 400)
        assert fields(body) == ["body"] and "Invalid JSON" in body["detail"]


def test_json_beginning_with_a_utf8_bom_is_read(client: TestClient, predict_url: str) -> None:
    bom = b"\xef\xbb\xbf"  # as PowerShell's Out-File and Notepad write UTF-8
    headers = {"content-type": "application/json"}
    rows = json.dumps({"rows": examples.PREDICT_ROWS}).encode()
    training = json.dumps({**examples.TRAINING_REQUEST, "hyperparameters": FAST}).encode()

    predicted = client.post(predict_url, content=bom + rows, headers=headers)
    trained = client.post("/v1/jobs", content=bom + training, headers=headers)

    assert predicted.status_code == 200, predicted.text
    assert predicted.json() == client.post(predict_url, content=rows, headers=headers).json()
    assert trained.status_code == 202, trained.text


def test_nested_values_in_json_rows_are_one_violation_per_cell(
    client: TestClient, predict_url: str
) -> None:
    row = {**examples.PREDICT_ROWS[0], "island": {"name": "Dream"}, "year": [2007]}

    train = problem(client.post("/v1/jobs", json={**examples.TRAINING_REQUEST, "rows": [row]}), 400)
    predict = problem(client.post(predict_url, json={"rows": [row]}), 400)

    for body in (train, predict):
        assert fields(body) == ["rows.0.island", "rows.0.year"]
        assert "string, number or boolean" in body["detail"]


def test_integers_beyond_64_bits_in_json_rows_are_a_400(
    client: TestClient, predict_url: str
) -> None:
    row = {**examples.PREDICT_ROWS[0], "body_mass_g": 2**70}

    body = problem(client.post(predict_url, json={"rows": [row]}), 400)

    assert fields(body) == ["rows.body_mass_g"] and "64-bit" in body["detail"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{iterations: 5}", "must be JSON text"),
        ("[5]", "valid dictionary"),
        ("[" * 5_000 + "]" * 5_000, "nest less deep"),
    ],
    ids=["not-json", "not-an-object", "nested-too-deep"],
)
def test_a_hyperparameters_field_that_is_not_a_json_object(
    client: TestClient, value: str, words: str
) -> None:
    csv = examples.TRAINING_CSV.encode()

    body = problem(upload(client, csv, **{**SPEC, "hyperparameters": value}), 400)

    assert fields(body) == ["hyperparameters"] and words in body["detail"]


# The spec


def test_an_unknown_kind_is_a_400_listing_the_known_ones(client: TestClient) -> None:
    body = problem(
        client.post("/v1/jobs", json={**examples.TRAINING_REQUEST, "kind": "xgboost"}), 400
    )

    assert fields(body) == ["kind"]
    assert "'xgboost'" in body["detail"] and "catboost, logistic_regression" in body["detail"]


def test_a_spec_field_given_twice_is_a_400_and_starts_no_job(client: TestClient) -> None:
    csv = examples.TRAINING_CSV.encode()
    kinds = ["catboost", "logistic_regression"]
    before = job_ids(client)

    form = client.post(
        "/v1/jobs",
        files={"file": ("data.csv", csv, "text/csv")},
        data={**SPEC, "kind": kinds},
    )
    query = client.post(
        "/v1/jobs",
        params=[("kind", kind) for kind in kinds] + [("target_column", "species")],
        content=csv,
        headers=CSV,
    )

    for response in (form, query):
        body = problem(response, 400)
        assert fields(body) == ["kind"] and "more than once" in body["detail"]
    assert job_ids(client) == before


def test_a_query_parameter_given_twice_is_a_400_naming_it(client: TestClient) -> None:
    # FastAPI kept the last: `?version=1&version=2` predicted with version 2 (or said it had
    # none), `?page_size=1&page_size=50` listed 50.
    rows = {"rows": [{"island": "Dream"}]}
    for response, field in (
        (
            client.post("/v1/models/m-000000000000/predict?version=1&version=2", json=rows),
            "version",
        ),
        (client.get("/v1/models?page_size=1&page_size=50"), "page_size"),
        (client.get("/v1/jobs?page_token=&page_token=x"), "page_token"),
    ):
        body = problem(response, 400)
        assert fields(body) == [field] and "is given more than once" in body["detail"]


@pytest.mark.parametrize(
    ("kind", "hyperparameters", "field", "words"),
    [
        ("catboost", {"iterationz": 10}, "iterationz", "unknown hyperparameter"),
        ("catboost", {"iterations": "ten"}, "iterations", "must be an integer"),
        ("catboost", {"depth": 2.5}, "depth", "must be an integer"),
        ("catboost", {"verbose": "yes"}, "verbose", "boolean"),
        ("catboost", {"iterations": 0}, "iterations", "at least 1"),
        ("catboost", {"learning_rate": 5}, "learning_rate", "at most"),
        ("logistic_regression", {"C": 0}, "C", "at least 1e-10"),
        ("logistic_regression", {"solver": "adam"}, "solver", "one of"),
        ("logistic_regression", {"solver": "lbfgs", "penalty": "l1"}, "penalty", "'lbfgs'"),
        ("catboost", {"learning_rate": float("nan")}, "learning_rate", "finite number"),
        ("catboost", {"depth": {"max": 4}}, "depth", "string, number or boolean"),
    ],
    ids=[
        "unknown",
        "text-for-int",
        "float-for-int",
        "text-for-bool",
        "below-minimum",
        "above-maximum",
        "zero-where-the-library-needs-more",
        "not-a-choice",
        "bad-combination",
        "nan",
        "nested",
    ],
)
def test_each_kind_of_bad_hyperparameter_is_a_field_violation(
    client: TestClient, kind: str, hyperparameters: dict[str, Any], field: str, words: str
) -> None:
    spec = {**examples.TRAINING_REQUEST, "kind": kind, "hyperparameters": hyperparameters}

    response = client.post(
        "/v1/jobs", content=json.dumps(spec), headers={"content-type": "application/json"}
    )

    body = problem(response, 400)
    assert fields(body) == [f"hyperparameters.{field}"]
    assert words in body["errors"][0]["description"]


# Identifiers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/..%2F..%2Fetc"),
        ("GET", "/v1/models/..%2f..%2fetc%2fpasswd/versions"),
        ("POST", "/v1/models/..%2F..%2Fetc/predict"),
        ("DELETE", "/v1/models/..%5C..%5Cwindows"),
        ("POST", "/v1/jobs/..%2F..%2Fetc/cancel"),
        ("GET", "/v1/jobs/%2E%2E%2F%2E%2E%2Fetc"),
        ("GET", "/v1/jobs?model_id=../../etc"),
    ],
    ids=["model", "lower-case", "predict", "backslash", "cancel", "encoded-dots", "job-filter"],
)
def test_path_traversal_in_ids_is_a_400(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json=examples.PREDICT_REQUEST)

    body = problem(response, 400)
    assert body["errors"] and "id" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/models/{long}", "model_id"),
        ("DELETE", "/v1/models/{long}/versions/1", "model_id"),
        ("POST", "/v1/models/{long}/predict", "model_id"),
        ("POST", "/v1/jobs/{long}/cancel", "job_id"),
        ("GET", "/v1/jobs?model_id={long}", "model_id"),
    ],
    ids=["model", "version", "predict", "cancel", "job-filter"],
)
def test_ten_kilobyte_ids_are_a_400_with_a_small_body(
    client: TestClient, method: str, path: str, field: str
) -> None:
    response = client.request(method, path.format(long="m" * 10_240), json=examples.PREDICT_REQUEST)

    body = problem(response, 400)
    assert fields(body) == [field]
    assert len(response.content) < 1024


def test_unknown_models_versions_and_jobs_are_404_naming_them(
    client: TestClient, stored: dict[str, Any], predict_url: str
) -> None:
    model = stored["model_id"]
    nobody, nojob = "m-000000000000", "j-000000000000"
    calls = {
        f"model '{nobody}'": [
            client.get(f"/v1/models/{nobody}/versions"),
            client.delete(f"/v1/models/{nobody}"),
            client.post(f"/v1/models/{nobody}/retrain", json={}),
        ],
        "no version 7": [
            client.get(f"/v1/models/{model}/versions/7"),
            client.delete(f"/v1/models/{model}/versions/7"),
            client.post(predict_url, params={"version": 7}, json=examples.PREDICT_REQUEST),
            client.post(f"/v1/models/{model}/retrain", json={"parent_version": 7}),
        ],
        f"job '{nojob}'": [
            client.get(f"/v1/jobs/{nojob}"),
            client.post(f"/v1/jobs/{nojob}/cancel"),
            client.get(f"/v1/jobs/{nojob}/events"),
        ],
    }

    for words, responses in calls.items():
        for response in responses:
            assert words in problem(response, 404)["detail"]


# State


def test_head_is_answered_as_get_without_the_body(
    client: TestClient, stored: dict[str, Any]
) -> None:
    # Uptime monitors and `curl -I` probe with HEAD.
    model = f"/v1/models/{stored['model_id']}"
    job = client.get("/v1/jobs", params={"model_id": stored["model_id"]}).json()["jobs"][0]
    for path in ("/healthz", "/readyz", "/v1/kinds", "/v1/models", model, f"{model}/versions/1"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))
    # The events of a finished job: the stream's headers, and the answer ends.
    events = client.head(f"/v1/jobs/{job['job_id']}/events")
    assert events.status_code == 200 and events.content == b""
    assert events.headers["content-type"].startswith("text/event-stream")
    assert client.head("/v1/models/m-0123456789ab").status_code == 404
    assert client.delete("/v1/kinds").headers["allow"] == "GET, HEAD"


def test_a_trailing_slash_is_the_same_route(
    client: TestClient, stored: dict[str, Any], predict_url: str
) -> None:
    # httpx and `curl -X POST` follow no redirect: a 307 was an empty answer.
    rows = {"rows": examples.PREDICT_ROWS}
    predicted = client.post(f"{predict_url}/", json=rows, follow_redirects=False)
    listed = client.get("/v1/models/", follow_redirects=False)
    model = client.get(f"/v1/models/{stored['model_id']}//", follow_redirects=False)

    assert predicted.status_code == 200, predicted.text
    assert predicted.json() == client.post(predict_url, json=rows).json()
    assert listed.status_code == 200 and "models" in listed.json()
    assert model.json()["model_id"] == stored["model_id"]


def test_cancelling_a_finished_job_is_a_409(client: TestClient, stored: dict[str, Any]) -> None:
    job_id = stored["lineage"]["job_id"]

    body = problem(client.post(f"/v1/jobs/{job_id}/cancel"), 409)

    assert job_id in body["detail"] and "already ended (succeeded)" in body["detail"]
    assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "succeeded"


def test_deleting_a_model_while_it_trains_is_a_409_naming_the_job(
    client: TestClient, stored: dict[str, Any]
) -> None:
    model = stored["model_id"]
    retrain = client.post(f"/v1/models/{model}/retrain", json={"hyperparameters": SLOW})
    assert retrain.status_code == 202, retrain.text
    job_id = retrain.json()["job_id"]

    try:
        whole = problem(client.delete(f"/v1/models/{model}"), 409)
        version = problem(client.delete(f"/v1/models/{model}/versions/1"), 409)
    finally:
        cancelled = client.post(f"/v1/jobs/{job_id}/cancel")

    assert job_id in whole["detail"] and job_id in version["detail"]
    assert cancelled.status_code == 200, cancelled.text
    assert sse_events(client.get(f"/v1/jobs/{job_id}/events").text)[-1][0] == "cancelled"
    assert client.get(f"/v1/models/{model}").json()["version_count"] == 1


# The connection


@contextmanager
def serving(app: FastAPI) -> Iterator[tuple[str, int]]:
    """Serve the app with uvicorn on a free loopback port in a thread; yield the address."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait(lambda: server.started, "uvicorn to start")
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def wait(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    """Poll until `condition()` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_client_that_disconnects_mid_upload_starts_no_job(
    client: TestClient,
    service: ServiceThread,
    penguins_csv: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    header, rows = penguins_csv.split(b"\n", 1)
    data = arrow_stream(header + b"\n" + rows * 30)  # about 400 KB
    scratch = Path(service.settings.data_dir) / "tmp"

    def uploading() -> bool:
        return any(path.suffix == ".arrows" for path in scratch.iterdir())

    before = job_ids(client)
    app = create_app(gateway_settings(service.target, chunk_bytes=65536))
    query = "kind=catboost&target_column=species"

    with serving(app) as (host, port), caplog.at_level(logging.INFO):
        with socket.create_connection((host, port)) as sock:
            sock.sendall(
                f"POST /v1/jobs?{query} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: {ARROW}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            )
            half = data[: len(data) // 2]
            sock.sendall(f"{len(half):x}\r\n".encode() + half + b"\r\n")
            wait(uploading, "the service to receive the upload")
        # The socket is closed without the last chunk: the upload is cut off.
        wait(lambda: not uploading(), "the service to drop the upload")
        after = httpx.get(f"http://{host}:{port}/v1/jobs", params={"page_size": 1000})

    assert after.status_code == 200
    assert [job["job_id"] for job in after.json()["jobs"]] == before
    assert "-> 500" not in caplog.text
    assert "client disconnected" in caplog.text


def test_a_full_queue_is_a_429_with_retry_after(start_service: Any, penguins_csv: bytes) -> None:
    service = start_service(max_concurrent_trainings=1, max_queued_jobs=0)
    slow = {**SPEC, "hyperparameters": json.dumps(SLOW)}

    with TestClient(create_app(gateway_settings(service.target))) as http:
        running = upload(http, penguins_csv, **slow).json()
        refused = upload(http, penguins_csv, **SPEC)
        http.post(f"/v1/jobs/{running['job_id']}/cancel")
        assert (
            sse_events(http.get(f"/v1/jobs/{running['job_id']}/events").text)[-1][0] == "cancelled"
        )
        retried = upload(http, penguins_csv, **SPEC)

    body = problem(refused, 429)
    assert refused.headers["retry-after"] == "5"
    assert "queue is full" in body["detail"]
    assert retried.status_code == 202, retried.text
