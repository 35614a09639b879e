"""Tables unlike the friendly datasets, over REST: the same answers as over gRPC (issue 10)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient


def csv_of(frame: pd.DataFrame, index: bool = False) -> bytes:
    return frame.to_csv(index=index).encode()


def train(client: TestClient, csv: bytes, kind: str, target: str, **fields: str) -> Any:
    return client.post(
        "/v1/jobs?wait=true",
        files={"file": ("table.csv", csv, "text/csv")},
        data={"kind": kind, "target_column": target, **fields},
    )


def test_a_class_named_label_keys_json_answers_without_ambiguity(client: TestClient) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=60), "y": ["label", "proba_label", "other"] * 20})
    trained = train(client, csv_of(frame), "logistic_regression", "y")
    assert trained.status_code == 201, trained.text

    url = f"/v1/models/{trained.json()['model_id']}/predict"
    answer = client.post(url, json={"rows": [{"x": 0.5}, {"x": -2.0}]})

    assert answer.status_code == 200, answer.text
    for prediction in answer.json()["predictions"]:
        assert sorted(prediction["probabilities"]) == ["label", "other", "proba_label"]
        assert abs(sum(prediction["probabilities"].values()) - 1) < 1e-9
    as_csv = client.post(url, json={"rows": [{"x": 0.5}]}, headers={"accept": "text/csv"})
    header = as_csv.text.splitlines()[0]
    assert header == '"label","proba_label","proba_other","proba_proba_label"'


def test_a_pandas_csv_with_its_index_trains_and_predicts(client: TestClient) -> None:
    frame = pd.DataFrame({"size": range(30), "colour": ["red", "blue", "green"] * 10})
    frame["y"] = ["a", "b"] * 15
    trained = train(
        client,
        csv_of(frame, index=True),
        "catboost",
        "y",
        hyperparameters=json.dumps({"iterations": 10}),
    )
    assert trained.status_code == 201, trained.text
    assert trained.json()["signature"]["features"][0]["name"] == ""

    url = f"/v1/models/{trained.json()['model_id']}/predict"
    rows = io.BytesIO(csv_of(frame.drop(columns=["y"]), index=True))
    answer = client.post(url, files={"file": ("rows.csv", rows, "text/csv")})
    assert answer.status_code == 200, answer.text
    assert len(answer.text.splitlines()) == 31


def test_a_column_of_numbers_with_text_past_the_first_block_trains_as_text(
    client: TestClient,
) -> None:
    # The gateway streams a CSV block by block (1 MiB), each column typed from its first
    # block; `mlops train` reads the whole file. Both must make the same table of it.
    rows = 30_000
    frame = pd.DataFrame(
        {"code": [str(i % 7) for i in range(rows)], "note": "n" * 40, "y": ["a", "b"] * (rows // 2)}
    )
    frame.loc[rows - 5, "code"] = "unknown"  # on the file's line 29,997, past 1 MiB
    csv = csv_of(frame)
    assert csv.index(b"unknown") > 1 << 20
    jobs = len(client.get("/v1/jobs").json()["jobs"])
    for sent in (
        {
            "files": {"file": ("table.csv", csv, "text/csv")},
            "data": {"kind": "logistic_regression", "target_column": "y"},
            "params": {"wait": "true"},
        },
        {
            "content": csv,
            "headers": {"content-type": "text/csv"},
            "params": {"wait": "true", "kind": "logistic_regression", "target_column": "y"},
        },
    ):
        trained = client.post("/v1/jobs", **sent)
        assert trained.status_code == 201, trained.text
        code, _ = trained.json()["signature"]["features"]
        assert (code["name"], code["feature_type"], code["arrow_type"]) == (
            "code",
            "categorical",
            "string",
        )
        assert "unknown" in code["categories"]
    # Each upload was dropped once and sent again: one job each.
    assert len(client.get("/v1/jobs").json()["jobs"]) == jobs + 2


def test_predicting_a_csv_whose_column_turns_to_text_answers_every_row(
    client: TestClient,
) -> None:
    # Predictions go batch by batch, so the rows already sent are skipped on the second
    # read, and the answers are those of the same rows sent as Arrow with the column as text.
    rows = 30_000
    frame = pd.DataFrame({"code": [str(i % 7) for i in range(rows)], "note": "n" * 40})
    frame["y"] = np.where(frame["code"].isin(["1", "2", "3"]), "a", "b")
    frame.loc[rows - 5, "code"] = "unknown"
    trained = train(client, csv_of(frame), "logistic_regression", "y")
    assert trained.status_code == 201, trained.text
    url = f"/v1/models/{trained.json()['model_id']}/predict"

    answer = client.post(url, content=csv_of(frame.drop(columns=["y"])),
                         headers={"content-type": "text/csv", "accept": "text/csv"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    got = pd.read_csv(io.StringIO(answer.text))
    assert len(got) == rows
    assert (got["label"] == frame["y"]).all()  # the model learnt the rule exactly


def test_huge_values_are_a_400_naming_the_column(client: TestClient) -> None:
    frame = pd.DataFrame({"b": np.arange(60) % 7 * 0.01, "y": ["p", "q", "r"] * 20})
    trained = train(client, csv_of(frame), "logistic_regression", "y")
    assert trained.status_code == 201, trained.text

    url = f"/v1/models/{trained.json()['model_id']}/predict"
    answer = client.post(url, json={"rows": [{"b": 0.02}, {"b": 1.79e308}]})

    assert answer.status_code == 400, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "columns.b" and "row 1" in error["description"]


def test_a_continuous_target_is_refused_unless_allowed(client: TestClient) -> None:
    frame = pd.DataFrame({"x": np.arange(120.0), "age": np.arange(120) % 60})
    refused = train(client, csv_of(frame), "logistic_regression", "age")

    assert refused.status_code == 400, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == "target_column" and "allow_many_classes" in error["description"]
    allowed = train(client, csv_of(frame), "logistic_regression", "age", allow_many_classes="true")
    assert allowed.status_code == 201, allowed.text
    assert len(allowed.json()["signature"]["classes"]) == 60
