"""Penguin rows for the OpenAPI examples, so every example in /docs runs as it is."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
)
_TRAINING_CSV = """\
Adelie,Torgersen,39.1,18.7,181,3750,male,2007
Adelie,Torgersen,39.5,17.4,186,3800,female,2007
Adelie,Torgersen,40.3,18,195,3250,female,2007
Adelie,Torgersen,36.7,19.3,193,3450,female,2007
Adelie,Torgersen,39.3,20.6,190,3650,male,2007
Adelie,Torgersen,34.1,18.1,193,3475,,2007
Gentoo,Biscoe,46.1,13.2,211,4500,female,2007
Gentoo,Biscoe,50,16.3,230,5700,male,2007
Gentoo,Biscoe,48.7,14.1,210,4450,female,2007
Gentoo,Biscoe,50,15.2,218,5700,male,2007
Gentoo,Biscoe,47.6,14.5,215,5400,male,2007
Gentoo,Biscoe,46.5,13.5,210,4550,female,2007
Chinstrap,Dream,46.5,17.9,192,3500,female,2007
Chinstrap,Dream,50,19.5,196,3900,male,2007
Chinstrap,Dream,51.3,19.2,193,3650,male,2007
Chinstrap,Dream,45.4,18.7,188,3525,female,2007
Chinstrap,Dream,52.7,19.8,197,3725,male,2007
Chinstrap,Dream,45.2,17.8,198,3950,female,2007
"""


def _value(text: str) -> Any:
    if text == "":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


TRAINING_ROWS: list[dict[str, Any]] = [
    dict(zip(COLUMNS, map(_value, line.split(",")), strict=True))
    for line in _TRAINING_CSV.splitlines()
]
TRAINING_CSV = ",".join(COLUMNS) + "\n" + _TRAINING_CSV
PREDICT_ROWS: list[dict[str, Any]] = [
    {k: v for k, v in row.items() if k != "species"} for row in (TRAINING_ROWS[0], TRAINING_ROWS[7])
]
PREDICT_CSV = (
    "\n".join(
        [",".join(COLUMNS[1:]), *(line.split(",", 1)[1] for line in _TRAINING_CSV.splitlines()[:2])]
    )
    + "\n"
)

TRAINING_REQUEST: dict[str, Any] = {
    "kind": "catboost",
    "target_column": "species",
    "hyperparameters": {"iterations": 20},
    "name": "penguins",
    "description": "Species from bill, flipper and body measurements.",
    "rows": TRAINING_ROWS,
}
RETRAIN_REQUEST: dict[str, Any] = {"hyperparameters": {"iterations": 30}}
PREDICT_REQUEST: dict[str, Any] = {"rows": PREDICT_ROWS}
