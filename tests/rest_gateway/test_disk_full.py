"""A full disk behind the gateway: 507 Insufficient Storage naming what did not fit, and a
training that cannot save its model still ends, for `?wait=true` and the event stream."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ServiceThread
from tests.ml_service.test_disk_full import SAVE_FAILED, fail_puts_under, leftovers
from tests.rest_gateway.conftest import FAST
from tests.rest_gateway.test_jobs import sse_events

FORM = {"kind": "catboost", "target_column": "species", "hyperparameters": json.dumps(FAST)}


def train(client: TestClient, csv: bytes, wait: bool) -> Any:
    """Post penguins as a training upload."""
    return client.post(
        f"/v1/jobs?wait={str(wait).lower()}",
        files={"file": ("penguins.csv", csv, "text/csv")},
        data=FORM,
    )


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_an_upload_on_a_full_disk_is_a_507_naming_the_dataset(
    client: TestClient,
    service: ServiceThread,
    penguins_csv: bytes,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    # Datasets are stored by content, so each case sends bytes not stored before.
    csv = penguins_csv.rstrip(b"\n").rsplit(b"\n", 1 if code == errno.ENOSPC else 2)[0]
    fail_puts_under(monkeypatch, "datasets/", code)
    response = train(client, csv, wait=False)
    assert response.status_code == 507, response.text
    problem = response.json()
    assert problem["detail"] == "no space left for the dataset"
    assert problem["code"] == "RESOURCE_EXHAUSTED"
    assert [p for p in leftovers(Path(service.settings.data_dir)) if p.startswith("tmp/")] == []
    monkeypatch.undo()
    assert train(client, csv, wait=True).status_code == 201


def test_a_model_that_cannot_be_saved_ends_the_wait_and_the_event_stream(
    client: TestClient, penguins_csv: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_puts_under(monkeypatch, "artifacts/", errno.ENOSPC)
    waited = train(client, penguins_csv, wait=True)
    assert waited.status_code == 507, waited.text
    assert SAVE_FAILED in waited.json()["detail"]

    started = train(client, penguins_csv, wait=False)
    assert started.status_code == 202, started.text
    events = client.get(f"/v1/jobs/{started.json()['job_id']}/events")
    name, final = sse_events(events.text)[-1]
    assert name == "failed"
    assert final["error"]["message"] == SAVE_FAILED
    assert client.get(started.headers["location"]).json()["state"] == "failed"
