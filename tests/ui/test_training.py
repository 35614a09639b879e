"""Train and Retrain handlers: the CSV preview, live progress, results and errors in words."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pandas as pd
import pytest

from tests.ui.fakes import KINDS, FakeGateway, alert, fitting, job, problem, sse, version
from ui import tables
from ui.handlers import Handlers
from ui.schemas import ModelKind, ModelVersion
from ui.training import Training

KIND_LIST = [ModelKind.model_validate(k) for k in KINDS["kinds"]]
DEFAULTS = [300, 0.1, "none", False]


def progress(html: str) -> tuple[str, int, str]:
    """What the progress bar shows: state, percent and the text under the bar."""
    state = re.search(r'data-state="(\w+)"', html)
    percent = re.search(r'data-percent="(\d+)"', html)
    text = re.search(r'class="job-progress-text">([^<]*)<', html)
    assert state and percent and text, html
    return state[1], int(percent[1]), text[1]


def start_args(csv: Path, *values: Any) -> tuple[Any, ...]:
    return (
        "catboost", KIND_LIST, str(csv), "species", " penguins ", "", 0.2, None,
        None, [], [], False, *(values or (20, 0.1, "none", False)),
    )  # fmt: skip


def start_training(training: Training, csv: Path, *values: Any) -> Iterator[Any]:
    return training.train(*start_args(csv, *values))


@pytest.fixture
def trains(gateway: FakeGateway) -> FakeGateway:
    """A gateway where a training job runs through its stages and succeeds."""
    done = job("succeeded", fraction=1.0, result=version(1))
    gateway.routes[("POST", "/v1/jobs")] = lambda _: httpx.Response(202, json=job("queued"))
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse(
        [job("queued"), job("running", "preparing", 0.05), fitting(10, 20), fitting(20, 20), done]
    )
    return gateway


def test_the_preview_shows_the_first_rows_and_the_detected_types(
    training: Training, penguins: Path
) -> None:
    preview, types, target, features, *_ = training.load_csv(str(penguins))
    assert len(preview) == 5 and list(preview.columns)[:2] == ["species", "island"]
    assert features["value"] == list(preview.columns)  # no column looks like an identifier
    by_column = types.set_index("Column")
    assert by_column.loc["species", "Detected type"] == "categorical"
    assert by_column.loc["bill_length_mm", "Detected type"] == "numeric"
    assert by_column.loc["bill_length_mm", "Missing"] == 2
    assert by_column.loc["flipper_length_mm", "Examples"] == "181, 186, 195"
    assert target["choices"][0] == "species" and target["value"] is None


def test_the_preview_reads_na_as_missing_as_the_gateway_does(
    training: Training, penguins: Path, tmp_path: Path
) -> None:
    from_r = tmp_path / "penguins_from_r.csv"  # R writes "NA" where a value is missing
    pd.read_csv(penguins).to_csv(from_r, index=False, na_rep="NA")
    _, types, *_ = training.load_csv(str(from_r))
    by_column = types.set_index("Column")
    assert by_column.loc["bill_length_mm", "Detected type"] == "numeric"
    assert by_column.loc["bill_length_mm", "Missing"] == 2
    assert by_column.loc["sex", "Missing"] == 11


def test_the_preview_reads_a_spreadsheets_semicolons_and_decimal_commas(
    training: Training, penguins: Path, tmp_path: Path
) -> None:
    exported = tmp_path / "penguins.csv"
    pd.read_csv(penguins).to_csv(exported, index=False, sep=";", decimal=",")
    preview, types, *_ = training.load_csv(str(exported))
    assert list(preview.columns)[:2] == ["species", "island"]
    assert types.set_index("Column").loc["bill_length_mm", "Detected type"] == "numeric"


def with_prices(penguins: Path, tmp_path: Path, price: Any) -> Path:
    """Penguins with a `price` text column made from the body mass by `price`."""
    frame = tables.read_csv(penguins)
    frame.insert(2, "price", frame["body_mass_g"].map(price, na_action="ignore"))
    path = tmp_path / "priced.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_column_of_decorated_numbers_is_offered_as_categorical_with_the_reason(
    trains: FakeGateway, training: Training, penguins: Path, tmp_path: Path
) -> None:
    priced = with_prices(penguins, tmp_path, lambda g: f"${g / 1000:.2f}")
    *_, features, as_categorical, _, hint, _ = training.load_csv(str(priced))
    assert "price" in as_categorical["choices"] and "year" in as_categorical["choices"]
    assert "island" not in as_categorical["choices"] and "price" in features["value"]
    assert hint == (
        "Column 'price' holds numbers written with a currency sign ('$3.75'): training "
        "refuses it unless you tick it as categorical, or remove the signs in the file to have "
        "it read as numbers."
    )
    list(training.train(*start_args(priced)[:9], ["price"], [], False, *DEFAULTS))
    sent = trains.last("POST", "/v1/jobs").read().decode()
    assert 'name="feature_types"\r\n\r\n{"price": "categorical"}' in sent


@pytest.mark.parametrize(
    "price",
    [lambda g: f"${g / 1000:.2f}", lambda g: f"{g:,.0f}", lambda g: f"{g / 100:.0f}%"],
    ids=["dollars", "thousands", "percent"],
)
def test_a_column_of_decorated_numbers_is_not_offered_as_numeric(
    training: Training, penguins: Path, tmp_path: Path, price: Any
) -> None:
    # The service refuses it as numeric ("holds text that is not a number"): picked, it failed
    # only after the upload.
    *_, as_categorical, as_numeric, hint, _ = training.load_csv(
        str(with_prices(penguins, tmp_path, price))
    )
    assert "price" in as_categorical["choices"] and "price" not in as_numeric["choices"]
    assert "island" in as_numeric["choices"]  # other text is still offered
    assert hint.endswith("in the file to have it read as numbers.")


def test_phone_numbers_are_text_not_decorated_numbers(
    training: Training, penguins: Path, tmp_path: Path
) -> None:
    # "612 345 678": groups of three as in "1 234 567", but every value of one shape.
    frame = tables.read_csv(penguins)
    frame.insert(
        2, "phone", [f"{600 + i} {345 + i % 600} {100 + i * 7 % 900}" for i in frame.index]
    )
    path = tmp_path / "phones.csv"
    frame.to_csv(path, index=False)
    _, types, _, features, as_categorical, _, hint, _ = training.load_csv(str(path))
    assert types.set_index("Column").loc["phone", "Detected type"] == "categorical"
    assert "phone" not in as_categorical["choices"] and "phone" not in features["value"]
    assert "decorat" not in hint and "holds numbers" not in hint
    assert hint.startswith("Every value of 'phone' is different, so it looks like an identifier")


def test_amounts_all_different_are_not_taken_for_identifiers(
    training: Training, tmp_path: Path
) -> None:
    path = tmp_path / "amounts.csv"
    pd.DataFrame({"amount": [f"${i * 1.25:,.2f}" for i in range(40)], "y": ["a", "b"] * 20}).to_csv(
        path, index=False
    )
    *_, features, as_categorical, _, hint, _ = training.load_csv(str(path))
    assert "amount" in features["value"] and "amount" in as_categorical["choices"]
    assert hint.startswith("Column 'amount' holds numbers written with a currency sign")
    assert "identifier" not in hint


@pytest.mark.parametrize(
    ("price", "said"),
    [
        (lambda g: f"{g / 100:.0f}%", "a percent sign ('38%')"),
        (lambda g: f"{g:,.0f}", "thousands separators ('3,750')"),
        (lambda g: f"({g / 1000:.2f})", "negatives in parentheses ('(3.75)')"),
        (lambda g: f"{g / 1000:.2f}".replace(".", ","), "decimal commas ('3,75')"),
    ],
    ids=["percent", "thousands", "parentheses", "decimal-commas"],
)
def test_each_decoration_is_named_as_the_service_names_it(
    training: Training, penguins: Path, tmp_path: Path, price: Any, said: str
) -> None:
    *_, as_categorical, _, hint, _ = training.load_csv(str(with_prices(penguins, tmp_path, price)))
    assert "price" in as_categorical["choices"]
    assert hint.startswith(f"Column 'price' holds numbers written with {said}: ")


def test_text_that_is_not_decorated_numbers_is_not_offered_as_categorical(
    training: Training, penguins: Path, tmp_path: Path
) -> None:
    # Ranges and codes that hold digits are ordinary categories, as the service reads them.
    coded = with_prices(
        penguins, tmp_path, lambda g: f"{g // 500 * 500:.0f}-{g // 500 * 500 + 499:.0f}"
    )
    *_, as_categorical, _, hint, _ = training.load_csv(str(coded))
    assert "price" not in as_categorical["choices"] and hint == ""


def test_a_workbook_is_named_for_what_it_is(training: Training, tmp_path: Path) -> None:
    path = tmp_path / "penguins.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(200))
    *_, shown = training.load_csv(str(path))
    assert "penguins.xlsx is a zip archive, as an Excel workbook (.xlsx) is" in alert(shown)


def test_utf16_text_is_named_with_how_to_save_it(training: Training, tmp_path: Path) -> None:
    path = tmp_path / "penguins.txt"
    path.write_bytes("island\tyear\nDream\t2007\n".encode("utf-16"))
    *_, shown = training.load_csv(str(path))
    assert 'penguins.txt is UTF-16 text, as Excel saves "Unicode Text"' in alert(shown)


def test_a_file_that_is_not_a_csv_is_refused_in_words(training: Training, tmp_path: Path) -> None:
    path = tmp_path / "model.cbm"
    path.write_bytes(b"\xff\xfe\x00binary")
    *untouched, shown = training.load_csv(str(path))
    assert "model.cbm is not a readable CSV file" in alert(shown)
    # The target dropdown, preview and types stay as they were: no error badge in their place.
    assert all(update == gr.skip() for update in untouched)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "rows.csv is empty; a CSV file begins with a line naming its columns."),
        (b"\n\n", "rows.csv is empty; a CSV file begins with a line naming its columns."),
        (
            "island,sex\nBiscoe,f\u00e9male\n".encode("latin-1"),
            "rows.csv is not a readable CSV file: it holds bytes that are not UTF-8 text (a "
            "CSV saved as Latin-1? save it as UTF-8).",
        ),
    ],
)
def test_an_empty_or_latin1_file_is_told_in_words_not_pandas(
    training: Training, handlers: Handlers, tmp_path: Path, content: bytes, said: str
) -> None:
    # Was pandas' "No columns to parse from file" and Python's "'utf-8' codec can't decode
    # byte 0xe9 in position 16: invalid continuation byte".
    path = tmp_path / "rows.csv"
    path.write_bytes(content)
    assert alert(training.load_csv(str(path))[-1]) == f"Unreadable file. {said}"
    assert alert(handlers.load_rows(str(path))[-1]) == f"Unreadable file. {said}"


@pytest.mark.parametrize(
    "content",
    [
        b"# exported by X\nvalue\n1\n2\n",
        b"# exported by X\nisland,year\nDream,2007\n",
        b"# exported by X\nisland,year,sex\nDream,2007,f\n",
    ],
)
def test_a_note_above_the_header_is_named_as_the_gateway_names_it(
    training: Training, handlers: Handlers, tmp_path: Path, content: bytes
) -> None:
    # Was a preview of one column, "# exported by X" (and, above two, the names a row).
    path = tmp_path / "rows.csv"
    path.write_bytes(content)
    said = (
        "Unreadable file. rows.csv, line 1: looks like a note above the header ('# exported"
        " by X'): remove the lines above the column names."
    )
    assert alert(training.load_csv(str(path))[-1]) == said
    assert alert(handlers.load_rows(str(path))[-1]) == said
    path.write_bytes(b"# of items\n3\n4\n")  # a number below: the first line is its name
    assert list(training.load_csv(str(path))[0].columns) == ["# of items"]


def test_training_shows_progress_to_the_end_then_the_metrics(
    trains: FakeGateway, training: Training, penguins: Path
) -> None:
    updates = list(start_training(training, penguins, 20, 0.1, "none", False))
    bars = [progress(update[1]) for update in updates]
    assert bars[0] == ("queued", 0, "Waiting for a worker · 0%")
    assert ("running", 50, "Fitting: iteration 10 of 20 · 50%") in bars
    assert bars[-1] == ("succeeded", 100, "Done · 100%")
    assert [percent for _, percent, _ in bars] == sorted(percent for _, percent, _ in bars)
    assert all(u[4]["interactive"] is False for u in updates[:-1])  # no second click
    job_id, _, summary, metrics, button, _, shown = updates[-1]
    assert button["interactive"] is True and shown == ""
    assert job_id == ""  # nothing left to cancel
    assert summary.startswith("Trained. **penguins** (`m-1`) version **1**")
    assert metrics.set_index("Metric").loc["Accuracy", "Holdout value"] == "0.9700"
    assert metrics.set_index("Metric").loc["Log loss", "Holdout value"] == "—"
    sent = trains.last("POST", "/v1/jobs").read().decode()
    assert 'name="hyperparameters"\r\n\r\n{"iterations": 20}' in sent  # only what changed
    assert 'name="name"\r\n\r\npenguins\r\n' in sent


def test_a_double_click_on_train_starts_one_job(
    trains: FakeGateway, training: Training, penguins: Path
) -> None:
    # Both clicks reached the server before the button was disabled: two models were trained
    # and the page followed one.
    first = training.once("s-1", training.train, *start_args(penguins))
    second = training.once("s-1", training.train, *start_args(penguins))
    assert next(first)[1].startswith('<div class="job-progress" data-state="queued"')
    assert list(second) == [(gr.skip(),) * 7]
    elsewhere = list(training.once("s-2", training.train, *start_args(penguins)))
    assert elsewhere[-1][2].startswith("Trained.")  # another browser trains as it likes
    assert list(first)[-1][2].startswith("Trained.")
    posted = [r for r in trains.requests if (r.method, r.url.path) == ("POST", "/v1/jobs")]
    assert len(posted) == 2
    again = list(training.once("s-1", training.train, *start_args(penguins)))
    assert again[-1][2].startswith("Trained.")  # once the first ends, the button works again


@pytest.mark.parametrize(
    ("kind", "csv", "target", "message"),
    [
        (None, True, "species", "Choose a model kind"),
        ("catboost", False, "species", "Upload a CSV file"),
        ("catboost", True, None, "Choose the target column"),
    ],
)
def test_missing_choices_are_asked_for_before_anything_is_sent(
    gateway: FakeGateway,
    training: Training,
    penguins: Path,
    kind: str | None,
    csv: bool,
    target: str | None,
    message: str,
) -> None:
    path = str(penguins) if csv else None
    run = training.train(
        kind, KIND_LIST, path, target, "", "", 0.2, None, None, [], [], False, *DEFAULTS
    )
    (last,) = list(run)
    assert message in alert(last[-1]) and last[4]["interactive"] is True
    assert gateway.requests == []


def test_a_refused_hyperparameter_is_shown_with_its_field(
    gateway: FakeGateway, training: Training, penguins: Path
) -> None:
    gateway.routes[("POST", "/v1/jobs")] = lambda _: problem(
        400,
        "hyperparameters.iterations: must be at most 10000, got 99999",
        [("hyperparameters.iterations", "must be at most 10000, got 99999")],
    )
    (last,) = list(start_training(training, penguins, 99999, 0.1, "none", False))
    # The person's words: the setting by name, not the wire path.
    assert (
        alert(last[-1])
        == "Invalid argument. setting 'iterations': must be at most 10000, got 99999."
    )


def test_a_failed_job_shows_why_on_the_bar_and_in_an_error(
    gateway: FakeGateway, training: Training, penguins: Path
) -> None:
    failed = job("failed", error={"code": "INVALID_ARGUMENT", "message": "the target has 1 class"})
    gateway.routes[("POST", "/v1/jobs")] = lambda _: httpx.Response(202, json=job("queued"))
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse([job("queued"), failed])
    updates = list(start_training(training, penguins, *DEFAULTS))
    assert progress(updates[-1][1])[2] == "Failed: the target has 1 class · 0%"
    assert (
        alert(updates[-1][-1]) == "Training failed. Training job j-1 failed: the target has 1 class"
    )
    assert updates[-1][4]["interactive"] is True


def test_losing_the_gateway_mid_training_says_so(
    gateway: FakeGateway, training: Training, penguins: Path
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    gateway.routes[("POST", "/v1/jobs")] = lambda _: httpx.Response(202, json=job("queued"))
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = broken
    last = list(start_training(training, penguins, *DEFAULTS))[-1]
    assert "not reachable (the connection broke)" in alert(last[-1])
    assert last[4]["interactive"] is True


def test_cancel_asks_the_gateway_and_the_run_ends_cancelled(
    gateway: FakeGateway, training: Training, penguins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway.routes[("POST", "/v1/jobs/j-1/cancel")] = lambda _: httpx.Response(
        200, json=job("cancelled")
    )
    assert training.cancel("j-1") == ""
    assert "Cancelling job j-1" in capsys.readouterr().out
    gateway.routes[("POST", "/v1/jobs")] = lambda _: httpx.Response(202, json=job("queued"))
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse([job("cancelled")])
    last = list(start_training(training, penguins, *DEFAULTS))[-1]
    assert last[0] == "" and last[2] == "Job `j-1` was cancelled."
    assert "No training is running" in alert(training.cancel("")[-1])


def test_retrain_starts_from_the_latest_version_and_compares_with_it(
    gateway: FakeGateway, training: Training
) -> None:
    versions, _ = training.retrain_versions("m-1")
    assert versions["choices"] == [("v2", 2), ("v1", 1)] and versions["value"] == 2
    text, parent, _ = training.choose_parent("m-1", 2)
    assert isinstance(parent, ModelVersion) and parent.version == 2
    assert "starts from version **2**" in text and "accuracy 0.9500" in text
    child = version(3, 0.99, lineage={"parent_version": 2, "dataset_digest": "", "job_id": "j-1"})
    gateway.routes[("POST", "/v1/models/m-1/retrain")] = lambda _: httpx.Response(
        202, json=job("queued", parent_version=2)
    )
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse(
        [fitting(1, 2), job("succeeded", fraction=1.0, result=child)]
    )
    # The form shows the parent's values (iterations 20); the person changes it to 40.
    updates = list(training.retrain(parent, KIND_LIST, None, 40, 0.1, "none", False))
    assert progress(updates[-1][1])[:2] == ("succeeded", 100)
    summary, compare = updates[-1][2], updates[-1][3]
    assert "Version **3** of `m-1` trained on the parent's data" in summary
    assert "changed hyperparameters: iterations = 40" in summary
    assert isinstance(compare, pd.DataFrame)
    accuracy = compare.set_index("Metric").loc["Accuracy"]
    assert accuracy.to_dict() == {"Parent v2": "0.9500", "New v3": "0.9900", "Change": "+0.0400"}
    sent = json.loads(gateway.last("POST", "/v1/models/m-1/retrain").read())
    assert sent == {"parent_version": 2, "hyperparameters": {"iterations": 40}}


def test_retrain_needs_a_model(training: Training) -> None:
    (last,) = list(training.retrain(None, KIND_LIST, None))
    assert "Choose a model to retrain" in alert(last[-1])
