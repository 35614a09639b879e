"""Status, Models, Predict and Delete handlers: what the person sees, errors in words."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import pandas as pd
import pytest

from tests.ui.fakes import MODEL, URL, FakeGateway, alert, job, problem, version
from ui import tables
from ui.handlers import Handlers
from ui.schemas import ModelVersion
from ui.tabs import _once
from ui.training import Training

ANSWER: dict[str, Any] = {
    "model_id": "m-1",
    "version": 2,
    "predictions": [
        {"label": "Adelie", "probabilities": {"Adelie": 0.912345, "Gentoo": 0.087655}},
        {"label": "Gentoo", "probabilities": {"Adelie": 0.1, "Gentoo": 0.9}},
    ],
}


def test_the_status_line_says_connected_and_offers_the_kinds(handlers: Handlers) -> None:
    line, kinds, dropdown = handlers.status()
    assert line == f"**Connected** to the gateway at {URL}; the model service is ready."
    assert [k.name for k in kinds] == ["catboost", "logistic_regression"]
    assert dropdown["choices"][0] == ("CatBoost classifier", "catboost")
    assert dropdown["value"] == "catboost"
    assert handlers.status("logistic_regression")[2]["value"] == "logistic_regression"


def test_a_gateway_that_is_down_is_named_and_the_ui_recovers(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.down = True
    with pytest.warns(UserWarning, match=f"The gateway at {URL} is not reachable"):
        line, kinds, _ = handlers.status()
    assert line.startswith("**Not connected.** The gateway at") and kinds == []
    shown = alert(handlers.refresh_models(None)[-1])
    assert shown.startswith("Gateway not reachable. The gateway at") and "not reachable" in shown
    gateway.down = False
    table, _, cleared = handlers.refresh_models(None)
    assert cleared == ""
    assert list(table["Model"]) == ["m-1", "m-1"]


def test_a_service_that_is_not_ready_is_told_apart_from_a_gateway_that_is_down(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.routes[("GET", "/readyz")] = lambda _: problem(
        503, "The model service is not ready (NOT_SERVING).", title="Service unavailable"
    )
    line, kinds, _ = handlers.status()
    assert "answers, but: The model service is not ready (NOT_SERVING)." in line
    assert len(kinds) == 2


def test_the_models_table_has_a_row_per_version_with_its_metrics(handlers: Handlers) -> None:
    table, picker, _ = handlers.refresh_models(None)
    rows = table.to_dict("records")
    assert [(r["Name"], r["Version"], r["Accuracy"]) for r in rows] == [
        ("penguins", 2, "0.9500"),
        ("penguins", 1, "0.9700"),
    ]
    assert rows[1]["Created"] == "2026-01-02 03:01:05 UTC" and rows[0]["Kind"] == "catboost"
    assert picker["choices"][0] == ("penguins · m-1 · v2", "m-1:2")
    assert picker["value"] == "m-1:2"
    _, kept, _ = handlers.refresh_models("m-1:1")
    assert kept["value"] == "m-1:1"


def test_a_model_deleted_while_the_table_loads_is_left_out(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    # Listed, then deleted (another person, a script) before its versions were read: the
    # whole table was "not found".
    gone = {**MODEL, "model_id": "m-2", "name": "gone"}
    gateway.routes[("GET", "/v1/models")] = {"models": [gone, MODEL], "next_page_token": ""}
    table, picker, shown = handlers.refresh_models(None)
    assert shown == ""
    assert list(table["Model"]) == ["m-1", "m-1"]
    assert [key for _, key in picker["choices"]] == ["m-1:2", "m-1:1"]


def test_a_version_shows_its_metrics_settings_signature_and_importance(
    handlers: Handlers,
) -> None:
    summary, metrics, hyperparameters, signature, importance, *_ = handlers.show_version("m-1:1")
    assert summary.startswith("**penguins** (`m-1`) version **1**, catboost; first version")
    assert "Predicts **species** (Adelie, Gentoo); trained on 275 rows, 69 held out" in summary
    assert metrics.set_index("Metric")["Holdout value"].to_dict()["ROC AUC"] == "0.9900"
    assert hyperparameters.set_index("Hyperparameter").loc["verbose", "Value"] == "false"
    assert signature.set_index("Feature").loc["island", "Categories"] == "Biscoe, Dream"
    # Horizontal bars, largest first, each named in full, with the axis titled.
    assert re.findall(r'data-feature="([^"]+)"', importance) == ["bill_length_mm", "island"]
    assert ">bill_length_mm</span>" in importance and "Importance (% of the total)" in importance


def test_choosing_a_model_offers_its_versions_and_a_blank_row_of_its_features(
    handlers: Handlers,
) -> None:
    versions, rows, _ = handlers.choose_predict_model("m-1", None)
    assert versions["choices"] == [("latest", 0), ("v2", 2), ("v1", 1)]
    assert isinstance(rows, pd.DataFrame)
    assert list(rows.columns) == ["island", "bill_length_mm"] and len(rows) == 1
    typed = pd.DataFrame({"island": ["Dream"]})
    _, kept, _ = handlers.choose_predict_model("m-1", typed)
    assert kept == gr.skip()


def test_a_big_csv_fills_the_table_up_to_the_limit_with_a_warning(
    handlers: Handlers, penguins: Path
) -> None:
    with pytest.warns(UserWarning, match="Only the first 50 rows were loaded"):
        rows, _ = handlers.load_rows(str(penguins))
    assert isinstance(rows, pd.DataFrame) and len(rows) == 50


def test_whole_numbers_in_a_column_with_gaps_go_out_as_written(
    gateway: FakeGateway, handlers: Handlers, penguins: Path
) -> None:
    gateway.routes[("POST", "/v1/models/m-1/predict")] = lambda _: httpx.Response(
        200, json={**ANSWER, "predictions": ANSWER["predictions"] * 2}
    )
    rows = tables.read_csv(penguins).iloc[2:6]
    _, download, _ = handlers.predict("m-1", 0, rows)
    sent = gateway.last("POST", "/v1/models/m-1/predict").read().decode()
    # flipper_length_mm reads as floats (row 4 is empty) but was written as integers.
    assert "Adelie,Torgersen,40.3,18,195,3250,female,2007\n" in sent
    assert "Adelie,Torgersen,,,,,,2007\n" in sent
    assert "40.3,18,195,3250,female,2007,Adelie" in Path(download["value"]).read_text()


def test_predictions_show_beside_the_rows_and_download_as_csv(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.routes[("POST", "/v1/models/m-1/predict")] = lambda _: httpx.Response(200, json=ANSWER)
    typed = pd.DataFrame(
        {"island": ["Torgersen", "", "Biscoe"], "bill_length_mm": ["39.1", "", "47.5"]}
    )
    results, download, shown = handlers.predict("m-1", 0, typed)
    assert shown == ""
    assert results.to_dict("records") == [
        {"island": "Torgersen", "bill_length_mm": "39.1", "Predicted species": "Adelie",
         "P(Adelie)": 0.9123, "P(Gentoo)": 0.0877},
        {"island": "Biscoe", "bill_length_mm": "47.5", "Predicted species": "Gentoo",
         "P(Adelie)": 0.1, "P(Gentoo)": 0.9},
    ]  # fmt: skip
    sent = gateway.last("POST", "/v1/models/m-1/predict").read().decode()
    # The blank row the person added is left out.
    assert "island,bill_length_mm\nTorgersen,39.1\nBiscoe,47.5\n" in sent
    path = Path(download["value"])
    assert download["visible"] and path.name == "predictions-m-1-v2.csv"
    assert path.read_text().splitlines()[0] == (
        "island,bill_length_mm,Predicted species,P(Adelie),P(Gentoo)"
    )


@pytest.mark.parametrize(
    ("model", "rows", "message"),
    [
        (None, pd.DataFrame({"a": [1]}), "Choose a model to predict with"),
        ("m-1", None, "Add at least one row"),
        ("m-1", pd.DataFrame({"island": ["", ""]}), "Add at least one row"),
    ],
)
def test_predict_asks_for_what_is_missing(
    handlers: Handlers, model: str | None, rows: pd.DataFrame | None, message: str
) -> None:
    assert message in alert(handlers.predict(model, 0, rows)[-1])


def test_missing_columns_are_named(gateway: FakeGateway, handlers: Handlers) -> None:
    gateway.routes[("POST", "/v1/models/m-1/predict")] = lambda _: problem(
        400,
        "columns.bill_length_mm: missing column 'bill_length_mm' (double)",
        [("columns.bill_length_mm", "missing column 'bill_length_mm' (double)")],
    )
    shown = alert(handlers.predict("m-1", 0, pd.DataFrame({"island": ["Dream"]}))[-1])
    assert "missing column 'bill_length_mm'" in shown and "columns." not in shown


def test_an_error_shows_the_request_id_to_quote(gateway: FakeGateway, handlers: Handlers) -> None:
    def refused(_: httpx.Request) -> httpx.Response:
        body = problem(400, "columns.island: not a string").json()
        body["request_id"] = "4bf92f3577b34da6a3ce929d0e0e4736"
        return httpx.Response(400, json=body, headers={"content-type": "application/problem+json"})

    gateway.routes[("POST", "/v1/models/m-1/predict")] = refused
    shown = alert(handlers.predict("m-1", 0, pd.DataFrame({"island": ["Dream"]}))[-1])
    assert "Request id: 4bf92f3577b34da6a3ce929d0e0e4736" in shown


def test_deleting_a_model_is_confirmed_first_then_done(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    box, question, _, _ = handlers.ask_delete("m-1", 0)
    assert box["visible"] is True
    assert question == (
        "Delete model **penguins** (`m-1`) with all its 2 version(s)? This cannot be undone."
    )
    assert not any(r.method == "DELETE" for r in gateway.requests)

    def gone(_: httpx.Request) -> httpx.Response:
        gateway.routes[("GET", "/v1/models")] = {"models": [], "next_page_token": ""}
        return httpx.Response(200, json={"deleted_versions": 2})

    gateway.routes[("DELETE", "/v1/models/m-1")] = gone
    result, box, models, versions, _ = handlers.delete("m-1", 0)
    assert result == "Deleted model `m-1` and its 2 version(s)."
    assert box["visible"] is False
    assert models["choices"] == [] and models["value"] is None
    assert versions["choices"] == []


def test_deleting_one_version_keeps_the_model(gateway: FakeGateway, handlers: Handlers) -> None:
    _, question, _, _ = handlers.ask_delete("m-1", 1)
    assert question.startswith("Delete version **1** of model **penguins** (`m-1`)?")
    gateway.routes[("DELETE", "/v1/models/m-1/versions/1")] = lambda _: httpx.Response(
        200, json={"model_deleted": False}
    )
    result, _, models, _, _ = handlers.delete("m-1", 1)
    assert result == "Deleted version 1 of model `m-1`."
    assert models["value"] == "m-1"


def test_deleting_the_only_version_says_the_model_went_too(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.routes[("GET", "/v1/models/m-1")] = {**MODEL, "version_count": 1, "latest_version": 1}
    _, question, _, _ = handlers.ask_delete("m-1", 1)
    assert "it is the only version, so the model goes too" in question
    gateway.routes[("DELETE", "/v1/models/m-1/versions/1")] = lambda _: httpx.Response(
        200, json={"model_deleted": True}
    )
    result, *_ = handlers.delete("m-1", 1)
    assert result == "Deleted version 1, the last one, so model `m-1` is gone."


def test_a_conflict_is_shown_as_the_gateway_words_it(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.routes[("DELETE", "/v1/models/m-1")] = lambda _: problem(
        409, "Model m-1 is being trained by job j-9; cancel it first.", title="Failed precondition"
    )
    shown = alert(handlers.delete("m-1", 0)[-1])
    assert shown == "Failed precondition. Model m-1 is being trained by job j-9; cancel it first."


def test_versions_of_a_deleted_model_are_not_found(handlers: Handlers) -> None:
    assert "Nothing at /v1/models/m-404/versions" in alert(handlers.delete_choices("m-404")[-1])


def test_a_model_deleted_elsewhere_leaves_the_dropdown_with_the_not_found(
    gateway: FakeGateway, handlers: Handlers, training: Training
) -> None:
    label = handlers.model_choices(None)[0]["choices"][0]
    # m-2 was on offer, then another tab deleted it: the gateway lists m-1 only and answers
    # 404 for m-2. The dropdown kept offering m-2 until the tab was opened again.
    rows = pd.DataFrame({"island": ["Dream"], "bill_length_mm": ["39.1"]})
    predict = handlers.forgetting_gone(handlers.predict)
    _, download, models, shown = predict("m-2", 0, rows)
    assert alert(shown).startswith("Not found. Nothing at /v1/models/m-2/predict.")
    assert models["choices"] == [label] and models["value"] is None
    assert download["visible"] is False
    for handler, args in (
        (handlers.choose_predict_model, (None,)),
        (handlers.delete_choices, ()),
        (handlers.ask_delete, (0,)),
        (training.retrain_versions, ()),
        (training.choose_parent, (1,)),
    ):
        *_, models, shown = handlers.forgetting_gone(handler)("m-2", *args)
        assert alert(shown).startswith("Not found."), handler
        assert models["value"] is None and label in models["choices"]
    *_, models, _, shown = handlers.forgetting_gone(handlers.delete, model_at=2)("m-2", 0)
    assert alert(shown).startswith("Not found.") and models["value"] is None
    # The emptied dropdown's own change event keeps the message that says why.
    assert handlers.choose_predict_model(None, rows)[-1] == gr.skip()
    assert handlers.delete_choices(None)[-1] == gr.skip()
    assert training.retrain_versions(None)[-1] == training.choose_parent(None, None)[-1]
    assert training.choose_parent(None, None)[-1] == gr.skip()


def test_retraining_a_model_deleted_elsewhere_leaves_the_dropdown_with_the_not_found(
    gateway: FakeGateway, handlers: Handlers, training: Training
) -> None:
    label = handlers.model_choices(None)[0]["choices"][0]
    # The Retrain tab chose m-2 (its parent version kept), then REST deleted it: Retrain
    # said "not found" and the dropdown went on offering m-2.
    parent = ModelVersion.model_validate({**version(2), "model_id": "m-2"})
    retrain = handlers.forgetting_gone(training.retrain)
    (last,) = list(retrain(parent, [], None))
    *_, start, _, models, shown = last
    assert alert(shown).startswith("Not found. Nothing at /v1/models/m-2/retrain.")
    assert models["value"] is None and models["choices"] == [label]
    assert start["interactive"] is True  # the button is given back
    # As the tab runs it: once per browser session, the dropdown the one more output.
    browser = SimpleNamespace(session_hash="s-1")
    retrain_once = _once(training, training.retrain, handlers.forgetting_gone)
    (last,) = list(retrain_once(browser, parent, [], None))
    assert last[-2]["value"] is None and len(last) == 8
    # A job of a model still there that fails leaves the dropdown as it is.
    failed = job("failed", error={"code": "INTERNAL", "message": "boom"})
    gateway.routes[("POST", "/v1/models/m-1/retrain")] = lambda _: httpx.Response(202, json=failed)
    kept = ModelVersion.model_validate(version(2))
    *_, models, shown = list(retrain(kept, [], None))[-1]
    assert "boom" in alert(shown) and models == gr.skip()


def test_an_error_about_a_model_still_there_leaves_the_dropdown_as_it_is(
    gateway: FakeGateway, handlers: Handlers
) -> None:
    gateway.routes[("DELETE", "/v1/models/m-1")] = lambda _: problem(409, "Being trained.")
    *_, models, shown = handlers.forgetting_gone(handlers.delete, model_at=2)("m-1", 0)
    assert alert(shown).endswith("Being trained.") and models == gr.skip()
    no_model = handlers.forgetting_gone(handlers.ask_delete)(None, 0)
    assert alert(no_model[-1]).startswith("Not yet.") and no_model[-2] == gr.skip()
    assert len(no_model) == 5
