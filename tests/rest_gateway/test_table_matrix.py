"""The generated-table matrix through the gateway, for a sample of seeds: CSV in, JSON and CSV out.

A user uploads the table as CSV, so the model is trained on what the gateway reads from that
CSV (its own types: int64, double, bool, string; empty fields missing), and the reference
is fitted on the same parsed table. JSON answers keep the shape
`{"label": ..., "probabilities": {"<class>": p}}` whatever the Arrow output columns are.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from fastapi.testclient import TestClient

from bench import table_reference
from bench.table_check import KINDS, TOLERANCE, check_predictions, has_allow_many_classes
from bench.table_check import hyperparameters as settings_for
from bench.tables import Case, generate
from rest_gateway.tabular import CSV_CONVERT

#: A sample with plain, awkward-name, many-class, all-numeric and all-categorical tables.
REST_SEEDS = (2, 7, 8, 9, 14, 21)
CSV_READ = CSV_CONVERT


def to_csv(table: pa.Table) -> bytes:
    """Write a table as a user's CSV file."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return bytes(sink.getvalue())


def as_uploaded(case: Case, data: bytes) -> Case:
    """Return the case as the gateway reads its CSV; more refusals become legitimate."""
    table = pacsv.read_csv(io.BytesIO(data), convert_options=CSV_READ)
    refusable = set(case.refusable)
    # An empty-string class reads back as missing: the CSV cannot tell the two apart.
    if table.column(case.target).null_count:
        refusable.add("target_column")
    return dataclasses.replace(case, table=table, refusable=frozenset(refusable))


def train(client: TestClient, case: Case, kind: str, data: bytes) -> tuple[int, dict[str, Any]]:
    """Upload the CSV and wait for the job; return the status code and body."""
    form = {
        "kind": kind,
        "target_column": case.target,
        "holdout_fraction": "0",
        "seed": str(case.seed),
        "hyperparameters": json.dumps(settings_for(case, kind)),
    }
    if case.allow_many_classes and has_allow_many_classes():
        form["allow_many_classes"] = "true"
    response = client.post(
        "/v1/jobs?wait=true", files={"file": ("table.csv", data, "text/csv")}, data=form
    )
    return response.status_code, response.json()


def json_problems(
    body: dict[str, Any], classes: list[str], expected: npt.NDArray[np.float64]
) -> list[str]:
    """Compare JSON predictions with the reference."""
    rows = body["predictions"]
    if len(rows) != len(expected):
        return [f"JSON: {len(rows)} predictions for {len(expected)} rows"]
    problems = []
    for i, row in enumerate(rows):
        if sorted(row["probabilities"]) != sorted(classes):
            return [f"JSON: row {i} has probabilities for {sorted(row['probabilities'])[:6]}"]
        got = np.array([row["probabilities"][c] for c in classes], dtype=float)
        if np.max(np.abs(got - expected[i])) > TOLERANCE:
            problems.append(f"JSON: row {i} probabilities {got} != {expected[i]}")
        best = np.sort(expected[i])
        label = row["label"]
        text = json.dumps(label) if isinstance(label, bool) else str(label)
        if best[-1] - best[-2] > TOLERANCE and text != classes[int(expected[i].argmax())]:
            problems.append(f"JSON: row {i} label {label!r}")
    return problems[:3]


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as a user sends them in JSON: missing (and NaN) as null."""
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in table.to_pylist()
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", REST_SEEDS)
def test_csv_upload_trains_or_is_refused_and_predicts_like_the_library(
    client: TestClient, seed: int, kind: str
) -> None:
    data = to_csv(generate(seed).table)
    case = as_uploaded(generate(seed), data)
    status, body = train(client, case, kind, data)
    if status == 400:
        fields = [error.get("field") for error in body.get("errors", [])]
        assert fields, f"{case.describe()}: 400 without a field: {body}"
        assert "*" in case.refusable or set(fields) <= case.refusable, (
            f"{case.describe()}: refused a table it should train: {body}"
        )
        return
    assert status == 201, f"{case.describe()}: {status} {body}"
    threads = max(1, (os.cpu_count() or 1) // 2)  # the service's per-job threads (2 slots)
    classes, expected = table_reference.fit_predict(
        case.table, case.target, kind, settings_for(case, kind), case.seed, threads
    )
    assert body["signature"]["classes"] == classes
    assert [f["name"] for f in body["signature"]["features"]] == case.features
    rows = case.table.drop_columns([case.target])
    url = f"/v1/models/{body['model_id']}/predict"
    answer = client.post(url, json={"rows": json_rows(rows)})
    assert answer.status_code == 200, f"{case.describe()}: JSON predict: {answer.text[:600]}"
    problems = json_problems(answer.json(), classes, expected)
    answer = client.post(
        url, files={"file": ("rows.csv", to_csv(rows), "text/csv")}, headers={"Accept": "text/csv"}
    )
    assert answer.status_code == 200, f"{case.describe()}: CSV predict: {answer.text[:600]}"
    # Labels as text: CSV carries no types, and reading "1" back as a number says nothing.
    options = pacsv.ConvertOptions(column_types={"label": pa.string()}, strings_can_be_null=False)
    table = pacsv.read_csv(io.BytesIO(answer.content), convert_options=options)
    # The CSV answer's label type is whatever the CSV reader infers, so compare as text.
    csv_case = dataclasses.replace(
        case,
        table=case.table.set_column(
            case.table.column_names.index(case.target),
            case.target,
            table_reference.as_text(case.table.column(case.target)).fill_null(""),
        ),
    )
    problems += check_predictions(table, csv_case, classes, expected, "CSV")
    assert not problems, f"{case.describe()}\n" + "\n".join(problems)
