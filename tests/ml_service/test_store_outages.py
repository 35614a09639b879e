"""Shared mode when its database or object store goes away: say so, keep what can go on.

The database is the session's real PostgreSQL cluster, stopped and started again mid-test;
the object store is a moto server of the test's own, killed mid-test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlops import names
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import types_pb2 as pb

from ml_service.store import outages
from ml_service.store.database import create_engine, head_revision
from ml_service.store.errors import DatabaseUnavailable
from rest_gateway.app import create_app
from tests.backends import Postgres, Shared, free_port, run_moto
from tests.conftest import ServiceThread
from tests.ml_service.helpers import Client
from tests.ml_service.test_replicas import ROOT, start_process, until
from tests.ml_service.test_shared_mode import predict
from tests.rest_gateway.conftest import gateway_settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(channel: grpc.Channel, service: str = names.READINESS_SERVICE) -> int:
    """The service's health status under a name."""
    request = health_pb2.HealthCheckRequest(service=service)
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)


def refusal(call: Any) -> grpc.RpcError:
    """Run a call that must fail and return its error."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def names_the_database(postgres: Postgres, text: str) -> bool:
    """Tell whether a message names the database by engine and address, in plain words."""
    where = f"at 127.0.0.1:{postgres.port}"
    return "metadata database (PostgreSQL" in text and where in text and ".py" not in text


def test_only_a_database_that_does_not_answer_is_called_unreachable(postgres: Postgres) -> None:
    # A closed port: unreachable, named by address, and the password stays out of it.
    closed = create_engine(f"postgresql://mlops:secret@127.0.0.1:{free_port()}/models")
    with pytest.raises(DatabaseUnavailable) as lost, closed.connect():
        pass
    assert lost.value.message == (
        "the metadata database (PostgreSQL 'models' at 127.0.0.1:"
        f"{closed.url.port}) is unreachable; retry shortly"
    )
    assert "Connection refused" in lost.value.reason and "secret" not in lost.value.reason
    # A database that answers with an error (a row lock not available) is not "unreachable".
    engine = create_engine(postgres.create_database())
    try:
        with engine.begin() as holder:
            holder.execute(sa.text("CREATE TABLE t (n int)"))
            holder.execute(sa.text("INSERT INTO t VALUES (1)"))
        with engine.begin() as holder, engine.connect() as other:
            holder.execute(sa.text("SELECT n FROM t FOR UPDATE"))
            with pytest.raises(sa.exc.OperationalError):
                other.execute(sa.text("SELECT n FROM t FOR UPDATE NOWAIT"))
    finally:
        engine.dispose()


def test_a_database_unreachable_at_start_is_not_ready_until_it_answers(
    postgres: Postgres, shared: Shared, tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    started: list[subprocess.Popen[bytes]] = []
    try:
        with postgres.down():
            proc, target = start_process(shared, tmp_path / "a", log, wait=names.LIVENESS_SERVICE)
            started.append(proc)
            with grpc.insecure_channel(target) as channel:
                # The process lives, is not ready, and its log and its answers say why.
                until(lambda: "not ready" in log.read_text(), 10)
                line = next(ln for ln in log.read_text().splitlines() if "not ready" in ln)
                assert names_the_database(postgres, line), line
                assert "Connection refused" in line
                assert health(channel) == NOT_SERVING
                error = refusal(lambda: Client(channel).models.ListModels(ms.ListModelsRequest()))
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                assert names_the_database(postgres, error.details() or ""), error.details()
        with grpc.insecure_channel(target) as channel:
            # The database is back: ready without a restart.
            until(lambda: health(channel) == SERVING, 10)
            assert proc.poll() is None
            Client(channel).models.ListModels(ms.ListModelsRequest())
        assert "Traceback" not in log.read_text()
    finally:
        for proc in started:
            proc.kill()
            proc.wait(10)


def test_a_database_lost_while_serving(
    start_service: Any, postgres: Postgres, shared: Shared, tmp_path: Path, penguins: pa.Table
) -> None:
    settings = {"database_url": shared.database_url, "artifact_uri": shared.artifact_uri}
    service: ServiceThread = start_service(tmp_path / "a", **settings)
    rows = penguins.drop(["species"]).slice(0, 5)
    with (
        grpc.insecure_channel(service.target) as channel,
        TestClient(create_app(gateway_settings(service.target))) as http,
    ):
        client = Client(channel)
        trained = client.train(penguins, kind="logistic_regression", target_column="species")
        assert trained.state == pb.JOB_STATE_SUCCEEDED, trained.error.message
        model_id = trained.model_id
        expected = predict(channel, model_id, rows)  # now loaded, and known as the latest
        rest_rows = {"rows": rows.to_pylist()}
        assert http.post(f"/v1/models/{model_id}/predict", json=rest_rows).status_code == 200

        with postgres.down():
            # Loaded models go on answering, by gRPC and through the gateway.
            assert predict(channel, model_id, rows).equals(expected)
            assert predict(channel, model_id, rows, version=1).equals(expected)
            assert http.post(f"/v1/models/{model_id}/predict", json=rest_rows).status_code == 200
            # Writes are refused as UNAVAILABLE naming the database; nothing is half done.
            writes = {
                "train": lambda: client.create_job(
                    penguins, kind="logistic_regression", target_column="species"
                ),
                "retrain": lambda: client.retrain(model_id=model_id),
                "delete": lambda: client.models.DeleteModel(
                    ms.DeleteModelRequest(model_id=model_id)
                ),
                "delete version": lambda: client.models.DeleteModelVersion(
                    ms.DeleteModelVersionRequest(model_id=model_id, version=1)
                ),
            }
            for what, write in writes.items():
                error = refusal(write)
                assert error.code() == grpc.StatusCode.UNAVAILABLE, (what, error.details())
                assert names_the_database(postgres, error.details() or ""), error.details()
            answer = http.delete(f"/v1/models/{model_id}")
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert names_the_database(postgres, answer.json()["detail"]), answer.json()
            # Readiness follows, on the service and on the gateway's probe.
            until(lambda: health(channel) == NOT_SERVING, 5)
            assert http.get("/readyz").status_code == 503
            assert health(channel, names.LIVENESS_SERVICE) == SERVING

        until(lambda: health(channel) == SERVING, 10)
        assert http.get("/readyz").status_code == 200
        # Nothing a refused write began is listed: one model, one version, as before.
        listed = client.models.ListModels(ms.ListModelsRequest()).models
        assert [(m.model_id, m.version_count) for m in listed] == [(model_id, 1)]
        client.models.DeleteModel(ms.DeleteModelRequest(model_id=model_id))


def test_an_unreachable_object_store_refuses_training_and_loads_and_lists_nothing_half_written(
    start_service: Any,
    postgres: Postgres,
    tmp_path: Path,
    penguins: pa.Table,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with run_moto() as s3:
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        bucket = s3.create_bucket()
        settings = {"database_url": postgres.create_database(), "artifact_uri": f"s3://{bucket}/m"}
        service: ServiceThread = start_service(tmp_path / "a", **settings)
        with grpc.insecure_channel(service.target) as channel:
            client = Client(channel)
            kept = client.train(penguins, kind="logistic_regression", target_column="species")
            assert kept.state == pb.JOB_STATE_SUCCEEDED, kept.error.message
            # Whether the store goes before the claim fetches the data or before the artifact
            # lands, the job fails naming the store.
            spec = {"kind": "logistic_regression", "target_column": "species"}
            doomed = client.create_job(penguins, **spec)
            s3.stop()
            store = f"the object store s3://{bucket}/m is unreachable"

            final = client.watch(doomed.job_id, timeout=120)[-1]
            assert final.state == pb.JOB_STATE_FAILED
            assert final.error.code == "UNAVAILABLE"
            assert store in final.error.message
            # A new upload cannot be stored; a version not loaded yet cannot be loaded.
            for call in (
                lambda: client.create_job(
                    penguins, kind="logistic_regression", target_column="species"
                ),
                lambda: predict(channel, kept.model_id, penguins.drop(["species"]).slice(0, 3)),
            ):
                error = refusal(call)
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
                assert (error.details() or "").startswith(store), error.details()
                assert not re.search(r"\.py|curl|AWS Error", error.details() or "")

            # Only the version whose artifact landed is listed.
            listed = client.models.ListModels(ms.ListModelsRequest()).models
            assert [(m.model_id, m.version_count) for m in listed] == [(kept.model_id, 1)]
            refusal(lambda: client.models.GetModel(ms.GetModelRequest(model_id=doomed.model_id)))

        # A replica started while the bucket is away starts, unready, and says which store.
        late: ServiceThread = start_service(tmp_path / "b", **settings)
        with grpc.insecure_channel(late.target) as channel:
            assert health(channel) == NOT_SERVING
            error = refusal(lambda: Client(channel).models.ListModels(ms.ListModelsRequest()))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert (error.details() or "").startswith(store), error.details()


def test_a_database_too_new_found_once_it_answers_ends_the_process_in_words(
    postgres: Postgres, shared: Shared, tmp_path: Path
) -> None:
    # A newer release migrated the database; an older replica started while it was away.
    engine = create_engine(shared.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num varchar(32))"))
            conn.execute(sa.text("INSERT INTO alembic_version VALUES ('9999')"))
    finally:
        engine.dispose()
    log = tmp_path / "service.log"
    with postgres.down():
        proc, _ = start_process(shared, tmp_path / "a", log, wait=names.LIVENESS_SERVICE)
    # Waiting would not mend it: the process ends, saying why, as it does when the database
    # answers at start.
    text = ended_in_words(proc, log)
    assert text.strip().splitlines()[-1] == (
        "ml_service: the metadata database has schema revision '9999', newer than this"
        f" release knows (up to {head_revision()!r}); run a release at least as new"
    )


def ended_in_words(proc: subprocess.Popen[bytes], log: Path) -> str:
    """Wait for a service that must end by itself; its log, once it ended with 1 and no
    traceback."""
    try:
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert proc.returncode == 1, text[-2000:]
    assert "Traceback" not in text, text[-2000:]
    return text


def run_to_exit(shared: Shared, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m ml_service` on the shared store with `env` over it; return once it ends."""
    command = [sys.executable, "-m", "ml_service", "--port", str(free_port()),
               "--data-dir", str(data_dir)]  # fmt: skip
    environ = {
        **os.environ,
        **shared.s3.env,
        "MLOPS_DATABASE_URL": shared.database_url,
        "MLOPS_ARTIFACT_URI": shared.artifact_uri,
        **env,
    }
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def ends_in_words(done: subprocess.CompletedProcess[str], secret: str) -> str:
    """Check the process ended at once with one line, no traceback and no secret; return it."""
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "retry shortly" not in done.stderr and "not ready" not in done.stderr, done.stderr
    assert secret not in done.stderr + done.stdout
    return done.stderr.strip().splitlines()[-1]


@pytest.fixture
def strict_logins(postgres: Postgres) -> Iterator[None]:
    """Make the session's cluster ask `mlops_pw` for its password and refuse `mlops_refused`
    (its other users keep trust auth)."""
    hba = postgres.directory / "data" / "pg_hba.conf"
    before = hba.read_text()
    rules = "host all mlops_pw 127.0.0.1/32 scram-sha-256\n"
    rules += "host all mlops_refused 127.0.0.1/32 reject\n"
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        for role in ("mlops_pw", "mlops_refused"):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
            conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'the-right-one'")
        hba.write_text(rules + before)  # rewritten in place: the file keeps its owner
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        hba.write_text(before)
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


SECRET = "pw-Never-Shown-42"


@pytest.mark.parametrize(
    ("user", "database", "said"),
    [
        ("postgres", "no_such_db", 'database "no_such_db" does not exist; create it or correct'
         " the database name in MLOPS_DATABASE_URL"),
        ("no_such_user", None, 'role "no_such_user" does not exist; correct the user or'
         " password in MLOPS_DATABASE_URL"),
        ("mlops_pw", None, 'password authentication failed for user "mlops_pw"; correct the'
         " user or password in MLOPS_DATABASE_URL"),
        ("mlops_refused", None, 'pg_hba.conf rejects connection for host "127.0.0.1", user'
         ' "mlops_refused", database "{database}", no encryption; allow this host and user in'
         " the server's pg_hba.conf, or correct MLOPS_DATABASE_URL"),
    ],
    ids=["no such database", "no such user", "wrong password", "refused by pg_hba.conf"],
)  # fmt: skip
@pytest.mark.usefixtures("strict_logins")
def test_a_database_that_refuses_the_url_ends_the_process_in_words(
    postgres: Postgres, shared: Shared, tmp_path: Path, user: str, database: str | None, said: str
) -> None:
    # Waiting would not mend a wrong name or password: the process ends at start, saying
    # which database refused what and what to correct, and never shows the password.
    database = database or shared.database_url.rsplit("/", 1)[1]
    url = f"postgresql://{user}:{SECRET}@127.0.0.1:{postgres.port}/{database}"
    line = ends_in_words(run_to_exit(shared, tmp_path / "a", MLOPS_DATABASE_URL=url), SECRET)
    assert line == (
        f"ml_service: the metadata database (PostgreSQL {database!r} at 127.0.0.1:"
        f"{postgres.port}) refused the connection: " + said.format(database=database)
    )


def test_a_database_that_refuses_the_url_once_it_answers_ends_the_process_in_words(
    postgres: Postgres, shared: Shared, tmp_path: Path
) -> None:
    # Started while the database was away: unready, waiting; once it answers "no such
    # database", the process ends as it would have at start.
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{postgres.port}/no_such_db"
    log = tmp_path / "service.log"
    wrong = Shared(url, shared.artifact_uri, shared.s3)
    with postgres.down():
        proc, _ = start_process(wrong, tmp_path / "a", log, wait=names.LIVENESS_SERVICE)
        until(lambda: "not ready" in log.read_text(), 10)
    text = ended_in_words(proc, log)
    assert SECRET not in text, text[-2000:]
    assert text.strip().splitlines()[-1] == (
        f"ml_service: the metadata database (PostgreSQL 'no_such_db' at 127.0.0.1:"
        f'{postgres.port}) refused the connection: database "no_such_db" does not exist;'
        " create it or correct the database name in MLOPS_DATABASE_URL"
    )


def test_an_object_store_without_the_bucket_ends_the_process_in_words(
    shared: Shared, tmp_path: Path
) -> None:
    # moto answers, and has no such bucket: a misspelt MLOPS_ARTIFACT_URI, not an outage.
    uri = "s3://no-such-bucket-0f3a/mlops"
    done = run_to_exit(shared, tmp_path / "a", MLOPS_ARTIFACT_URI=uri, AWS_SECRET_ACCESS_KEY=SECRET)
    assert ends_in_words(done, SECRET) == (
        f"ml_service: the object store {uri} refused the settings: the bucket does not exist;"
        " create it or correct the bucket in MLOPS_ARTIFACT_URI"
    )


def test_an_object_store_refusing_the_credentials_ends_the_process_in_words(
    shared: Shared, tmp_path: Path
) -> None:
    # An endpoint that checks keys and knows none of them, as S3 given a wrong key.
    with run_moto(checks_credentials=True) as strict:
        env = {**strict.env, "AWS_ACCESS_KEY_ID": "AKIAWRONGKEY", "AWS_SECRET_ACCESS_KEY": SECRET}
        done = run_to_exit(shared, tmp_path / "a", **env)
    assert ends_in_words(done, SECRET) == (
        f"ml_service: the object store {shared.artifact_uri} refused the settings: access is"
        " denied; correct the AWS credentials or grant them the bucket"
    )


def test_a_database_url_without_a_host_is_named_as_libpq_reads_it() -> None:
    # Was "PostgreSQL None at None:5432" in every line of a wait for it.
    named = outages.database_name(sa.make_url("postgresql:///mlops"))
    assert named == "the metadata database (PostgreSQL 'mlops' at the local socket or PGHOST)"
    assert outages.database_name(sa.make_url("postgresql://")) == (
        "the metadata database (PostgreSQL at the local socket or PGHOST)"
    )
    assert "secret" not in outages.database_name(sa.make_url("postgresql://u:secret@db/m"))
