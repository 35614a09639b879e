"""Handlers for issue 15: jobs, re-attaching, columns, plain-words errors and small fixes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import gradio as gr
import httpx
import pandas as pd

from tests.ui.fakes import KINDS, MODEL, FakeGateway, alert, fitting, job, problem, sse, version
from ui import columns, forms, tables
from ui.handlers import Handlers
from ui.jobs import Jobs
from ui.schemas import Job, ModelKind, ModelVersion
from ui.training import Training

KIND_LIST = [ModelKind.model_validate(k) for k in KINDS["kinds"]]


def jobs_answer(*bodies: dict[str, object]) -> dict[str, object]:
    return {"jobs": list(bodies), "next_page_token": ""}


def test_the_jobs_tab_lists_jobs_with_state_progress_duration_and_error(
    gateway: FakeGateway,
) -> None:
    running = fitting(733, 5000) | {"start_time": "2026-01-02T03:04:05Z"}
    failed = job("failed", job_id="j-0", error={"code": "X", "message": "bad target"})
    failed |= {"start_time": "2026-01-02T03:00:00Z", "end_time": "2026-01-02T03:01:05Z"}
    gateway.routes[("GET", "/v1/jobs")] = jobs_answer(running, failed)
    table, pick, offered, shown = Jobs(gateway.client()).refresh(None, [])
    rows = table.to_dict("records")
    assert rows[0]["State"] == "running"
    assert rows[0]["Progress"] == "Fitting: iteration 733 of 5000 · 15%"  # the iterations' share
    assert rows[1]["Duration"] == "1 min 5 s" and rows[1]["Error"] == "bad target"
    assert pick["choices"] == ["j-1"] and pick["value"] == "j-1" and offered == ["j-1"]
    assert shown == ""
    # The same jobs again leave the picker alone, so an open dropdown is not reset.
    assert Jobs(gateway.client()).refresh("j-1", ["j-1"])[1] == gr.skip()


def test_cancel_from_the_jobs_tab_asks_the_gateway_or_says_there_is_nothing(
    gateway: FakeGateway,
) -> None:
    gateway.routes[("POST", "/v1/jobs/j-1/cancel")] = lambda _: httpx.Response(
        200, json=job("cancelled")
    )
    said, shown = Jobs(gateway.client()).cancel("j-1")
    assert said == "Asked job `j-1` to stop; it was cancelled." and shown == ""
    assert "No job is queued or running" in alert(Jobs(gateway.client()).cancel(None)[-1])


def test_a_page_load_follows_the_running_job_and_keeps_the_button_disabled(
    gateway: FakeGateway, training: Training
) -> None:
    gateway.routes[("GET", "/v1/jobs")] = jobs_answer(fitting(5, 10))
    done = job("succeeded", fraction=1.0, result=version(1))
    gateway.routes[("GET", "/v1/jobs/j-1/events")] = lambda _: sse([fitting(6, 10), done])
    updates = list(training.attach_train())
    assert updates[0][0] == "j-1" and updates[0][4]["interactive"] is False
    assert 'data-percent="50"' in updates[0][1]
    assert updates[-1][4]["interactive"] is True and "Done · 100%" in updates[-1][1]
    # A retraining job is the Retrain tab's to follow, not the Train tab's.
    gateway.routes[("GET", "/v1/jobs")] = jobs_answer(fitting(5, 10) | {"parent_version": 1})
    (nothing,) = list(training.attach_train())
    assert all(update == gr.skip() for update in nothing)


def test_id_like_columns_are_suggested_for_exclusion_and_the_chosen_ones_sent(
    gateway: FakeGateway, training: Training, penguins: Path, tmp_path: Path
) -> None:
    frame = tables.read_csv(penguins)
    frame.insert(0, "row_id", range(len(frame)))
    frame.insert(1, "tag", [f"p{i}" for i in range(len(frame))])
    csv = tmp_path / "with-ids.csv"
    frame.to_csv(csv, index=False)
    _, _, _, features, as_categorical, _, hint, _ = training.load_csv(str(csv))
    assert "row_id" not in features["value"] and "tag" not in features["value"]
    assert "'row_id', 'tag'" in hint and "year" in as_categorical["choices"]
    gateway.routes[("POST", "/v1/jobs")] = lambda _: httpx.Response(202, json=job("succeeded"))
    chosen = [c for c in features["value"] if c not in ("island", "species")]
    list(
        training.train(
            "catboost", KIND_LIST, str(csv), "species", "", "", 0.2, None,
            chosen, ["year"], [], True, 300, 0.1, "none", False,
        )
    )  # fmt: skip
    sent = gateway.last("POST", "/v1/jobs").read().decode()
    sent_features = re.search(r'name="feature_columns"\r\n\r\n(.*)\r\n', sent)
    assert sent_features and "island" not in json.loads(sent_features[1])
    assert "row_id" not in json.loads(sent_features[1])
    assert 'name="feature_types"\r\n\r\n{"year": "categorical"}' in sent
    assert 'name="allow_many_classes"\r\n\r\ntrue' in sent


def test_a_continuous_or_id_like_target_is_warned_about_with_the_rule(
    training: Training, penguins: Path
) -> None:
    features, warning, allow, _ = training.check_target(str(penguins), "body_mass_g", ["sex"])
    assert "more than 50 classes" in warning and "Allow many classes" in warning
    assert allow["visible"] is True and features["value"] == ["sex"]
    _, fine, hidden, _ = training.check_target(str(penguins), "species", ["species", "sex"])
    assert fine == "" and hidden["visible"] is False
    floats = pd.DataFrame({"y": [0.5, 1.25, 2.0] * 10})
    assert "fractional part" in columns.target_problem(floats, "y")
    sparse = pd.DataFrame({"y": list(range(12)) * 3})
    assert "3.0 rows per class" in columns.target_problem(sparse, "y")


def test_a_bad_number_names_the_column_and_the_first_bad_row(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    message = "column 'body_mass_g' must hold numbers ('heavy' is not a number)"
    gateway.routes[("POST", "/v1/models/m-1/predict")] = lambda _: problem(
        400, f"batches[0].columns.body_mass_g: {message}"
    )
    rows = pd.DataFrame({"island": ["Dream", "Biscoe"], "body_mass_g": ["3500", "heavy"]})
    results, download, shown = handlers.predict("m-1", 0, rows)
    text = alert(shown)
    assert "batches[0]" not in text and "columns." not in text
    assert "column 'body_mass_g' must hold numbers ('heavy' is not a number)" in text
    assert "The first bad row is row 2: 'heavy' in column 'body_mass_g'" in text
    assert results.empty and download == gr.update(value=None, visible=False)


def test_the_percentage_is_that_of_the_iterations() -> None:
    assert tables.shown_percent(Job.model_validate(fitting(733, 5000))) == 15
    assert tables.shown_percent(Job.model_validate(job("running", "saving", 0.95))) == 100
    assert tables.shown_percent(Job.model_validate(job("running", "preparing", 0.1))) == 0


def test_delete_offers_the_latest_version_first_and_a_new_question_clears_the_old_result(
    handlers: Handlers,
) -> None:
    choices, _ = handlers.delete_choices("m-1")
    assert choices["value"] == 2 and choices["choices"][0] == ("Version 2 only", 2)
    assert choices["choices"][-1] == ("All versions: the whole model", 0)
    _, _, result, _ = handlers.ask_delete("m-1", 2)
    assert result == ""


def test_an_unnamed_model_is_named_by_its_id_once(gateway: FakeGateway, handlers: Handlers) -> None:
    gateway.routes[("GET", "/v1/models")] = {"models": [MODEL | {"name": ""}]}
    models, _ = handlers.model_choices(None)
    assert models["choices"] == [("m-1 · catboost", "m-1")]
    gateway.routes[("GET", "/v1/models/m-1")] = MODEL | {"name": ""}
    _, question, _, _ = handlers.ask_delete("m-1", 0)
    assert question.startswith("Delete model `m-1` with all its")


def test_predict_shows_no_placeholder_headers_before_a_model_is_chosen() -> None:
    assert tables.ROWS_PLACEHOLDER == ["Choose a model to see the columns it expects"]


def test_l1_ratio_is_sent_only_with_an_elasticnet_penalty() -> None:
    specs = [
        forms.HyperparameterSpec(name="penalty", type="string", default="l2",
                                 choices=["l2", "elasticnet"]),
        forms.HyperparameterSpec(name="l1_ratio", type="float", default=0.5),
    ]  # fmt: skip
    assert forms.changed(specs, ["l2", 0.9]) == {}
    assert forms.changed(specs, ["elasticnet", 0.9]) == {"penalty": "elasticnet", "l1_ratio": 0.9}
    assert not forms.applies("l1_ratio", {"penalty": "l2"})


def test_retrain_can_start_from_an_older_version(gateway: FakeGateway, training: Training) -> None:
    _, parent, _ = training.choose_parent("m-1", 1)
    assert isinstance(parent, ModelVersion) and parent.version == 1
    gateway.routes[("POST", "/v1/models/m-1/retrain")] = lambda _: httpx.Response(
        202, json=job("cancelled", parent_version=1)
    )
    list(training.retrain(parent, KIND_LIST, None, 20, 0.1, "none", False))
    assert json.loads(gateway.last("POST", "/v1/models/m-1/retrain").read())["parent_version"] == 1


def test_durations_count_from_the_start(gateway: FakeGateway) -> None:
    from ui.jobs import duration

    running = Job.model_validate(job("running") | {"start_time": "2026-01-02T03:04:05Z"})
    assert duration(running, datetime(2026, 1, 2, 3, 4, 47, tzinfo=UTC)) == "42 s"
