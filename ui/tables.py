"""What the person reads: gateway answers and CSV files turned into tables and short texts."""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, cast

import pandas as pd
from pydantic import JsonValue

from mlops_client.csv_dialect import DECOMPRESSION_ERRORS, Dialect, NotCsv, dialect_of, open_bytes
from mlops_client.files import MISSING_VALUES, head_rows, note_above, note_above_header
from ui.schemas import METRIC_NAMES, Job, Metrics, Model, ModelVersion, PredictResponse

# Type detection reads at most this many rows, so a huge upload does not stall the page.
TYPE_SAMPLE_ROWS = 100_000
MISSING = "—"
MARKDOWN_SPECIAL = set("\\`*_[]<>#|~")
MODELS_COLUMNS = ["Model", "Name", "Kind", "Version", "Created", "Accuracy", "F1 (macro)"]
MODELS_COLUMNS += ["ROC AUC", "Training rows"]
COMPARE_COLUMNS = ["Metric", "Parent", "New", "Change"]
TYPES_COLUMNS = ["Column", "Detected type", "Missing", "Distinct", "Examples"]
METRICS_COLUMNS = ["Metric", "Holdout value"]
HYPERPARAMETER_COLUMNS = ["Hyperparameter", "Value"]
SIGNATURE_COLUMNS = ["Feature", "Type", "Arrow type", "Missing", "Categories"]
PREVIEW_PLACEHOLDER = ["Upload a CSV to see its first rows"]
ROWS_PLACEHOLDER = ["Choose a model to see the columns it expects"]


def empty(columns: list[str]) -> pd.DataFrame:
    """An empty table that still shows what it will hold."""
    return pd.DataFrame(columns=columns)


class BadCSV(ValueError):
    """A file that is not a readable CSV table."""


def read_csv(path: str | Path, nrows: int | None = None) -> pd.DataFrame:
    """Read a CSV as the gateway will: its dialect, missing-value markers missing, text text."""
    try:
        dialect = dialect_of(Path(path))
    except NotCsv as refused:
        raise BadCSV(f"{Path(path).name} is {refused.what}.") from None
    try:
        frame = pd.read_csv(
            path,
            nrows=nrows,
            sep=dialect.separator,
            decimal=dialect.decimal,
            keep_default_na=False,
            na_values=list(MISSING_VALUES),
        )
    except pd.errors.EmptyDataError:
        # Said as the gateway and `mlops` say it, not as pandas does ("No columns to parse").
        raise BadCSV(
            f"{Path(path).name} is empty; a CSV file begins with a line naming its columns."
        ) from None
    except UnicodeDecodeError:
        # Python's words ("'utf-8' codec can't decode byte 0xe9 …") mean nothing to the person
        # who exported a spreadsheet as Latin-1.
        raise BadCSV(
            f"{Path(path).name} is not a readable CSV file: it holds bytes that are not UTF-8 "
            "text (a CSV saved as Latin-1? save it as UTF-8)."
        ) from None
    except (ValueError, pd.errors.ParserError, *DECOMPRESSION_ERRORS) as error:
        if isinstance(error, pd.errors.ParserError):  # a row wider than a note above it
            _check_note(Path(path), dialect)
        raise BadCSV(f"{Path(path).name} is not a readable CSV file: {error}") from None
    if frame.columns.empty:
        raise BadCSV(f"{Path(path).name} has no columns.")
    # A note above the header (a tool's "# exported by X") is one column to pandas: its name
    # the note, the header a row (or, above a header one wider, the rows' index).
    if len(frame.columns) == 1:
        _check_note(Path(path), dialect)
    return frame


def _check_note(path: Path, dialect: Dialect) -> None:
    """Refuse a file whose first line is a note above its header, in `mlops`' words (R97)."""
    try:
        with open_bytes(path) as file:
            text = io.TextIOWrapper(cast(IO[bytes], file), encoding="utf-8-sig", errors="replace")
            note = note_above(head_rows(text, dialect.separator), dialect.decimal)
    except (OSError, *DECOMPRESSION_ERRORS):
        return
    if note is not None:
        raise BadCSV(f"{path.name}, line 1: {note_above_header(note)}.")


def detected_type(column: pd.Series) -> str:
    """Name the type the service will likely infer: numbers are numeric, the rest categorical."""
    is_number = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return "numeric" if is_number else "categorical"


def column_types(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per column: detected type, missing values, distinct values and examples."""
    rows = []
    for name in frame.columns:
        column = frame[name]
        examples = ", ".join(_example(v) for v in column.dropna().unique()[:3])
        rows.append(
            {
                "Column": str(name),
                "Detected type": detected_type(column),
                "Missing": int(column.isna().sum()),
                "Distinct": int(column.nunique()),
                "Examples": examples,
            }
        )
    return pd.DataFrame(rows, columns=TYPES_COLUMNS)


def escape(text: str) -> str:
    """Make text from the data or the gateway show literally in Markdown (e.g. __missing__)."""
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in text)


def _example(value: object) -> str:
    # A column with gaps reads as floats; 181.0 is 181 to the person who wrote the CSV.
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number(value: float | None, digits: int = 4) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def format_time(value: datetime | None) -> str:
    return MISSING if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def model_name(model: Model) -> str:
    """Name a model once: "name · id", or just the id when it has no name."""
    return f"{model.name} · {model.model_id}" if model.name else model.model_id


def markdown_name(model: Model | ModelVersion, name: str = "") -> str:
    """Name a model in Markdown: **name** (`id`), or `id` alone when it has no name."""
    name = name or getattr(model, "name", "")
    return f"**{escape(name)}** (`{model.model_id}`)" if name else f"`{model.model_id}`"


def model_label(model: Model) -> str:
    """Name a model in a dropdown: its name (if any), id and kind."""
    return f"{model_name(model)} · {model.kind}"


def models_table(models: Sequence[Model], versions: dict[str, list[ModelVersion]]) -> pd.DataFrame:
    """One row per version, newest model first, with its key holdout metrics."""
    rows = []
    for model in models:
        for v in versions.get(model.model_id, []):
            metrics = v.metrics or Metrics()
            scores = [metrics.accuracy, metrics.f1_macro, metrics.roc_auc]
            rows.append(
                [model.model_id, model.name, model.kind, v.version, format_time(v.create_time)]
                + [_number(score) for score in scores]
                + [v.train_rows]
            )
    return pd.DataFrame(rows, columns=MODELS_COLUMNS)


def metrics_table(version: ModelVersion) -> pd.DataFrame:
    """The holdout metrics of a version, one per row."""
    metrics = (version.metrics or Metrics()).model_dump()
    rows = [[label, _number(metrics[key])] for key, label in METRIC_NAMES.items()]
    return pd.DataFrame(rows, columns=METRICS_COLUMNS)


def compare_metrics(
    parent: ModelVersion, child: ModelVersion, names: tuple[str, str] = ("Parent", "New")
) -> pd.DataFrame:
    """The metrics of a version beside another's (a retrained one beside its parent), with
    the change from the first to the second."""
    before = (parent.metrics or Metrics()).model_dump()
    after = (child.metrics or Metrics()).model_dump()
    rows = []
    for key, label in METRIC_NAMES.items():
        old, new = before[key], after[key]
        change = MISSING if old is None or new is None else f"{new - old:+.4f}"
        rows.append([label, _number(old), _number(new), change])
    rows.append(["Training rows", str(parent.train_rows), str(child.train_rows), MISSING])
    headers = ["Metric", f"{names[0]} v{parent.version}", f"{names[1]} v{child.version}", "Change"]
    return pd.DataFrame(rows, columns=headers)


def hyperparameters_table(version: ModelVersion) -> pd.DataFrame:
    """The hyperparameters a version was trained with, defaults included."""
    rows = [[name, _cell(value)] for name, value in sorted(version.hyperparameters.items())]
    return pd.DataFrame(rows, columns=HYPERPARAMETER_COLUMNS)


def signature_table(version: ModelVersion) -> pd.DataFrame:
    """The feature columns a version expects, as it saw them in training."""
    rows = [
        [f.name, f.feature_type or MISSING, f.arrow_type, f.null_count, ", ".join(f.categories)]
        for f in version.signature.features
    ]
    return pd.DataFrame(rows, columns=SIGNATURE_COLUMNS)


def version_summary(name: str, version: ModelVersion) -> str:
    """Markdown about a version of the model called `name`: what, when, on how much data."""
    parent = version.lineage.parent_version
    origin = f"retrained from v{parent}" if parent else "first version"
    classes = escape(", ".join(version.signature.classes))
    target = escape(version.signature.target_column)
    notes = "".join(f"\n\n> Note: {escape(note)}" for note in version.notes)
    return (
        f"{markdown_name(version, name)} version **{version.version}**, {version.kind}; "
        f"{origin}; created {format_time(version.create_time)}.\n\n"
        f"Predicts **{target}** ({classes}); trained on "
        f"{version.train_rows} rows, {version.holdout_rows} held out for the metrics.{notes}"
    )


def predictions_table(rows: pd.DataFrame, answer: PredictResponse, target: str) -> pd.DataFrame:
    """The input rows followed by the predicted label and one probability column per class."""
    result = rows.reset_index(drop=True).copy()
    label = f"Predicted {target}" if target else "Predicted label"
    result[label] = [p.label for p in answer.predictions]
    classes = list(dict.fromkeys(c for p in answer.predictions for c in p.probabilities))
    for name in classes:
        result[f"P({name})"] = [
            None if p.probabilities.get(name) is None else round(p.probabilities[name] or 0, 4)
            for p in answer.predictions
        ]
    return result


def to_csv(frame: pd.DataFrame) -> bytes:
    """Write a table as CSV bytes; missing values are empty fields."""
    buffer = io.StringIO()
    # A column with gaps reads as floats; "%.15g" writes 195.0 back as 195 (and 39.1 as 39.1),
    # so integer columns keep their type on the way to the model.
    frame.to_csv(buffer, index=False, float_format="%.15g")
    return buffer.getvalue().encode()


STAGES = {
    "queued": "Waiting for a worker",
    "preparing": "Preparing the data",
    "fitting": "Fitting",
    "evaluating": "Scoring the holdout",
    "saving": "Saving the model",
}


AFTER_FITTING = ("evaluating", "saving", "done")


def shown_percent(job: Job) -> int:
    """The percentage a person reads: of the iterations when the kind counts them.

    The service's fraction weighs in preparing and saving too, which made "iteration 733 of
    5000" read as 17%; the iterations are what a person checks the percentage against.
    """
    progress = job.progress
    if progress.stage in AFTER_FITTING:
        done = 1.0
    elif progress.stage in ("queued", "preparing"):
        done = 0.0
    elif progress.total_iterations:
        done = progress.iteration / progress.total_iterations
    else:
        done = progress.fraction
    return round(100 * min(max(done, 0.0), 1.0))


def progress_html(job: Job | None) -> str:
    """A progress bar for a job, with its stage and iteration in words."""
    if job is None:
        return '<div class="job-progress" data-state="idle" data-percent="0"></div>'
    percent = shown_percent(job)
    if job.state == "succeeded":
        percent, text = 100, "Done"
    elif job.state == "failed":
        text = f"Failed: {job.error.message if job.error else 'unknown error'}"
    elif job.state == "cancelled":
        text = "Cancelled"
    else:
        text = STAGES.get(job.progress.stage, job.progress.stage.capitalize() or "Working")
        if job.progress.total_iterations:
            text += f": iteration {job.progress.iteration} of {job.progress.total_iterations}"
    return (
        f'<div class="job-progress" data-state="{job.state}" data-percent="{percent}">'
        f'<div class="job-progress-track"><div class="job-progress-fill" '
        f'style="width: {percent}%"></div></div>'
        f'<div class="job-progress-text">{html.escape(text)} · {percent}%</div></div>'
    )
