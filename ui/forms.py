"""Hyperparameter forms generated from a kind's spec, and the form's values back to a request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gradio as gr
from pydantic import JsonValue

from ui.schemas import HyperparameterSpec, ModelKind, Scalar


def _bound(value: float) -> str:
    return f"{value:g}"


def bounds_text(spec: HyperparameterSpec) -> str:
    """Say which values a hyperparameter accepts, e.g. "> 0 and ≤ 1"."""
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    low = high = ""
    if spec.minimum is not None:
        low = (">" if spec.exclusive_minimum else "≥") + f" {_bound(spec.minimum)}"
    if spec.maximum is not None:
        high = ("<" if spec.exclusive_maximum else "≤") + f" {_bound(spec.maximum)}"
    return " and ".join(part for part in (low, high) if part)


def hint(spec: HyperparameterSpec) -> str:
    """The info line under a field: what it does, what it accepts, its default."""
    parts = [spec.description.rstrip("."), bounds_text(spec), f"default {_display(spec.default)}"]
    return "; ".join(part for part in parts if part) + "."


def _display(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def field(spec: HyperparameterSpec, value: JsonValue, elem_id: str) -> gr.components.Component:
    """Build the input for one hyperparameter, showing `value` (the default or the parent's)."""
    common: dict[str, Any] = {
        "label": spec.name,
        "info": hint(spec),
        "elem_id": elem_id,
        "interactive": True,
    }
    if spec.type == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if spec.choices:
        return gr.Dropdown(choices=list(spec.choices), value=str(value), **common)
    if spec.type in ("int", "float"):
        # No minimum or maximum: Gradio refuses a value beyond them before any handler runs,
        # in a toast that does not name the field ("Value -5 is less than minimum value 1.0")
        # and with "Error" over the tab. The hint gives the bounds, and the gateway names the
        # setting it refuses ("setting 'iterations': must be at least 1 …, got -5").
        is_int = spec.type == "int"
        return gr.Number(
            value=value if isinstance(value, int | float) else None,
            precision=0 if is_int else None,
            step=1 if is_int else 0.01,
            **common,
        )
    return gr.Textbox(value="" if value is None else str(value), **common)


# A setting that only means something when another has a given value.
DEPENDS_ON = {"l1_ratio": ("penalty", "elasticnet")}


def applies(name: str, chosen: Mapping[str, Any]) -> bool:
    """Whether a setting means anything given the other chosen values."""
    other, needed = DEPENDS_ON.get(name, (None, None))
    return other is None or other not in chosen or chosen[other] == needed


def form(
    kind: ModelKind, prefix: str, values: Mapping[str, JsonValue] | None = None
) -> list[gr.components.Component]:
    """Build the whole form of a kind, filled with `values` where given, else the defaults.

    A setting that depends on another (l1_ratio on an elasticnet penalty) shows only when it
    applies; call this inside a Blocks or render context, which the wiring needs.
    """
    values = values or {}
    shown = {spec.name: values.get(spec.name, spec.default) for spec in kind.hyperparameters}
    fields = {
        spec.name: field(spec, shown[spec.name], f"{prefix}-hp-{spec.name}")
        for spec in kind.hyperparameters
    }
    for name, (other, needed) in DEPENDS_ON.items():
        if name in fields and other in fields:
            fields[name].visible = applies(name, shown)
            trigger: Any = fields[other]  # every input here has a change event
            trigger.change(
                lambda value, needed=needed: gr.update(visible=value == needed),
                fields[other],
                fields[name],
                api_visibility="private",
            )
    return list(fields.values())


def _coerce(spec: HyperparameterSpec, value: Any) -> Scalar | None:
    if value is None or value == "":
        return None
    if spec.type == "bool":
        return bool(value)
    if spec.type == "int":
        return int(value) if float(value).is_integer() else float(value)
    if spec.type == "float":
        return float(value)
    return str(value)


def changed(
    specs: Sequence[HyperparameterSpec],
    values: Sequence[Any],
    baseline: Mapping[str, JsonValue] | None = None,
) -> dict[str, Scalar]:
    """Return the hyperparameters whose values differ from the baseline (default: the spec's).

    Only changes are sent, so a retrain keeps the parent's other settings and a job's record
    shows what the person chose.
    """
    baseline = baseline or {}
    chosen = {spec.name: _coerce(spec, raw) for spec, raw in zip(specs, values, strict=True)}
    result: dict[str, Scalar] = {}
    for spec, raw in zip(specs, values, strict=True):
        value = _coerce(spec, raw)
        if value is None or not applies(spec.name, chosen):
            continue  # an emptied or hidden field means "leave it as it was"
        reference = baseline.get(spec.name, spec.default)
        if value != reference:
            result[spec.name] = value
    return result
