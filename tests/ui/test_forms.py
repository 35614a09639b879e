"""Hyperparameter forms: hints from the spec, the right inputs, and only changes sent."""

from __future__ import annotations

import gradio as gr
import pytest
from pydantic import JsonValue

from tests.ui.fakes import KINDS, version
from ui import forms, tables
from ui.schemas import HyperparameterSpec, ModelKind, ModelVersion

CATBOOST = ModelKind.model_validate(KINDS["kinds"][0])
SPECS = {spec.name: spec for spec in CATBOOST.hyperparameters}


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("iterations", "Number of trees to build; ≥ 1 and ≤ 10000; default 300."),
        ("learning_rate", "Step size; > 0 and ≤ 1; default 0.1."),
        ("class_weights", "Weigh classes; one of none, balanced; default none."),
        ("verbose", "Write CatBoost's log; default off."),
    ],
)
def test_each_field_says_what_it_accepts_and_its_default(name: str, hint: str) -> None:
    assert forms.hint(SPECS[name]) == hint


def test_the_form_has_one_fitting_input_per_hyperparameter() -> None:
    fields = forms.form(CATBOOST, "train", {"iterations": 20})
    assert [type(f) for f in fields] == [gr.Number, gr.Number, gr.Dropdown, gr.Checkbox]
    iterations, learning_rate, class_weights, _ = fields
    assert isinstance(iterations, gr.Number) and isinstance(learning_rate, gr.Number)
    assert iterations.value == 20 and iterations.elem_id == "train-hp-iterations"
    assert class_weights.value == "none"


def test_a_value_out_of_bounds_reaches_the_handler_so_the_gateway_names_the_setting() -> None:
    # Gradio's own check raised "Value -5 is less than minimum value 1.0." in a toast, naming
    # no field, before the handler could run; the tab's error area showed just "Error".
    iterations, learning_rate, *_ = forms.form(CATBOOST, "train")
    assert isinstance(iterations, gr.Number) and isinstance(learning_rate, gr.Number)
    assert iterations.preprocess(-5) == -5
    assert learning_rate.preprocess(5.0) == 5.0
    assert forms.changed(CATBOOST.hyperparameters, [-5, 5.0, "none", False]) == {
        "iterations": -5,
        "learning_rate": 5.0,
    }


def test_only_changed_values_are_sent() -> None:
    specs = CATBOOST.hyperparameters
    assert forms.changed(specs, [300, 0.1, "none", False]) == {}
    assert forms.changed(specs, [20.0, 0.1, "balanced", True]) == {
        "iterations": 20,
        "class_weights": "balanced",
        "verbose": True,
    }


def test_a_retrain_compares_with_the_parent_and_an_emptied_field_keeps_it() -> None:
    parent: dict[str, JsonValue] = {
        "iterations": 20,
        "learning_rate": 0.3,
        "class_weights": "none",
        "verbose": False,
    }
    values = [None, 0.3, "none", False]
    assert forms.changed(CATBOOST.hyperparameters, values, parent) == {}
    values = [300, 0.3, "none", False]
    assert forms.changed(CATBOOST.hyperparameters, values, parent) == {"iterations": 300}


def test_a_fractional_integer_is_sent_as_typed_so_the_gateway_can_refuse_it() -> None:
    spec = HyperparameterSpec(name="depth", type="int", default=6)
    assert forms.changed([spec], [2.5]) == {"depth": 2.5}


def test_the_notes_of_a_fit_reach_the_person() -> None:
    shown = ModelVersion.model_validate(
        version(1, notes=["the solver 'lbfgs' stopped at max_iter=2 before converging"])
    )
    # Markdown escapes the underscore; the page shows "max_iter".
    assert "Note: the solver 'lbfgs' stopped at max\\_iter=2" in tables.version_summary("m", shown)
