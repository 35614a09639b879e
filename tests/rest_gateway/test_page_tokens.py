"""Forged page tokens over REST: a 400 naming `page_token`, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ml_service.store.paging import encode_token

LISTS = {
    "/v1/models": "models",
    "/v1/models/m-1/versions": "versions/m-1",
    "/v1/jobs": "jobs/",
}


@pytest.mark.parametrize("key", [2**63, 2**64, -1])
@pytest.mark.parametrize("url", list(LISTS))
def test_a_forged_out_of_range_token_is_a_400(client: TestClient, url: str, key: int) -> None:
    response = client.get(url, params={"page_token": encode_token(LISTS[url], key)})
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["page_token"]
    assert client.get("/v1/models").status_code == 200
