"""The client against a real in-process service: every method, both kinds, typed errors."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import mlops_client as mc
from mlops_client import Client, Deleted, ModelVersion
from tests.mlops_client.conftest import FAST, PENGUINS

KINDS = sorted(FAST)


def rows(n: int = 5) -> pd.DataFrame:
    """Penguin rows as a user reads them with pandas, without the target."""
    return pd.read_csv(PENGUINS).drop(columns=["species"]).head(n)


def test_kinds_lists_both_with_typed_hyperparameters(client: Client) -> None:
    kinds = {k.name: k for k in client.kinds()}
    assert set(kinds) >= {"catboost", "logistic_regression"}
    iterations = next(h for h in kinds["catboost"].hyperparameters if h.name == "iterations")
    assert iterations.type == "int"
    assert iterations.minimum is not None
    # The default travels as a protobuf Value (a double): was 300.0, and `mlops kinds`
    # printed "iterations int 300.0".
    assert iterations.default == 300 and type(iterations.default) is int
    catboost = {h.name: h for h in kinds["catboost"].hyperparameters}
    assert type(catboost["learning_rate"].default) is float
    assert catboost["verbose"].default is False


@pytest.mark.parametrize("kind", KINDS)
def test_trained_version_has_signature_metrics_and_lineage(
    client: Client, trained: dict[str, ModelVersion], kind: str
) -> None:
    version = trained[kind]
    assert version.kind == kind
    assert version.version == 1
    assert version.signature.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert version.metrics is not None and version.metrics.accuracy > 0.8
    assert client.version(version.model_id) == version
    assert client.model(version.model_id).latest_version == 1
    assert version.model_id in {m.model_id for m in client.models()}
    assert [v.version for v in client.versions(version.model_id)] == [1]
    assert client.job(version.job_id).state is mc.JobState.SUCCEEDED


@pytest.mark.parametrize("kind", KINDS)
def test_predict_dataframe_returns_dataframe_with_label_then_probabilities(
    client: Client, trained: dict[str, ModelVersion], kind: str
) -> None:
    frame = rows(6).set_axis(range(10, 16))
    out = client.predict(trained[kind].model_id, frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(frame.index)
    assert out.columns[0] == "label"
    probabilities = out.iloc[:, 1:]
    assert len(probabilities.columns) == len(trained[kind].signature.classes)
    assert probabilities.sum(axis=1).round(6).eq(1).all()
    assert set(out["label"]) <= set(trained[kind].signature.classes)


def test_one_row_dataframe_matches_the_arrow_answer(
    client: Client, trained: dict[str, ModelVersion]
) -> None:
    model = trained["catboost"].model_id
    frame = rows(1)
    for _ in range(2):  # the second call goes through the cached schema
        from_frame = client.predict(model, frame)
    table = client.predict(model, pa.Table.from_pandas(frame, preserve_index=False))
    assert from_frame.to_dict("list") == table.to_pydict()


@pytest.mark.parametrize("kind", KINDS)
def test_one_row_as_a_dict_is_answered_as_a_dict(
    client: Client, trained: dict[str, ModelVersion], kind: str
) -> None:
    model = trained[kind].model_id
    frame = rows(3)
    frame.loc[2, ["sex", "flipper_length_mm"]] = None  # a row with missing values
    for i in range(3):
        expected = client.predict(model, frame.iloc[[i]]).iloc[0].to_dict()
        as_python = {k: (None if pd.isna(v) else v) for k, v in frame.iloc[i].to_dict().items()}
        # Values as a web form gives them (Python's), and as pandas hands them out (numpy's).
        assert client.predict(model, as_python) == pytest.approx(expected)
        assert client.predict(model, frame.iloc[i].to_dict()) == pytest.approx(expected)
    with pytest.raises(TypeError, match=r"^column 'island': a row holds one value per column"):
        client.predict(model, {**frame.iloc[0].to_dict(), "island": ["Dream", "Biscoe"]})
    with pytest.raises(mc.InvalidArgument, match="island"):
        client.predict(model, {"sex": "male"})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_arrow_and_paths(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path, suffix: str
) -> None:
    table = pa.Table.from_pandas(rows(7), preserve_index=False)
    path = tmp_path / f"rows{suffix}"
    if suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    model = trained["logistic_regression"].model_id
    from_path = client.predict(model, path)
    assert isinstance(from_path, pa.Table)
    assert from_path.num_rows == 7
    assert from_path.equals(client.predict(model, table))


def test_train_from_arrow_and_parquet_and_dataframe(client: Client, tmp_path: Path) -> None:
    table = pacsv.read_csv(PENGUINS, convert_options=pacsv.ConvertOptions(null_values=[""]))
    pq.write_table(table, tmp_path / "penguins.parquet")
    params = FAST["logistic_regression"]
    versions = [
        client.train(data, "logistic_regression", "species", params, chunk_bytes=4096)
        for data in (table, tmp_path / "penguins.parquet", pd.read_csv(PENGUINS))
    ]
    assert {v.train_rows + v.holdout_rows for v in versions} == {table.num_rows}
    # The same rows give the same stored dataset, whichever way they were sent.
    assert versions[0].dataset_digest == versions[1].dataset_digest
    for version in versions:
        assert client.delete(version.model_id) == Deleted(versions=1, model_deleted=True)


def test_retrain_watch_jobs_and_delete_a_version(
    client: Client, trained: dict[str, ModelVersion]
) -> None:
    model = trained["catboost"].model_id
    updates: list[mc.Job] = []
    second = client.retrain(model, {"iterations": 10}, progress=updates.append)
    assert isinstance(second, ModelVersion)
    assert (second.version, second.parent_version) == (2, 1)
    assert second.hyperparameters["iterations"] == 10
    assert updates[-1].state is mc.JobState.SUCCEEDED
    assert any(u.progress.iteration > 0 for u in updates)
    assert second.job_id in {j.job_id for j in client.jobs(model)}
    assert [j.state for j in client.watch(second.job_id)][-1] is mc.JobState.SUCCEEDED
    assert client.delete(model, 2) == Deleted(versions=1, model_deleted=False)
    assert client.version(model).version == 1


def test_bad_hyperparameter_is_invalid_argument_naming_the_field(
    client: Client, penguins_csv: Path
) -> None:
    with pytest.raises(mc.InvalidArgument) as caught:
        client.train(penguins_csv, "catboost", "species", {"iterations": -3})
    fields = [v.field for v in caught.value.violations]
    assert any("iterations" in f for f in fields), fields
    assert "iterations" in str(caught.value)


def test_feature_types_read_a_column_as_asked(client: Client, penguins_csv: Path) -> None:
    version = client.train(penguins_csv, "logistic_regression", "species",
                           feature_types={"year": "categorical"})  # fmt: skip
    year = next(f for f in version.signature.features if f.name == "year")
    assert (year.feature_type, year.categories) == ("categorical", ("2007", "2008", "2009"))
    with pytest.raises(ValueError, match="column 'year' must be 'numeric' or 'categorical'"):
        client.train(penguins_csv, "logistic_regression", "species", feature_types={"year": "text"})


def test_resources_reach_the_service_on_train_and_retrain(
    client: Client, trained: dict[str, ModelVersion], penguins_csv: Path
) -> None:
    version = client.train(
        penguins_csv, "logistic_regression", "species", resources=mc.Resources(cpus=1)
    )
    assert version.version == 1
    with pytest.raises(mc.InvalidArgument) as caught:
        client.train(penguins_csv, "catboost", "species", resources=mc.Resources(cpus=1000))
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("resources.cpus", "asks for 1000 CPUs; this service allows at most 8 per job")
    ]
    model = trained["catboost"].model_id
    with pytest.raises(mc.InvalidArgument) as caught:
        client.retrain(model, resources=mc.Resources(memory_mb=512))
    assert [v.field for v in caught.value.violations] == ["resources.memory_mb"]
    # An unsigned field cannot carry it: refused before anything is sent, in the same words.
    with pytest.raises(ValueError, match=r"resources\.memory_mb must be positive, got -1"):
        client.retrain(model, resources=mc.Resources(memory_mb=-1))
    assert client.delete(version.model_id) == Deleted(versions=1, model_deleted=True)


def test_missing_column_in_predict_names_it(
    client: Client, trained: dict[str, ModelVersion]
) -> None:
    with pytest.raises(mc.InvalidArgument) as caught:
        client.predict(trained["catboost"].model_id, rows(2).drop(columns=["island"]))
    assert [v.field for v in caught.value.violations] == ["columns.island"]


def test_unknown_ids_are_not_found(client: Client) -> None:
    with pytest.raises(mc.NotFound):
        client.version("m-000000000000")
    with pytest.raises(mc.NotFound):
        client.job("j-000000000000")
    with pytest.raises(mc.NotFound):
        client.predict("m-000000000000", rows(1))


def test_cancel_a_finished_job_is_a_conflict(
    client: Client, trained: dict[str, ModelVersion]
) -> None:
    with pytest.raises(mc.Conflict):
        client.cancel(trained["catboost"].job_id)


def test_cancelled_job_raises_job_cancelled(client: Client, penguins_csv: Path) -> None:
    job = client.train(penguins_csv, "catboost", "species", {"iterations": 10000}, wait=False)
    assert client.cancel(job.job_id).state is mc.JobState.CANCELLED
    with pytest.raises(mc.JobCancelled) as caught:
        client.wait(job.job_id)
    assert caught.value.job.job_id == job.job_id


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_file_streams_many_batches_in_order(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path, suffix: str
) -> None:
    frame = pd.concat([rows(344)] * 3, ignore_index=True)
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / f"out{suffix}"
    model = trained["catboost"].model_id
    seen: list[int] = []
    summary = client.predict_file(model, source, out, batch_rows=100, progress=seen.append)
    assert summary.rows == len(frame)
    assert summary.batches == 11 and sum(seen) == len(frame)
    written = pq.read_table(out) if suffix == ".parquet" else pacsv.read_csv(out)
    expected = client.predict(model, frame)
    assert written.column("label").to_pylist() == expected["label"].tolist()
    if suffix == ".parquet":  # the very doubles too, whatever encodings the writer chose
        pd.testing.assert_frame_equal(written.to_pandas(), expected, check_exact=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_file_of_no_rows_writes_the_answers_columns(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path, suffix: str
) -> None:
    # An empty day's partition: the answers file was empty, which no Parquet reader opens
    # and a CSV reader takes for a file without columns.
    source = tmp_path / f"none{suffix}"
    empty = rows(0)
    empty.to_csv(source, index=False) if suffix == ".csv" else empty.to_parquet(source)
    out = tmp_path / f"answers{suffix}"
    version = trained["catboost"]
    summary = client.predict_file(version.model_id, source, out)
    written = pacsv.read_csv(out) if suffix == ".csv" else pq.read_table(out)
    assert (summary.rows, written.num_rows) == (0, 0)
    expected = ["label", *(f"proba_{c}" for c in version.signature.classes)]
    assert written.column_names == expected


def test_batches_over_the_message_limit_go_in_parts_and_a_table_over_it_is_named(
    start_service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A service taking messages of at most 1 MiB and a client keeping its batches' messages
    # under 256 kB: what 64 MiB and 16 MiB are to a table of a few hundred features.
    service = start_service(max_message_bytes=1024 * 1024)
    monkeypatch.setattr(mc.ipc, "STREAM_MESSAGE_BYTES", 256 * 1024)
    frame = pd.concat([rows(344)] * 120, ignore_index=True)  # 41,280 rows, ~2 MB as Arrow
    source = tmp_path / "rows.parquet"
    frame.to_parquet(source)
    with Client(service.target) as client:
        version = client.train(PENGUINS, "logistic_regression", "species")
        out = tmp_path / "answers.parquet"
        summary = client.predict_file(version.model_id, source, out)
        assert summary.batches > 1  # one batch, sent in parts
        written = pq.read_table(out).to_pandas()
        parts = [frame[first : first + 10_000] for first in range(0, len(frame), 10_000)]
        expected = pd.concat([client.predict(version.model_id, p) for p in parts])
        pd.testing.assert_frame_equal(written, expected, check_exact=True)
        # One Predict of the whole table passes the service's limit: said in words.
        with pytest.raises(mc.ResourceExhausted) as caught:
            client.predict(version.model_id, frame)
        assert re.fullmatch(
            r"a message of [\d,]+ bytes is over the service's \(MLOPS_MAX_MESSAGE_BYTES\) "
            r"limit of 1,048,576; send fewer rows at a time \(.*\)",
            caught.value.message,
        ), caught.value.message
        with pytest.raises(ValueError, match="batch_rows must be at least 1, not -5"):
            client.predict_file(version.model_id, source, out, batch_rows=-5)


@pytest.mark.parametrize("kind", ["logistic_regression", "catboost"])
def test_predict_file_csv_holds_the_very_answers_of_predict(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path, kind: str
) -> None:
    # The file's categories travel dictionary-encoded and the DataFrame's as text, in
    # batches past both kinds' few-row paths; the CSV's numbers read back as the very
    # doubles predict() returns (shortest round-trip text, nothing rounded).
    frame = pd.concat([rows(344)] * 6, ignore_index=True)
    assert frame["sex"].isna().any()  # missing categories are on the way too
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    model = trained[kind].model_id
    summary = client.predict_file(model, source, out, batch_rows=1500)
    assert summary.batches == 2
    written = pacsv.read_csv(out).to_pandas()
    pd.testing.assert_frame_equal(written, client.predict(model, frame), check_exact=True)


def test_tab_separated_files_train_and_predict_by_their_suffix(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    frame = pd.read_csv(PENGUINS)
    source = tmp_path / "penguins.tsv"
    frame.to_csv(source, index=False, sep="\t")
    version = client.train(source, "logistic_regression", "species")
    assert [f.name for f in version.signature.features] == list(frame.columns[1:])
    rows_tsv = tmp_path / "rows.tsv"
    frame.drop(columns=["species"]).to_csv(rows_tsv, index=False, sep="\t")
    out = tmp_path / "answers.tsv"
    client.predict_file(version.model_id, rows_tsv, out)
    written = pacsv.read_csv(out, parse_options=pacsv.ParseOptions(delimiter="\t"))
    expected = client.predict(version.model_id, frame.drop(columns=["species"]))
    pd.testing.assert_frame_equal(written.to_pandas(), expected, check_exact=True)


def test_missing_value_markers_are_missing_values_as_pandas_reads_them(
    client: Client, tmp_path: Path
) -> None:
    # The original palmerpenguins file, as R writes it: "NA" where a value is missing. Read
    # as a value, one "NA" made a numeric column text, trained as a category of each number.
    frame = pd.read_csv(PENGUINS)
    source = tmp_path / "penguins_from_r.csv"
    frame.to_csv(source, index=False, na_rep="NA")
    version = client.train(source, "logistic_regression", "species")
    features = {f.name: f for f in version.signature.features}
    assert features["bill_length_mm"].feature_type == "numeric"
    assert features["bill_length_mm"].null_count + features["sex"].null_count > 0
    assert set(features["sex"].categories) == {"female", "male"}
    # A spreadsheet's #N/A and a database's NULL, in the file predicted: the same answers
    # as for the DataFrame pandas reads, missing values and all.
    rows_csv = tmp_path / "rows.csv"
    rows_frame = frame.drop(columns=["species"])
    rows_frame.iloc[::2].to_csv(rows_csv, index=False, na_rep="#N/A")
    rows_frame.iloc[1::2].to_csv(rows_csv, index=False, na_rep="NULL", mode="a", header=False)
    out = tmp_path / "answers.csv"
    client.predict_file(version.model_id, rows_csv, out)
    expected = client.predict(version.model_id, pd.read_csv(rows_csv))
    assert pd.read_csv(rows_csv).isna().any().any()
    written = pacsv.read_csv(out).to_pandas()
    pd.testing.assert_frame_equal(written, expected, check_exact=True)


def test_a_spreadsheets_semicolons_and_decimal_commas_are_read_as_meant(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    # A spreadsheet writing decimals with a comma exports "39,1;18,7": read as commas, the
    # file was one column named after its header line.
    frame = pd.read_csv(PENGUINS)
    source = tmp_path / "penguins.csv"
    frame.to_csv(source, index=False, sep=";", decimal=",")
    assert "39,1;18,7" in source.read_text()
    version = client.train(source, "logistic_regression", "species")
    kinds = [(f.name, f.feature_type) for f in version.signature.features]
    assert kinds == [(f.name, f.feature_type) for f in trained["catboost"].signature.features]
    assert "numeric" in dict(kinds).values()
    rows_csv = tmp_path / "rows.csv"
    frame.drop(columns=["species"]).to_csv(rows_csv, index=False, sep=";", decimal=",")
    out = tmp_path / "answers.csv"
    client.predict_file(version.model_id, rows_csv, out)
    expected = client.predict(version.model_id, frame.drop(columns=["species"]))
    pd.testing.assert_frame_equal(pacsv.read_csv(out).to_pandas(), expected, check_exact=True)


def test_compressed_files_train_and_predict_through_their_codec(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    frame = pd.read_csv(PENGUINS)
    source = tmp_path / "penguins.csv.gz"
    frame.to_csv(source, index=False)  # pandas compresses by the suffix too
    version = client.train(source, "logistic_regression", "species")
    kinds = [(f.name, f.feature_type) for f in version.signature.features]
    assert kinds == [(f.name, f.feature_type) for f in trained["catboost"].signature.features]
    rows_tsv = tmp_path / "rows.tsv.bz2"
    frame.drop(columns=["species"]).to_csv(rows_tsv, index=False, sep="\t")
    out = tmp_path / "answers.csv.xz"
    client.predict_file(version.model_id, rows_tsv, out)
    expected = client.predict(version.model_id, frame.drop(columns=["species"]))
    pd.testing.assert_frame_equal(pd.read_csv(out), expected, check_exact=True)
    assert not list(tmp_path.glob(".partial-*"))
    # Cut short, as a copy that did not finish: named, not EOFError (the CLI's "Aborted.").
    whole = source.read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    for call in (
        lambda: client.train(cut, "logistic_regression", "species"),
        lambda: client.predict_file(version.model_id, cut, tmp_path / "cut_answers.csv"),
    ):
        with pytest.raises(ValueError, match=f"^{re.escape(str(cut))} cannot be decompressed: "):
            call()
    assert not (tmp_path / "cut_answers.csv").exists()


def test_a_workbook_or_parquet_given_as_csv_is_named_for_what_it_is(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    # Read as CSV, a workbook was "not UTF-8 (save the file as UTF-8)".
    workbook = tmp_path / "penguins.xlsx"
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    parquet_as_csv = tmp_path / "penguins.csv"
    pd.read_csv(PENGUINS).to_parquet(parquet_as_csv)
    model = trained["catboost"].model_id
    xlsx = "a zip archive, as an Excel workbook (.xlsx) is: save the sheet as CSV"
    for path, what in ((workbook, xlsx), (parquet_as_csv, "a Parquet file: name it .parquet")):
        with pytest.raises(ValueError, match=f"^{re.escape(f'{path} is {what}')}$"):
            client.train(path, "catboost", "species")
        with pytest.raises(ValueError, match=f"^{re.escape(f'{path} is {what}')}$"):
            client.predict_file(model, path, tmp_path / "answers.csv")


def test_text_with_line_breaks_in_a_file_over_a_block(client: Client, tmp_path: Path) -> None:
    # A free-text column with line breaks inside quotes, in a 2 MB file: cut at any line end,
    # pieces and blocks split a value in two ("line 71788: 1 field where the header has 9").
    frame = pd.concat([pd.read_csv(PENGUINS)] * 100, ignore_index=True)
    frame["comment"] = [f"seen at dawn\nnote {i}" if i % 3 else "plain" for i in range(len(frame))]
    source = tmp_path / "notes.csv"
    frame.to_csv(source, index=False)
    assert source.stat().st_size > 2 * 1024 * 1024
    version = client.train(source, "logistic_regression", "species")
    assert version.train_rows + version.holdout_rows == len(frame)
    out = tmp_path / "answers.csv"
    summary = client.predict_file(version.model_id, source, out, batch_rows=2000)
    assert summary.rows == len(frame) and summary.batches > 10
    expected = client.predict(version.model_id, frame.drop(columns=["species"]))
    pd.testing.assert_frame_equal(pacsv.read_csv(out).to_pandas(), expected, check_exact=True)


def test_a_quoted_value_over_a_block_is_named_in_words(client: Client, tmp_path: Path) -> None:
    # Was Arrow's "straddling object straddles two block boundaries (try to increase block
    # size?)", for training, predicting and REST alike.
    source = tmp_path / "long.csv"
    source.write_text('x,y\n1.5,"' + "a" * (3 << 20) + '"\n2,b\n')
    with pytest.raises(ValueError, match=r"^.*long\.csv: a value is over 1 MiB long \(quoted"):
        client.train(source, "logistic_regression", "y")


def test_a_label_read_as_missing_says_which_words_are_missing(
    client: Client, tmp_path: Path
) -> None:
    # pandas and `mlops` read "None" as missing: a class named None is told why it vanished.
    frame = pd.read_csv(PENGUINS)
    frame.loc[:2, "species"] = "None"
    source = tmp_path / "labels.csv"
    frame.to_csv(source, index=False)
    with pytest.raises(mc.InvalidArgument) as caught:
        client.train(source, "logistic_regression", "species")
    assert "column 'species' has 3 missing labels" in caught.value.message
    assert "markers such as NA, None and NULL are missing" in caught.value.message


def test_a_target_or_feature_named_with_other_case_or_spaces_is_pointed_to(
    client: Client, tmp_path: Path
) -> None:
    frame = pd.read_csv(PENGUINS).rename(columns={"species": "species "})  # a trailing space
    source = tmp_path / "spaced.csv"
    frame.to_csv(source, index=False)
    with pytest.raises(mc.InvalidArgument) as caught:
        client.train(source, "logistic_regression", "species", feature_columns=["Island"])
    message = caught.value.message
    assert "column 'species' is not in the data (did you mean 'species '?)" in message
    assert "column 'Island' is not in the data (did you mean 'island'?)" in message


def test_predict_file_reads_parquet_categories_as_stored(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    frame = pd.concat([rows(344)] * 2, ignore_index=True)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    out = tmp_path / "out.csv"
    model = trained["logistic_regression"].model_id
    summary = client.predict_file(model, source, out, batch_rows=300)
    assert (summary.rows, summary.batches) == (len(frame), 3)
    expected = client.predict(model, frame)
    written = pacsv.read_csv(out)
    assert written.column("label").to_pylist() == expected["label"].tolist()
    assert written.column(1).to_pylist() == pytest.approx(expected.iloc[:, 1].tolist())


@pytest.mark.parametrize("kind", ["logistic_regression", "catboost"])
def test_predict_file_sends_full_batches_from_small_parquet_row_groups(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path, kind: str
) -> None:
    # Row groups of 100 rows: the batches still hold 300 rows, dictionaries that differ from
    # group to group unified on the way, and the answers are predict()'s own.
    frame = pd.concat([rows(344)] * 2, ignore_index=True)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source, row_group_size=100)
    out = tmp_path / "out.parquet"
    model = trained[kind].model_id
    summary = client.predict_file(model, source, out, batch_rows=300)
    assert (summary.rows, summary.batches) == (len(frame), 3)
    pd.testing.assert_frame_equal(
        pq.read_table(out).to_pandas(), client.predict(model, frame), check_exact=True
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_file_missing_column_is_named_before_anything_is_sent(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path, suffix: str
) -> None:
    source = tmp_path / f"in{suffix}"
    frame = rows(50).drop(columns=["island"])
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source)
    with pytest.raises(ValueError, match=r"in\.\w+ lacks 1 of the model's 7 features: 'island'$"):
        client.predict_file(trained["catboost"].model_id, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_predict_file_of_another_separator_than_its_suffix_says_so(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    source = tmp_path / "in.tsv"  # tabs by its name, but separated by ';'
    rows(5).to_csv(source, index=False, sep=";")
    with pytest.raises(ValueError, match=r"its header is one column, 'island;bill_length_mm;.*"
                       r"separate them with commas$"):  # fmt: skip
        client.predict_file(trained["catboost"].model_id, source, tmp_path / "out.csv")


def test_predict_file_feature_twice_in_the_header_is_refused(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    # Which of the two the model should read is anyone's guess.
    source = tmp_path / "in.csv"
    frame = rows(5)
    pd.concat([frame, frame[["sex"]]], axis=1).to_csv(source, index=False)
    with pytest.raises(ValueError, match="column 'sex' appears more than once in its header"):
        client.predict_file(trained["catboost"].model_id, source, tmp_path / "out.csv")


def test_predict_file_unreadable_value_is_reported_in_the_files_terms(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    # Past the reader's first 1 MB block, so the error comes while the stream runs.
    frame = pd.concat([rows(344)] * 100, ignore_index=True)
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[len(frame) - 10, "bill_length_mm"] = "long"
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    line = len(frame) - 10 + 2  # its line, counting the header
    says = f"{source}, line {line}, column 'bill_length_mm': 'long' is not a number"
    with pytest.raises(ValueError, match=f"^{re.escape(says)}$") as caught:
        client.predict_file(trained["catboost"].model_id, source, tmp_path / "out.csv")
    assert not isinstance(caught.value, mc.MlopsError)  # the file's fault, not the service's


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", ": the file is empty; a CSV file begins with a line naming its columns"),
        ("species,island,bill_length_mm\nAdelie,Dream,1.5\nGentoo,Biscoe\n",
         ", line 3: 2 fields where the header has 3: 'Gentoo,Biscoe'"),
        ("species,island,bill_length_mm\nAdelie,Dream,1.5\nGentoo,Biscoe,2,7\n",
         ", line 3: 4 fields where the header has 3: 'Gentoo,Biscoe,2,7'"),
    ],
    ids=["empty", "a field short", "a field over"],
)  # fmt: skip
def test_train_from_a_broken_csv_names_the_file_and_line(
    client: Client, tmp_path: Path, text: str, says: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(source))}{re.escape(says)}$"):
        client.train(source, "logistic_regression", "species")


def test_text_that_is_not_utf8_names_its_column_and_line(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    rows(3).to_csv(source, index=False)
    lines = source.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"Torgersen", b"Torg\xe9rsen")  # Latin-1, not UTF-8
    source.write_bytes(b"\n".join(lines))
    says = r"in\.csv, line 3, column 'island': holds bytes that are not UTF-8 text \(save the"
    with pytest.raises(ValueError, match=says):
        client.predict_file(trained["catboost"].model_id, source, tmp_path / "out.csv")
    with pytest.raises(ValueError, match=says):  # typed by Arrow as bytes, not text, at first
        client.train(source, "logistic_regression", "sex")


def test_a_damaged_parquet_upload_is_named_and_creates_no_job(
    client: Client, tmp_path: Path
) -> None:
    # Past its footer the file is read while the upload streams; the call is cancelled.
    table = pa.table({"species": ["Adelie", "Gentoo"] * 50_000, "mass": range(100_000)})
    pq.write_table(table, tmp_path / "good.parquet", row_group_size=10_000)
    data = bytearray((tmp_path / "good.parquet").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2_000] = bytes(2_000)
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(data))
    jobs = len(client.jobs())
    with pytest.raises(ValueError, match=r"damaged\.parquet cannot be read as Parquet: ."):
        client.train(damaged, "logistic_regression", "species")
    assert len(client.jobs()) == jobs


def test_a_file_that_is_not_parquet_is_named(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    source = tmp_path / "rows.parquet"
    rows(5).to_csv(source, index=False)
    says = r"rows\.parquet cannot be read as Parquet: .*magic bytes"
    with pytest.raises(ValueError, match=says):
        client.predict_file(trained["catboost"].model_id, source, tmp_path / "out.csv")
    with pytest.raises(ValueError, match=says):
        client.train(source, "catboost", "species")


def test_a_dataframe_column_of_mixed_types_is_named(
    client: Client, trained: dict[str, ModelVersion]
) -> None:
    frame = pd.read_csv(PENGUINS)
    frame["sex"] = [1 if i % 3 == 0 else "male" for i in range(len(frame))]  # object column
    says = r"^column 'sex' holds values of more than one type: .*'male'"
    with pytest.raises(ValueError, match=says):
        client.predict(trained["catboost"].model_id, frame.drop(columns=["species"]).head(3))
    with pytest.raises(ValueError, match=says):
        client.train(frame, "logistic_regression", "species")


def test_predict_file_never_leaves_half_written_answers_or_ruins_a_file(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    model = trained["catboost"].model_id
    frame = pd.concat([rows(344)] * 100, ignore_index=True)
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    before = source.read_bytes()
    with pytest.raises(ValueError, match="is the file being predicted; write the answers to an"):
        client.predict_file(model, source, source)
    assert source.read_bytes() == before  # writing over it would have emptied it as it was read
    with pytest.raises(ValueError, match=r"is not a directory, so .* cannot be written"):
        client.predict_file(model, source, tmp_path / "missing" / "out.csv")
    with pytest.raises(FileNotFoundError, match=r"^no such file: .*nope\.csv$"):
        client.predict_file(model, tmp_path / "nope.csv", tmp_path / "out.csv")
    with pytest.raises(IsADirectoryError, match=r" is a directory, not a CSV or Parquet file"):
        client.predict_file(model, tmp_path, tmp_path / "out.csv")

    out = tmp_path / "out.csv"
    out.write_text("yesterday's answers\n")
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[len(frame) - 10, "bill_length_mm"] = "long"  # fails after answers were written
    broken = tmp_path / "broken.csv"
    frame.to_csv(broken, index=False)
    with pytest.raises(ValueError, match="'long' is not a number"):
        client.predict_file(model, broken, out, batch_rows=1000)
    assert out.read_text() == "yesterday's answers\n"

    summary = client.predict_file(model, source, out, batch_rows=1000)
    assert pacsv.read_csv(out).num_rows == summary.rows == len(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.csv", "in.csv", "out.csv"]
    link = tmp_path / "latest.csv"  # a link to the answers is followed, not replaced
    link.symlink_to(out)
    client.predict_file(model, source, link, batch_rows=1000)
    assert link.is_symlink() and pacsv.read_csv(link).num_rows == len(frame)


def test_unreachable_service_is_unavailable_after_retries() -> None:
    with (
        Client("127.0.0.1:1", retries=2, backoff=0.01, timeout=2) as lost,
        pytest.raises(mc.Unavailable),
    ):
        lost.kinds()


@pytest.mark.parametrize(
    ("labels", "target_name"),
    [
        (pd.Index(range(8)), "0"),  # a frame read with header=None
        # A pivot's MultiIndex with a level of numbers, named as pyarrow names it.
        (pd.MultiIndex.from_tuples([("penguin", i) for i in range(8)]), "('penguin', '0')"),
    ],
    ids=["ints", "tuples"],
)
def test_column_labels_that_are_not_text_train_and_predict_as_given(
    client: Client, labels: pd.Index, target_name: str
) -> None:
    plain = pd.read_csv(PENGUINS).iloc[::3]
    frame = plain.set_axis(labels, axis=1)
    target, island, year = labels[0], labels[1], labels[7]
    version = client.train(
        frame, "catboost", target, FAST["catboost"], feature_types={year: "categorical"},
        feature_columns=[island, *labels[2:]],
    )  # fmt: skip
    assert version.signature.target_column == target_name
    same = client.train(
        plain, "catboost", "species", FAST["catboost"], feature_types={"year": "categorical"}
    )
    answers = client.predict(version.model_id, frame.drop(columns=[target]).head(20))
    expected = client.predict(same.model_id, plain.drop(columns=["species"]).head(20))
    pd.testing.assert_frame_equal(answers, expected)
    for model in (version.model_id, same.model_id):
        client.delete(model)


def test_a_dataframe_column_named_twice_is_named_before_anything_is_sent(
    client: Client,
) -> None:
    # pd.concat of two frames sharing a column, or labels 1 and "1" that name one column.
    frame = pd.read_csv(PENGUINS)
    twice = pd.concat([frame, frame[["sex"]]], axis=1)
    with pytest.raises(ValueError, match=r"^column 'sex' appears more than once in the DataFrame"):
        client.train(twice, "logistic_regression", "species")
    alike = frame.set_axis([*frame.columns[:-1], 1], axis=1).assign(**{"1": 2})
    with pytest.raises(ValueError, match=r"^column '1' appears more than once in the DataFrame"):
        client.train(alike, "logistic_regression", "species")


def test_a_long_violation_is_said_once(client: Client) -> None:
    # Naming 30 columns passes the 200 characters the service keeps of a violation.
    frame = pd.read_csv(PENGUINS).rename(columns={"species": "label"})
    wide = frame.assign(**{f"measurement_{i}": 0.0 for i in range(30)})
    with pytest.raises(mc.InvalidArgument) as caught:
        client.train(wide, "logistic_regression", "species")
    said = str(caught.value)
    assert said.count("column 'species' is not in the data") == 1
    assert said == caught.value.message


@pytest.mark.parametrize(
    ("values", "says"),
    [
        # Python's ints have no bound: an id or a product of ints in an object column.
        (
            pd.Series([2**70, 1], dtype=object),
            r"^column 'year' holds a whole number beyond 64 bits \(1180591620717411303424\)",
        ),
        (
            pd.Series([1 + 2j, 3j]),
            r"^column 'year' holds complex128 values, which have no Arrow type",
        ),
    ],
    ids=["int-beyond-64-bits", "complex"],
)
def test_a_dataframe_column_arrow_cannot_hold_is_named(
    client: Client, trained: dict[str, ModelVersion], values: pd.Series, says: str
) -> None:
    frame = rows(2).assign(year=values.to_numpy())
    with pytest.raises(ValueError, match=says):
        client.predict(trained["catboost"].model_id, frame)
    with pytest.raises(ValueError, match=says):
        client.train(frame.assign(species=["Adelie", "Gentoo"]), "catboost", "species")


def test_sparse_columns_train_and_predict_as_the_dense_ones(client: Client) -> None:
    # pd.get_dummies(sparse=True) makes them; Arrow has no sparse arrays.
    plain = pd.get_dummies(pd.read_csv(PENGUINS).iloc[::3], columns=["island"])
    sparse = pd.get_dummies(pd.read_csv(PENGUINS).iloc[::3], columns=["island"], sparse=True)
    sparse["bill_length_mm"] = pd.arrays.SparseArray(sparse["bill_length_mm"])  # NaN fills
    assert isinstance(sparse.dtypes["island_Dream"], pd.SparseDtype)
    versions = [client.train(f, "catboost", "species", FAST["catboost"]) for f in (plain, sparse)]
    assert versions[0].dataset_digest == versions[1].dataset_digest
    answers = [
        client.predict(v.model_id, f.drop(columns=["species"]).head(20))
        for v, f in zip(versions, (plain, sparse), strict=True)
    ]
    pd.testing.assert_frame_equal(answers[1], answers[0])
    for version in versions:
        client.delete(version.model_id)


def test_predict_stream_of_dataframes_answers_each_indexed_like_it(
    client: Client, trained: dict[str, ModelVersion]
) -> None:
    model = trained["catboost"].model_id
    chunks = pd.read_csv(PENGUINS, chunksize=100)  # frames indexed 0-99, 100-199, …
    answers = list(client.predict_stream(model, (c.drop(columns=["species"]) for c in chunks)))
    assert [len(a) for a in answers] == [100, 100, 100, 44]
    expected = client.predict(model, pd.read_csv(PENGUINS).drop(columns=["species"]))
    pd.testing.assert_frame_equal(pd.concat(answers), expected)
    # What cannot be sent is said in the caller's words, after the answers before it.
    frame = rows(3)
    mixed = frame.assign(sex=pd.Series([1, "male", "female"], dtype=object))
    for bad, error, says in [
        (mixed, ValueError, r"^column 'sex' holds values of more than one type"),
        (frame.iloc[0], TypeError, r"^expected a pandas DataFrame or an Arrow table or batch"),
    ]:
        got: list[pd.DataFrame] = []
        with pytest.raises(error, match=says):
            got.extend(client.predict_stream(model, [frame, bad, frame]))
        assert len(got) == 1
        pd.testing.assert_frame_equal(got[0], client.predict(model, frame))


def test_predict_stream_joins_an_answer_sent_in_parts(start_service: Any) -> None:
    # 60 classes from one feature: 2,000 rows' answers pass half a 1 MiB message cap, so
    # the service sends each in parts, which the stream gives back as one answer.
    service = start_service(max_message_bytes=1024 * 1024)
    labels = np.repeat(np.arange(60), 5)
    table = pd.DataFrame({"x": labels + np.random.default_rng(3).normal(0, 0.1, 300), "y": labels})
    frames = [pd.DataFrame({"x": np.linspace(0, 60, n)}, index=range(7, 7 + n)) for n in (2000, 50)]
    with Client(service.target) as client:
        model = client.train(table, "logistic_regression", "y", allow_many_classes=True).model_id
        answers = list(client.predict_stream(model, frames))
        assert [list(a.index) for a in answers] == [list(f.index) for f in frames]
        for answer, frame in zip(answers, frames, strict=True):
            pieces = [frame.iloc[first : first + 500] for first in range(0, len(frame), 500)]
            expected = pd.concat([client.predict(model, p) for p in pieces])
            pd.testing.assert_frame_equal(answer, expected)
        batches = [pa.Table.from_pandas(f, preserve_index=False) for f in frames]
        assert [a.num_rows for a in client.predict_stream(model, batches)] == [2000, 50]


def test_an_arrow_table_of_a_filtered_dataframe_does_not_train_on_its_index(
    client: Client, tmp_path: Path
) -> None:
    # pa.Table.from_pandas and DataFrame.to_parquet keep a filtered frame's index as a
    # column, __index_level_0__: penguins are sorted by species, so it predicted them.
    frame = pd.read_csv(PENGUINS)
    kept = frame[frame["island"] != "Torgersen"]
    named = kept.rename_axis("row")
    kept.to_parquet(tmp_path / "kept.parquet")
    sources = [pa.Table.from_pandas(kept), pa.Table.from_pandas(named), tmp_path / "kept.parquet"]
    assert "__index_level_0__" in pq.read_schema(tmp_path / "kept.parquet").names
    plain = client.train(kept, "catboost", "species", FAST["catboost"])
    for source in sources:
        version = client.train(source, "catboost", "species", FAST["catboost"])
        assert version.signature.features == plain.signature.features
        pd.testing.assert_frame_equal(
            client.predict(version.model_id, rows(30)), client.predict(plain.model_id, rows(30))
        )
        client.delete(version.model_id)
    # Named, the index is read as any column.
    chosen = client.train(sources[1], "catboost", "species", feature_columns=["row", "island"])
    assert [f.name for f in chosen.signature.features] == ["row", "island"]
    for model in (plain.model_id, chosen.model_id):
        client.delete(model)


def test_a_path_that_is_no_file_is_named_alike_by_every_method(
    client: Client, trained: dict[str, ModelVersion], tmp_path: Path
) -> None:
    model = trained["catboost"].model_id
    pd.read_csv(PENGUINS).to_parquet(tmp_path / "dataset", partition_cols=["island"])
    for path, error, says in [
        (tmp_path / "nope.csv", FileNotFoundError, r"^no such file: .*nope\.csv$"),
        (
            tmp_path / "dataset",
            IsADirectoryError,
            r"^.*dataset is a directory, not a CSV or Parquet file; .*pyarrow\.dataset",
        ),
        # A device exists: "no such file" would send the user looking for a typo.
        (Path("/dev/null"), OSError, r"^/dev/null is not a regular file; save its rows to a file"),
    ]:
        with pytest.raises(error, match=says):
            client.predict(model, path)
        with pytest.raises(error, match=says):
            client.predict(model, str(path))
        with pytest.raises(error, match=says):
            client.predict_file(model, path, tmp_path / "out.csv")
        with pytest.raises(error, match=says):
            client.train(path, "catboost", "species")


def test_one_feature_column_given_as_text_is_that_column(client: Client) -> None:
    version = client.train(
        PENGUINS, "catboost", "species", FAST["catboost"], feature_columns="island"
    )
    assert [f.name for f in version.signature.features] == ["island"]  # not 'i', 's', 'l', …
    client.delete(version.model_id)


class DataFrame:
    """Another library's DataFrame (polars has one of this name)."""


def test_what_is_no_table_is_named_by_its_package_with_a_hint_for_one_row(
    client: Client, trained: dict[str, ModelVersion]
) -> None:
    model = trained["catboost"].model_id
    frame = rows(3)
    for data, says in [
        (DataFrame(), r"^expected a pandas DataFrame, .*, not tests\.DataFrame$"),
        (frame.iloc[0], r", not pandas\.Series; one row of a DataFrame is frame\.iloc\[\[i\]\]"),
    ]:
        with pytest.raises(TypeError, match=says):
            client.predict(model, data)
        with pytest.raises(TypeError, match=says):
            client.train(data, "catboost", "species")
    # A row as a dict is predicted (a dict answers it); one row cannot train.
    says = r", not dict; a row as a dict is pandas\.DataFrame\(\[row\]\)"
    with pytest.raises(TypeError, match=says):
        client.train(frame.iloc[0].to_dict(), "catboost", "species")
