"""Every error class end to end, as RFC 9457 problem details."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from mlops.v1 import types_pb2 as pb

from mlops_client.ipc import to_ipc
from rest_gateway import examples
from rest_gateway.app import create_app
from rest_gateway.problems import DETAILS_KEY, from_rpc_error
from tests.ml_service.helpers import Client as GrpcClient
from tests.ml_service.helpers import violations
from tests.rest_gateway.conftest import FAST, gateway_settings

SPEC_FIELDS = {
    "kind": "catboost",
    "target_column": "species",
    "hyperparameters": json.dumps(FAST),
}

PROBLEM = "application/problem+json"


def problem(response: Any, status: int) -> dict[str, Any]:
    """Check a problem response's status and shape, and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:mlops:problem:")
    assert body["title"] and body["detail"]
    return body


def upload(client: TestClient, csv: bytes, **fields: str) -> Any:
    """Post a multipart training upload."""
    return client.post("/v1/jobs", files={"file": ("data.csv", csv, "text/csv")}, data=fields)


def test_service_field_violations_become_400_errors(
    client: TestClient, penguins_csv: bytes
) -> None:
    hyperparameters = json.dumps({"iterations": -5, "depth": "deep"})

    response = upload(
        client,
        penguins_csv,
        kind="catboost",
        target_column="species",
        hyperparameters=hyperparameters,
    )

    body = problem(response, 400)
    assert body["code"] == "INVALID_ARGUMENT"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"hyperparameters.iterations", "hyperparameters.depth"}


def test_gateway_validation_is_a_400_with_the_same_shape(client: TestClient) -> None:
    # Shapes HTTP and the wire decide: a seed beyond int64, a list where a value goes.
    body = {**examples.TRAINING_REQUEST, "seed": 2**70, "rows": [{"a": [1]}]}

    response = client.post("/v1/jobs", json=body)

    fields = {e["field"] for e in problem(response, 400)["errors"]}
    assert "seed" in fields
    assert any(field.startswith("rows.0.a") for field in fields)
    page = problem(client.get("/v1/models", params={"page_size": -1}), 400)
    assert page["errors"][0]["field"] == "page_size"
    missing = problem(upload(client, b"a,b\n1,2\n", kind="catboost"), 400)
    assert missing["errors"][0]["field"] == "target_column"


def test_bad_csv_and_bad_json_fields_name_the_field(client: TestClient) -> None:
    ragged = upload(client, b"a,b\n1,2,3\n", kind="catboost", target_column="b")
    not_json = upload(
        client, b"a,b\n1,2\n", kind="catboost", target_column="b", hyperparameters="{nope"
    )

    assert problem(ragged, 400)["errors"][0]["field"] == "file"
    assert problem(not_json, 400)["errors"][0]["field"] == "hyperparameters"


def test_unknown_resources_are_404(client: TestClient) -> None:
    for path in ("/v1/models/m-000000000000", "/v1/jobs/j-000000000000", "/v1/nowhere"):
        problem(client.get(path), 404)
    problem(client.get("/v1/jobs/j-000000000000/events"), 404)
    problem(client.post("/v1/models/m-000000000000/predict", json=examples.PREDICT_REQUEST), 404)


def test_wrong_method_and_media_type(client: TestClient) -> None:
    not_allowed = client.patch("/v1/jobs")
    unsupported = client.post("/v1/jobs", content=b"<a/>", headers={"content-type": "text/xml"})

    problem(not_allowed, 405)
    assert not_allowed.headers["allow"] == "GET, HEAD, POST"
    problem(unsupported, 415)


def test_a_body_over_the_cap_is_413_with_or_without_content_length(
    service: Any, penguins_csv: bytes
) -> None:
    settings = gateway_settings(service.target, max_body_bytes=4096, max_json_bytes=1024)
    params = {"kind": "catboost", "target_column": "species"}

    def chunks() -> Iterator[bytes]:
        yield from (penguins_csv[i : i + 1000] for i in range(0, len(penguins_csv), 1000))

    with TestClient(create_app(settings)) as small:
        sized = small.post(
            "/v1/jobs", params=params, content=penguins_csv, headers={"content-type": "text/csv"}
        )
        chunked = small.post(
            "/v1/jobs", params=params, content=chunks(), headers={"content-type": "text/csv"}
        )
        rows = small.post("/v1/jobs", json=examples.TRAINING_REQUEST)

    assert "4096" in problem(sized, 413)["detail"]
    problem(chunked, 413)
    assert "send larger tables as CSV" in problem(rows, 413)["detail"]


def test_service_limits_are_413(start_service: Any, penguins_csv: bytes) -> None:
    service = start_service(max_upload_rows=10)
    with TestClient(create_app(gateway_settings(service.target))) as http:
        response = upload(
            http,
            penguins_csv,
            kind="catboost",
            target_column="species",
            hyperparameters=json.dumps(FAST),
        )

    assert problem(response, 413)["code"] == "RESOURCE_EXHAUSTED"


def test_waiting_past_the_deadline_is_504_naming_the_job(service: Any) -> None:
    settings = gateway_settings(service.target, wait_timeout_seconds=0.05)
    with TestClient(create_app(settings)) as http:
        response = http.post("/v1/jobs?wait=true", json=examples.TRAINING_REQUEST)
        body = problem(response, 504)
        job_id = body["detail"].split("/v1/jobs/")[1].rstrip(".")
        assert http.get(f"/v1/jobs/{job_id}").status_code == 200


class ExplodingChannel:
    """A channel whose every call fails with an exception the gateway does not know."""

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret path /srv/internal")

        return call

    unary_stream = stream_unary = stream_stream = unary_unary

    async def close(self) -> None:
        """Nothing to close."""


def test_an_unknown_failure_is_500_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(gateway_settings("unused:1"), channel_factory=lambda _: ExplodingChannel())  # type: ignore[arg-type, return-value]

    with TestClient(app) as http:
        response = http.get("/v1/kinds")

    body = problem(response, 500)
    assert body["detail"] == "internal error"
    assert "secret" not in response.text
    assert "secret path" in caplog.text  # the traceback is logged for operators


def rpc_error(code: grpc.StatusCode, message: str, *details: Any) -> grpc.aio.AioRpcError:
    """Build a failed call's error the way a service with rich status sends it."""
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        status.details.add().Pack(detail)
    metadata = grpc.aio.Metadata((DETAILS_KEY, status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), metadata, message)


def test_the_one_table_maps_codes_and_rich_details() -> None:
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3))
    queue_full = from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full", retry))
    too_big = from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many rows"))
    busy = from_rpc_error(rpc_error(grpc.StatusCode.ABORTED, "try again"))
    transport = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "ipv4:10.0.0.7:50051"
    )

    assert (queue_full.status, queue_full.headers["Retry-After"]) == (429, "3")
    assert (too_big.status, too_big.detail) == (413, "too many rows")
    assert busy.status == 409
    assert from_rpc_error(transport).status == 503
    assert "10.0.0.7" not in from_rpc_error(transport).detail


def test_a_malformed_id_is_a_400_before_any_call(client: TestClient) -> None:
    body = problem(client.get("/v1/models/-leading-dash"), 400)

    assert body["errors"][0]["field"] == "model_id"
    assert problem(client.get("/v1/jobs", params={"model_id": "a b"}), 400)["errors"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "n" * 201}, "name"),
        ({"description": "d" * 2001}, "description"),
        ({"holdout_fraction": "0.95"}, "holdout_fraction"),
        ({"resources": '{"cpus": 0}'}, "resources.cpus"),
        ({"resources": '{"cpus": 1000}'}, "resources.cpus"),
        ({"resources": '{"memory_mb": 512}'}, "resources.memory_mb"),
    ],
    ids=["long-name", "long-description", "holdout", "no-cpus", "too-many-cpus", "memory"],
)
def test_the_service_is_the_rulebook_same_words_on_both_transports(
    client: TestClient, service: Any, penguins_csv: bytes, fields: dict[str, str], field: str
) -> None:
    over_rest = problem(upload(client, penguins_csv, **SPEC_FIELDS, **fields), 400)

    spec = {**SPEC_FIELDS, **fields}
    if "holdout_fraction" in spec:
        spec["holdout_fraction"] = float(spec["holdout_fraction"])  # type: ignore[assignment]
    if "resources" in spec:
        resources = pb.TrainingResources(**json.loads(spec["resources"]))
        spec["resources"] = resources  # type: ignore[assignment]
    spec.pop("hyperparameters")
    with grpc.insecure_channel(service.target) as channel, pytest.raises(grpc.RpcError) as error:
        GrpcClient(channel).create_job(None, **spec)
    rest = {e["field"]: e["description"] for e in over_rest["errors"]}
    assert rest == violations(error.value) and field in rest


def test_ids_are_checked_by_the_service_in_its_own_words(client: TestClient) -> None:
    body = problem(client.get("/v1/models/bad%20id!"), 400)
    assert body["errors"][0]["field"] == "model_id"


def test_tables_wider_than_the_column_cap_are_413(
    service: Any, penguins_model: dict[str, Any], penguins_csv: bytes
) -> None:
    # Arrow types each column of JSON rows for ~1.5 kB: a 14 MB row of a million keys took
    # the gateway to 1.5 GB and held its event loop for 9 s. Its CSV reader takes ~9 kB a
    # column before any row: a 1.5 MB CSV of 120,000 columns took 1.1 GB. The cap is 50
    # columns here.
    settings = gateway_settings(service.target, max_columns=50)
    extra = {f"extra_{i}": 0 for i in range(50)}
    wide = [{**row, **extra} for row in examples.PREDICT_ROWS]
    header, *lines = penguins_csv.decode().splitlines()
    padding = ",0" * 50
    wide_csv = "\n".join(
        [header + "".join(f",extra_{i}" for i in range(50)), *(line + padding for line in lines)]
    ).encode()
    url = f"/v1/models/{penguins_model['model_id']}/predict"
    csv = {"content-type": "text/csv"}
    spec = {"kind": "catboost", "target_column": "species"}
    training = {
        **examples.TRAINING_REQUEST,
        "rows": [{**r, **extra} for r in examples.TRAINING_ROWS],
    }
    with TestClient(create_app(settings)) as small:
        refused = {
            "json predict": small.post(url, json={"rows": wide}),
            "json training": small.post("/v1/jobs", json=training),
            "csv predict": small.post(url, content=wide_csv, headers=csv),
            "csv file predict": small.post(url, files={"file": ("p.csv", wide_csv, "text/csv")}),
            "csv training": small.post("/v1/jobs", params=spec, content=wide_csv, headers=csv),
        }
        narrow = small.post(url, json=examples.PREDICT_REQUEST)
        narrow_csv = small.post(url, content=penguins_csv, headers=csv)
    for what, response in refused.items():
        detail = problem(response, 413)["detail"]
        assert "limited to 50 columns (MLOPS_GATEWAY_MAX_COLUMNS)" in detail, what
        assert "as Arrow IPC" in detail
    assert narrow.status_code == 200 and narrow_csv.status_code == 200


def test_an_arrow_body_to_predict_larger_than_a_message_is_413_before_it_is_held(
    service: Any, penguins_model: dict[str, Any]
) -> None:
    # A predict body goes on as one gRPC message, which could not hold it; a gzip of it
    # was inflated to the 512 MiB body cap first (300 kB asked for 300 MB).
    settings = gateway_settings(service.target, max_message_bytes=1024 * 1024)
    rows = pa.table({"body_mass_g": pa.array([3750.0] * 200_000)})  # 1.6 MB
    url = f"/v1/models/{penguins_model['model_id']}/predict"
    arrow = {"content-type": "application/vnd.apache.arrow.stream"}
    with TestClient(create_app(settings)) as small:
        refused = [
            small.post(url, content=to_ipc(rows), headers=arrow),
            small.post(
                url,
                content=gzip.compress(to_ipc(rows)),
                headers={**arrow, "content-encoding": "gzip"},
            ),
        ]
    for response in refused:
        detail = problem(response, 413)["detail"]
        assert "one gRPC message: it is limited to 1048576 bytes" in detail
