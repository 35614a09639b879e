"""The gateway client: problems in plain words, an unreachable gateway, SSE, request shapes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.ui.fakes import MODEL, URL, FakeGateway, fitting, job, problem, sse
from ui.client import GatewayClient, GatewayError, GatewayUnreachable


def test_a_problem_reads_as_its_detail_plus_unnamed_field_errors(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    gateway.routes[("GET", "/v1/kinds")] = lambda _: problem(
        400,
        "hyperparameters.depth: must be at most 16, got 99",
        [("hyperparameters.depth", "must be at most 16, got 99"), ("seed", "must be a number")],
    )
    with pytest.raises(GatewayError) as caught:
        client.kinds()
    assert caught.value.message == (
        "hyperparameters.depth: must be at most 16, got 99. seed: must be a number."
    )


def test_a_very_long_problem_is_cut_to_its_beginning(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    columns = ", ".join(f"'column_{i}'" for i in range(200))
    errors = [(f"feature_types.f{i}", f"not in the data; columns: {columns}") for i in range(9)]
    gateway.routes[("GET", "/v1/kinds")] = lambda _: problem(400, "; ".join(e[1] for e in errors))
    with pytest.raises(GatewayError) as caught:
        client.kinds()
    assert caught.value.message.startswith("not in the data; columns: 'column_0', ")
    assert len(caught.value.message) <= 602 and caught.value.message.endswith(" …")


def test_an_answer_that_is_not_understood_says_so(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    gateway.routes[("POST", "/v1/jobs/j-1/cancel")] = lambda _: httpx.Response(200, json={})
    with pytest.raises(GatewayError, match="answer to POST /v1/jobs/j-1/cancel was not understood"):
        client.cancel("j-1")


def test_an_unreachable_gateway_is_named_and_the_client_recovers(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    gateway.down = True
    with pytest.raises(GatewayUnreachable) as caught:
        client.models()
    assert caught.value.message.startswith(f"The gateway at {URL} is not reachable")
    assert "keeps working once it is back" in caught.value.message
    gateway.down = False
    assert [m.model_id for m in client.models()] == ["m-1"]


def test_a_proxy_error_page_still_gives_a_plain_message(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    gateway.routes[("GET", "/v1/models")] = lambda _: httpx.Response(502, text="<html>bad</html>")
    with pytest.raises(GatewayError, match="The gateway answered 502 Bad Gateway"):
        client.models()


def test_models_and_versions_follow_every_page(gateway: FakeGateway, client: GatewayClient) -> None:
    other = {**MODEL, "model_id": "m-2"}

    def pages(request: httpx.Request) -> httpx.Response:
        if request.url.params["page_token"] == "":
            return httpx.Response(200, json={"models": [other], "next_page_token": "t2"})
        return httpx.Response(200, json={"models": [MODEL]})

    gateway.routes[("GET", "/v1/models")] = pages
    assert [m.model_id for m in client.models()] == ["m-2", "m-1"]


def test_events_skip_pings_and_end_with_the_final_state(
    gateway: FakeGateway, client: GatewayClient
) -> None:
    final = job("succeeded", fraction=1.0)
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse(
        [job("queued"), fitting(5, 10), final]
    )
    states = [(j.state, j.progress.iteration) for j in client.events("j-1")]
    assert states == [("queued", 0), ("running", 5), ("succeeded", 0)]
    assert gateway.last("GET", "/v1/jobs/j-1/events").headers["accept"] == "text/event-stream"


def test_an_error_event_raises_its_problem(gateway: FakeGateway, client: GatewayClient) -> None:
    body = {"title": "Service unavailable", "status": 503, "detail": "The model service left."}
    text = f"event: running\ndata: {json.dumps(fitting(1, 2))}\n\nevent: error\n"
    text += f"data: {json.dumps(body)}\n\n"
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: httpx.Response(200, text=text)
    events = client.events("j-1")
    assert next(events).state == "running"
    with pytest.raises(GatewayError, match="The model service left"):
        next(events)


def test_train_uploads_the_csv_with_the_spec_as_form_fields(
    gateway: FakeGateway, client: GatewayClient, penguins: Path
) -> None:
    gateway.routes[("POST", "/v1/jobs")] = lambda _: httpx.Response(202, json=job("queued"))
    spec = {"kind": "catboost", "target_column": "species", "hyperparameters": {"depth": 4}}
    assert client.train(penguins, {**spec, "seed": None}).state == "queued"
    body = gateway.last("POST", "/v1/jobs").read().decode()
    assert 'name="hyperparameters"\r\n\r\n{"depth": 4}' in body
    assert 'name="target_column"\r\n\r\nspecies' in body
    assert 'name="seed"' not in body  # left out, so the gateway's default applies
    assert 'filename="penguins.csv"' in body and "Adelie,Torgersen" in body


def test_retrain_without_data_sends_json(gateway: FakeGateway, client: GatewayClient) -> None:
    gateway.routes[("POST", "/v1/models/m-1/retrain")] = lambda _: httpx.Response(
        202, json=job("queued")
    )
    client.retrain("m-1", None, {"parent_version": 2, "hyperparameters": {"iterations": 5}})
    request = gateway.last("POST", "/v1/models/m-1/retrain")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.read()) == {"parent_version": 2, "hyperparameters": {"iterations": 5}}


def test_predict_sends_a_csv_and_asks_for_json(gateway: FakeGateway, client: GatewayClient) -> None:
    answer = {"model_id": "m-1", "version": 2, "predictions": []}
    gateway.routes[("POST", "/v1/models/m-1/predict")] = lambda _: httpx.Response(200, json=answer)
    assert client.predict("m-1", 0, b"island\nBiscoe\n").version == 2
    request = gateway.last("POST", "/v1/models/m-1/predict")
    assert request.headers["accept"] == "application/json"
    assert request.url.params["version"] == "0"
    assert b"island\nBiscoe\n" in request.read()
