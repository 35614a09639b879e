"""The `mlops` command through its real entry point, as a subprocess against a real service."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import mlops_client as mc
from mlops_client import Client, ModelVersion
from tests.conftest import DATA_DIR, ServiceThread
from tests.mlops_client.conftest import PENGUINS

MLOPS = str(Path(sys.executable).parent / "mlops")


def env(service: ServiceThread) -> dict[str, str]:
    """The environment a user would set: where the service is."""
    return {**os.environ, "MLOPS_TARGET": service.target, "TERM": "xterm-256color"}


def mlops(service: ServiceThread, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `mlops ARGS` with pipes (not a terminal) and return what it did."""
    return subprocess.run(
        [MLOPS, *args], env=env(service), capture_output=True, text=True, timeout=120
    )


def test_train_without_a_terminal_prints_plain_progress_lines(service: ServiceThread) -> None:
    done = mlops(service, "train", str(PENGUINS), "--kind", "catboost", "--target", "species",
                 "-p", "iterations=30", "--name", "cli")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr  # no colours, no cursor movement
    assert "\r" not in done.stderr
    assert "fitting" in done.stderr
    assert "iteration" in done.stderr
    assert "holdout accuracy" in done.stdout


def test_predict_a_csv_into_a_csv(
    service: ServiceThread, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    version = trained["logistic_regression"]
    done = mlops(service, "predict", version.ref, str(PENGUINS), "-o", str(out),
                 "--batch-rows", "100")  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = pacsv.read_csv(out)
    assert answers.num_rows == 344
    assert answers.column_names[0] == "label"
    assert answers.num_columns == 1 + len(version.signature.classes)
    assert "344 rows predicted" in done.stderr
    # Was "0 rows predicted" and success: no batch of -5 rows was ever read.
    refused = mlops(service, "predict", version.ref, str(PENGUINS), "-o", str(out),
                    "--batch-rows", "-5")  # fmt: skip
    assert refused.returncode == 2 and "--batch-rows" in refused.stderr
    assert "greater than or equal to 1" in refused.stderr


def test_predict_to_standard_output_and_a_reader_that_stops_early(
    service: ServiceThread, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    version = trained["catboost"]
    to_file = tmp_path / "answers.csv"
    assert mlops(service, "predict", version.ref, str(PENGUINS), "-o", str(to_file)).returncode == 0
    done = mlops(service, "predict", version.ref, str(PENGUINS), "-o", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout == to_file.read_text()
    assert "344 rows predicted" in done.stderr and "into standard output" in done.stderr
    # `| head -1` on megabytes of answers: the pipe closes early; mlops stops without a word.
    many = tmp_path / "many.csv"
    header, *lines = PENGUINS.read_text().splitlines()
    many.write_text("\n".join([header, *lines * 300]) + "\n")
    reader = subprocess.Popen(
        [MLOPS, "predict", version.ref, str(many), "-o", "-"],
        env=env(service), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline().startswith(b'"label"')
    reader.stdout.close()
    assert reader.wait(60) == 0
    with reader.stderr:
        assert reader.stderr.read() == b""


def test_a_reader_that_stops_early_ends_every_command_quietly(
    service: ServiceThread, trained: dict[str, ModelVersion]
) -> None:
    # `mlops show REF | head -1`: was "error: [Errno 32] Broken pipe" and exit 4 (invalid
    # input) for every command but predict. The reader here closes before anything is
    # written, so every write meets the closed pipe.
    for args in (["show", trained["catboost"].ref], ["models"], ["kinds"], ["--json", "jobs"]):
        reader = subprocess.Popen(
            [MLOPS, *args], env=env(service), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert reader.stdout is not None and reader.stderr is not None
        reader.stdout.close()
        assert reader.wait(60) == 0, args
        with reader.stderr:
            assert reader.stderr.read() == b"", args


def test_a_full_training_queue_exits_5_for_a_script_to_retry(start_service: Any) -> None:
    # Was exit 4, "invalid input": a script reads that as "fix the data", not "try again".
    service = start_service(max_concurrent_trainings=1, max_queued_jobs=0)
    with Client(service.target) as client:
        running = client.train(PENGUINS, "catboost", "species",
                               {"iterations": 10000, "depth": 10}, wait=False)  # fmt: skip
        assert isinstance(running, mc.Job)
        try:
            done = mlops(service, "train", str(PENGUINS), "--kind", "catboost", "-t", "species")
            assert done.returncode == 5, done.stderr
            assert "the training queue is full" in done.stderr
        finally:
            client.cancel(running.job_id)


def test_rows_piped_in_train_and_predict_whatever_their_format(
    service: ServiceThread, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    version = trained["logistic_regression"]
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pacsv.read_csv(PENGUINS), parquet)
    compressed = tmp_path / "rows.csv.gz"
    compressed.write_bytes(gzip.compress(PENGUINS.read_bytes()))
    for named in (PENGUINS, compressed, parquet):
        from_file = mlops(service, "predict", version.ref, str(named), "-o", "-")
        assert from_file.returncode == 0, from_file.stderr
        done = piped_in(service, named.read_bytes(), "predict", version.ref, "-", "-o", "-")
        assert done.returncode == 0, (named, done.stderr)
        assert done.stdout.decode() == from_file.stdout, named
    trained_from_pipe = piped_in(service, compressed.read_bytes(), "--json", "train", "-",
                                 "--kind", "catboost", "--target", "species")  # fmt: skip
    assert trained_from_pipe.returncode == 0, trained_from_pipe.stderr
    assert json.loads(trained_from_pipe.stdout)["train_rows"] > 0
    # What is wrong names where the rows came from, not the temporary file they were put in.
    short = piped_in(service, b"species,island\nAdelie,Dream\nGentoo\n",
                     "train", "-", "--kind", "catboost", "--target", "species")  # fmt: skip
    assert short.returncode == 4
    assert (
        short.stderr == b"error: standard input, line 3: 1 field where the header has 2: 'Gentoo'\n"
    )
    nothing = piped_in(service, b"", "predict", version.ref, "-", "-o", str(tmp_path / "x.csv"))
    assert nothing.returncode == 4
    assert nothing.stderr.startswith(b"error: standard input: the file is empty")
    # `mlops predict m -` typed at a terminal, nothing piped: told so, not left waiting.
    controller, terminal = pty.openpty()
    with os.fdopen(controller, "rb"), os.fdopen(terminal, "rb") as keyboard:
        waiting = subprocess.run(
            [MLOPS, "predict", version.ref, "-", "-o", str(tmp_path / "x.csv")],
            env=env(service), stdin=keyboard, capture_output=True, timeout=60,
        )  # fmt: skip
    assert waiting.returncode == 4
    assert b"nothing is piped into it" in waiting.stderr


def test_rows_from_a_shells_process_substitution_are_read_as_from_the_file(
    service: ServiceThread, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    version = trained["logistic_regression"]
    from_file = mlops(service, "predict", version.ref, str(PENGUINS), "-o", "-")
    assert from_file.returncode == 0, from_file.stderr

    def substituted(rows: Path, *args: str) -> subprocess.CompletedProcess[str]:
        # <(...) hands the command a /dev/fd/N path that is a pipe, not a file.
        return subprocess.run(
            ["bash", "-c", '"$0" predict "$1" <(cat "$2") -o -', MLOPS, *args, str(rows)],
            env=env(service), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    done = substituted(PENGUINS, version.ref)
    assert done.returncode == 0, done.stderr
    assert done.stdout == from_file.stdout
    # What is wrong names the path the user gave, not the temporary file the rows went into.
    short = tmp_path / "short.csv"
    short.write_text("species,island\nAdelie,Dream\n")
    bad = substituted(short, version.ref)
    assert bad.returncode == 4
    assert re.match(r"error: /dev/fd/\d+ lacks 6 of the model's 7 features: ", bad.stderr)


def piped_in(service: ServiceThread, rows: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run `mlops ARGS` with `rows` on its standard input."""
    return subprocess.run(
        [MLOPS, *args], env=env(service), input=rows, capture_output=True, timeout=120
    )


def test_json_output_parses(service: ServiceThread, trained: dict[str, ModelVersion]) -> None:
    version = trained["catboost"]
    listed = json.loads(mlops(service, "--json", "models").stdout)
    assert version.model_id in {m["model_id"] for m in listed}
    shown = json.loads(mlops(service, "--json", "show", version.ref).stdout)
    assert shown["signature"]["classes"] == list(version.signature.classes)
    kinds = json.loads(mlops(service, "--json", "kinds").stdout)
    assert {k["name"] for k in kinds} >= {"catboost", "logistic_regression"}


def test_server_flag_and_label_target_do_not_collide(service: ServiceThread) -> None:
    # The service's address from --server, the label column from train's --target.
    environment = {k: v for k, v in env(service).items() if k != "MLOPS_TARGET"}
    done = subprocess.run(
        [MLOPS, "--server", service.target, "--json", "kinds"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert {kind["name"] for kind in json.loads(done.stdout)} >= {"catboost", "logistic_regression"}


def test_a_service_it_cannot_reach_is_named_in_plain_words(service: ServiceThread) -> None:
    # Was gRPC's "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1:
    # Failed to connect to remote host: Connection refused", and TLS to a plaintext service
    # added the C core's own log line ("I1201 … ssl_transport_security.cc:2563] Handshake
    # failed with error SSL_ERROR_SSL: …WRONG_VERSION_NUMBER…").
    down = mlops(service, "--server", "127.0.0.1:1", "models")
    assert down.returncode == 5
    assert down.stderr == (
        "error: cannot reach the service at 127.0.0.1:1: nothing listens there "
        "(is the service running, on that port?)\n"
    )
    tls = mlops(service, "--tls", "models")
    assert tls.returncode == 5
    assert tls.stderr.count("\n") == 1 and "ssl_transport_security" not in tls.stderr
    assert f"cannot reach the service at {service.target}: the TLS handshake failed" in tls.stderr
    unknown = mlops(service, "--server", "nosuchhost.invalid:50051", "models")
    assert unknown.returncode == 5
    assert "nosuchhost.invalid:50051: its host name is not known" in unknown.stderr


def test_plaintext_to_a_tls_service_says_tls_may_be_needed(start_service: Any, pki: Path) -> None:
    # Was "cannot reach the service at …: Socket closed", naming nothing to try.
    service = start_service(tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key")
    plain = mlops(service, "models")
    assert plain.returncode == 5
    assert plain.stderr.startswith(f"error: cannot reach the service at {service.target}: ")
    assert "may serve TLS only (--tls, or --ca-file" in plain.stderr
    assert mlops(service, "--ca-file", str(pki / "ca.pem"), "models").returncode == 0


def test_a_malformed_service_address_is_a_usage_error(service: ServiceThread) -> None:
    # Port 99999 was tried as 34463 (mod 65536), a host without a port as port 443 and
    # "http://host:port" as a host name, each failing as a service it "cannot reach".
    for target, words in [
        ("127.0.0.1:99999", "the port must be from 1 to 65535"),
        ("127.0.0.1:0", "the port must be from 1 to 65535"),
        ("localhost", "names no port"),
        (f"http://{service.target}", "without http://"),
    ]:
        done = subprocess.run([MLOPS, "kinds"], env={**env(service), "MLOPS_TARGET": target},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2, (target, done.stderr)
        assert words in " ".join(done.stderr.replace("│", " ").split()), done.stderr
    assert mlops(service, "--server", f"dns:///{service.target}", "kinds").returncode == 0


def test_a_ca_file_that_is_missing_or_not_pem_is_a_usage_error(
    service: ServiceThread, tmp_path: Path
) -> None:
    # Was exit 4 "[Errno 2] No such file or directory: …", and for a file that is not PEM
    # four lines of gRPC's log ("Could not load any root certificate") and exit 5.
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for path, words in [
        (tmp_path / "absent.pem", "No such file or directory"),
        (not_pem, "holds no PEM certificate"),
    ]:
        done = mlops(service, "--ca-file", str(path), "models")
        assert done.returncode == 2, done.stderr
        said = " ".join(done.stderr.replace("│", " ").split())
        assert words in said and "--ca-file" in said
        assert "Errno" not in done.stderr and "root certificate" not in done.stderr


def test_a_usage_error_without_a_terminal_is_one_plain_line(service: ServiceThread) -> None:
    # Was a box drawn 80 columns wide, the sentence cut across its lines.
    done = mlops(service, "--server", "127.0.0.1:99999", "models")
    assert done.returncode == 2
    assert (
        "Error: Invalid value for --server / MLOPS_TARGET: '127.0.0.1:99999': the port must be "
        "from 1 to 65535\n"
    ) in done.stderr
    assert "│" not in done.stderr and "╭" not in done.stderr


def test_bad_hyperparameter_exits_invalid_naming_the_field(service: ServiceThread) -> None:
    done = mlops(service, "train", str(PENGUINS), "--kind", "catboost", "--target", "species",
                 "-p", "depth=99")  # fmt: skip
    assert done.returncode == 4
    assert "hyperparameters.depth" in done.stderr
    assert "Traceback" not in done.stderr


def test_cpus_and_memory_reach_the_service_and_a_refusal_names_the_field(
    service: ServiceThread, trained: dict[str, ModelVersion]
) -> None:
    done = mlops(service, "train", str(PENGUINS), "--kind", "catboost", "--target", "species",
                 "--cpus", "1000")  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "resources.cpus: asks for 1000 CPUs; this service allows at most 8" in done.stderr
    done = mlops(service, "retrain", trained["catboost"].model_id, "--cpus", "1",
                 "--memory-mb", "512")  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "resources.memory_mb: cannot be reserved" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_it_cannot_use_exits_invalid_in_the_files_terms(
    service: ServiceThread, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    # Named .tsv but separated by ';': read by its suffix, it is one column.
    semicolons = tmp_path / "rows.tsv"
    semicolons.write_text(PENGUINS.read_text().replace(",", ";"))
    done = mlops(service, "predict", trained["catboost"].ref, str(semicolons),
                 "-o", str(tmp_path / "out.csv"))  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith(f"error: {semicolons} lacks 7 of the model's 7 features: ")
    assert "separate them with commas" in done.stderr
    short = tmp_path / "short.csv"
    short.write_text("species,island\nAdelie,Dream\nGentoo\n")
    done = mlops(service, "train", str(short), "--kind", "catboost", "--target", "species")
    assert done.returncode == 4, done.stderr
    assert done.stderr == f"error: {short}, line 3: 1 field where the header has 2: 'Gentoo'\n"


def test_a_continuous_target_names_the_option_that_trains_it(
    service: ServiceThread, tmp_path: Path
) -> None:
    # The service's words name the request field, allow_many_classes; mlops takes an option.
    measured = tmp_path / "measured.csv"
    measured.write_text("length,colour\n" + "".join(f"{i}.5,{'ab'[i % 2]}\n" for i in range(60)))
    train = ("train", str(measured), "--kind", "catboost", "--target", "length")
    refused = mlops(service, *train, "-p", "iterations=5")
    assert refused.returncode == 4, refused.stderr
    assert "looks continuous" in refused.stderr
    assert refused.stderr.endswith(" (--allow-many-classes)\n")
    done = mlops(service, *train, "-p", "iterations=5", "--holdout", "0", "--allow-many-classes")
    assert done.returncode == 0, done.stderr


def test_columns_left_out_and_read_as_categories(service: ServiceThread, tmp_path: Path) -> None:
    # A date column (no model kind reads dates) and a numeric code meant as categories.
    dated = tmp_path / "dated.csv"
    header, *rows = PENGUINS.read_text().splitlines()
    days = [f"{row},2009-11-{i % 28 + 1:02d}" for i, row in enumerate(rows)]
    dated.write_text("\n".join([header + ",observed", *days]))
    train = ("train", str(dated), "--kind", "logistic_regression", "--target", "species")
    refused = mlops(service, *train)
    assert refused.returncode == 4, refused.stderr
    assert (
        "column 'observed' holds dates (Arrow type date32[day]), which no model kind reads: leave"
        " it out, or make numbers of it (days since a date; the year, month or weekday)"
    ) in " ".join(refused.stderr.split())
    assert refused.stderr.endswith(" (--ignore observed)\n")  # how to train it anyway

    done = mlops(service, "--json", *train, "--ignore", "observed", "--categorical", "year")
    assert done.returncode == 0, done.stderr
    features = {f["name"]: f for f in json.loads(done.stdout)["signature"]["features"]}
    assert "observed" not in features and "island" in features
    assert features["year"]["feature_type"] == "categorical"
    assert features["year"]["categories"] == ["2007", "2008", "2009"]

    unknown = mlops(service, *train, "--ignore", "observd")
    assert unknown.returncode == 4
    assert unknown.stderr.startswith("error: --ignore 'observd': no such column among 'island',")
    chosen = mlops(service, "--json", *train, "-f", "island", "-f", "bill_length_mm")
    assert chosen.returncode == 0, chosen.stderr
    features = json.loads(chosen.stdout)["signature"]["features"]
    assert [f["name"] for f in features] == ["island", "bill_length_mm"]


def test_ignore_on_a_csv_ending_each_line_with_a_comma(
    service: ServiceThread, tmp_path: Path
) -> None:
    # Excel on Windows: CRLF and a separator after every line's last field. --ignore listed
    # the header's columns, the unnamed empty one too, which the service then refused as
    # "column '' has no values".
    excel = tmp_path / "excel.csv"
    excel.write_bytes(
        b"".join(f"{line},\r\n".encode() for line in PENGUINS.read_text().splitlines())
    )
    train = ("train", str(excel), "--kind", "logistic_regression", "--target", "species")

    done = mlops(service, "--json", *train, "--ignore", "island")

    assert done.returncode == 0, done.stderr
    features = [f["name"] for f in json.loads(done.stdout)["signature"]["features"]]
    assert "island" not in features and "" not in features and "bill_length_mm" in features


def test_unknown_model_exits_not_found(service: ServiceThread) -> None:
    done = mlops(service, "show", "m-000000000000")
    assert done.returncode == 3
    assert done.stderr.startswith("error: ")


def test_a_missing_or_wrong_token_says_how_to_give_one(start_service: Any) -> None:
    guarded = start_service(auth_tokens="right-token")
    environment = {**os.environ, "MLOPS_TARGET": guarded.target}
    for token in ([], ["--token", "wrong"]):
        done = subprocess.run(
            [MLOPS, *token, "models"], env=environment, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 7, done.stderr
        assert done.stderr.endswith("(give it with --token or MLOPS_TOKEN)\n"), done.stderr
    allowed = subprocess.run(
        [MLOPS, "--token", "right-token", "models"],
        env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr


def test_a_token_read_from_a_file_is_sent_without_its_newline(start_service: Any) -> None:
    # MLOPS_TOKEN from a file (`echo right-token > file`, a mounted Secret) ends in a newline:
    # was exit 1 "error: Invalid metadata" after gRPC's own log line. A token no header can
    # carry is a usage error that does not repeat it.
    guarded = start_service(auth_tokens="right-token")
    environment = {**os.environ, "MLOPS_TARGET": guarded.target}
    read = subprocess.run(
        [MLOPS, "models"], env={**environment, "MLOPS_TOKEN": "right-token\n"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    # Copied with its scheme from a header: was sent as "Bearer Bearer right-token".
    pasted = subprocess.run(
        [MLOPS, "--token", "Bearer right-token", "models"],
        env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert pasted.returncode == 0, pasted.stderr
    foreign = subprocess.run(
        [MLOPS, "--token", "r\u00e9ght", "models"],
        env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert foreign.returncode == 2
    said = " ".join(foreign.stderr.split())
    assert (
        "--token / MLOPS_TOKEN holds a space, a control character or a letter outside ASCII" in said
    )
    assert "r\u00e9ght" not in foreign.stderr


def test_each_tls_handshake_failure_is_named(start_service: Any, pki: Path, tmp_path: Path) -> None:
    # Each was "the TLS handshake failed: the service may not serve TLS, or its certificate is
    # not signed by the roots given", and a host-name mismatch gRPC's "Custom verification
    # check failed with error: UNAUTHENTICATED: Hostname Verification Check failed."
    plain = start_service(tmp_path / "plain")
    other = start_service(
        tmp_path / "other", tls_cert_file=pki / "other.pem", tls_key_file=pki / "other.key"
    )
    secure = start_service(
        tmp_path / "secure", tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key"
    )
    for service, roots, words in [
        (plain, pki / "ca.pem", "the service does not serve TLS (leave out --tls and --ca-file"),
        (other, pki / "ca.pem", "the service's certificate is not for that host name"),
        (secure, pki / "client.pem", "the service's certificate is not signed by the roots given"),
    ]:
        done = mlops(service, "--ca-file", str(roots), "models")
        assert done.returncode == 5
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(
            f"error: cannot reach the service at {service.target}: the TLS handshake failed: "
        )
        assert words in done.stderr, done.stderr


def test_options_that_would_be_ignored_are_usage_errors(service: ServiceThread) -> None:
    # Each was taken without a word: --watch listed every job once, --model was not applied.
    unnamed = mlops(service, "jobs", "--watch")
    assert unnamed.returncode == 2 and "follows one job: name it" in unnamed.stderr
    both = mlops(service, "jobs", "j-000000000000", "--model", "m-000000000000")
    assert both.returncode == 2 and "not with a JOB_ID" in both.stderr


def test_delete_asks_and_yes_skips_the_question(service: ServiceThread, client: Client) -> None:
    version = client.train(PENGUINS, "logistic_regression", "species", {"max_iter": 50})
    refused = subprocess.run([MLOPS, "delete", version.model_id], env=env(service), input="n\n",
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode != 0
    assert client.model(version.model_id).version_count == 1
    assert mlops(service, "delete", version.model_id, "--yes").returncode == 0
    with pytest.raises(mc.NotFound):
        client.model(version.model_id)


def test_deleting_the_last_version_says_the_model_went_too(
    service: ServiceThread, client: Client
) -> None:
    # Was "deleted version 1 of model m-…" alone: the model was gone without a word.
    version = client.train(PENGUINS, "logistic_regression", "species", {"max_iter": 50})
    client.retrain(version.model_id, {"max_iter": 60})
    second = mlops(service, "--json", "delete", f"{version.model_id}:2", "--yes")
    last = mlops(service, "delete", f"{version.model_id}:1", "--yes")

    assert json.loads(second.stdout) == {"deleted_versions": 1, "model_deleted": False}
    assert last.stderr.strip() == (
        f"deleted version 1 of model {version.model_id} (its last: the model is deleted too)"
    )
    with pytest.raises(mc.NotFound):
        client.model(version.model_id)


def test_delete_without_an_answer_says_nothing_was_deleted(
    service: ServiceThread, trained: dict[str, ModelVersion]
) -> None:
    model = trained["logistic_regression"].model_id
    # Standard input closed (a script, cron): was the question and "Aborted." on one line.
    for answer in ("", "n\n"):
        done = subprocess.run([MLOPS, "delete", model], env=env(service), input=answer,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            f"Delete model {model} and every version? [y/N]:",
            "nothing deleted (--yes deletes without asking)",
        ]
    # Version 0 (latest, to show) was asked about as "model … and every version", then
    # refused by the service with exit 4.
    zero = mlops(service, "delete", f"{model}:0", "--yes")
    assert zero.returncode == 2 and "versions count from 1" in zero.stderr
    # Was protobuf's "Value out of range: 4294967296", exit 4.
    beyond = mlops(service, "show", f"{model}:4294967296")
    assert beyond.returncode == 2 and "version 4294967296 is beyond any" in beyond.stderr
    assert "out of range" not in beyond.stderr
    assert mlops(service, "show", f"{model}:4294967295").returncode == 3


def interrupt_training(
    service: ServiceThread, *extra: str, sent: signal.Signals = signal.SIGINT
) -> tuple[str, int, str]:
    """Start a long CatBoost fit on adult.csv, press Ctrl-C (or send `sent`) once it fits."""
    command = [MLOPS, "train", str(DATA_DIR / "adult.csv"), "--kind", "catboost",
               "--target", "income", "-p", "iterations=10000", *extra]  # fmt: skip
    with subprocess.Popen(
        command, env=env(service), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        job_id = ""
        for line in proc.stderr:
            job_id = job_id or line.split()[1]  # the first line is "job J queued"
            if " fitting " in line:
                break
        proc.send_signal(sent)
        rest = proc.stderr.read()
        return job_id, proc.wait(60), rest


def test_ctrl_c_stops_following_and_the_job_keeps_running(
    service: ServiceThread, client: Client
) -> None:
    job_id, code, said = interrupt_training(service)
    assert code == 130
    assert f"mlops jobs {job_id} --watch" in said
    assert "Traceback" not in said
    assert client.job(job_id).state is mc.JobState.RUNNING
    client.cancel(job_id)


def test_ctrl_c_with_cancel_on_interrupt_cancels_the_job(
    service: ServiceThread, client: Client
) -> None:
    job_id, code, said = interrupt_training(service, "--cancel-on-interrupt")
    assert code == 130
    assert f"cancelled job {job_id}" in said
    assert client.job(job_id).state is mc.JobState.CANCELLED


# SIGTERM (`kill`, a CI runner's timeout, `timeout 60 mlops ...`) as Ctrl-C, but exit 143
# (128 + 15) as a shell reports a command SIGTERM ended; was a silent end with the job
# training on, the answers' hidden file left beside -o.
INTERRUPTS = pytest.mark.parametrize(
    ("sent", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["int", "term"]
)


@INTERRUPTS
def test_sigterm_stops_following_as_ctrl_c_does(
    service: ServiceThread, client: Client, sent: signal.Signals, exit_code: int
) -> None:
    job_id, code, said = interrupt_training(service, sent=sent)
    try:
        assert code == exit_code
        assert f"stopped following job {job_id}; it keeps running." in said
        assert f"mlops jobs {job_id} --watch" in said and f"mlops cancel {job_id}" in said
        assert "Traceback" not in said
        assert client.job(job_id).state is mc.JobState.RUNNING
    finally:  # a job left training holds a slot the next test's job would queue behind
        with contextlib.suppress(mc.MlopsError):
            client.cancel(job_id)


def test_sigterm_with_cancel_on_interrupt_cancels_the_job(
    service: ServiceThread, client: Client
) -> None:
    job_id, code, said = interrupt_training(service, "--cancel-on-interrupt", sent=signal.SIGTERM)
    try:
        assert code == 143
        assert f"cancelled job {job_id}" in said
        assert client.job(job_id).state is mc.JobState.CANCELLED
    finally:
        with contextlib.suppress(mc.MlopsError):
            client.cancel(job_id)


@INTERRUPTS
def test_ctrl_c_while_predicting_says_so_and_leaves_the_output_as_it_was(
    service: ServiceThread,
    trained: dict[str, ModelVersion],
    tmp_path: Path,
    sent: signal.Signals,
    exit_code: int,
) -> None:
    rows = PENGUINS.read_bytes()
    header, _, body = rows.partition(b"\n")
    big = tmp_path / "big.csv"
    big.write_bytes(header + b"\n" + body * 2000)  # 688,000 rows
    out = tmp_path / "out.csv"
    out.write_text("kept\n")
    command = [MLOPS, "predict", trained["logistic_regression"].ref, str(big), "-o", str(out),
               "--batch-rows", "1000"]  # fmt: skip
    with subprocess.Popen(command, env=env(service), stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        while not [f for f in tmp_path.iterdir() if f.name.startswith(".")]:  # answers begun
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.01)
        proc.send_signal(sent)
        said, code = proc.stderr.read(), proc.wait(60)
    # Was exit 130 without a word.
    assert code == exit_code
    assert said == f"interrupted; {out} is as it was\n"
    assert out.read_text() == "kept\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["big.csv", "out.csv"]
