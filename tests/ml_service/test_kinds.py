"""Model kinds: hyperparameter checks, fitting with progress, prediction, save and load."""

from __future__ import annotations

import itertools
import json
import math
import operator
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ml_service import dataset
from ml_service.domain import FeatureKind, Progress
from ml_service.errors import InvalidArgument, NotFound
from ml_service.kinds import KINDS, FitInput, get_kind, skops_archive
from ml_service.kinds.base import normalise_importance, to_frame
from ml_service.kinds.compiled_logistic import CompiledLogistic
from ml_service.kinds.logistic_regression import _PENALTIES_BY_SOLVER
from ml_service.kinds.sklearn_pipeline import TRUSTED_TYPES

CATBOOST = get_kind("catboost")
LOGREG = get_kind("logistic_regression")
FAST = {"catboost": {"iterations": 30}, "logistic_regression": {}}


def prepared(
    table: pa.Table, target: str
) -> tuple[pa.Table, np.ndarray, int, dict[str, FeatureKind]]:
    """Return features, class indices, class count and feature kinds of a table."""
    plan = dataset.plan_training(table.schema, target, [], {})
    signature = dataset.build_signature(table, plan)
    y = dataset.encode_target(table.column(target), signature.classes)
    return dataset.feature_table(table, plan), y, len(signature.classes), plan.feature_kinds


def fit(kind_name: str, table: pa.Table, target: str, **given: Any) -> tuple[Any, pa.Table]:
    """Fit a kind on a whole table and return the model and its features."""
    kind = get_kind(kind_name)
    features, y, n_classes, kinds = prepared(table, target)
    params = kind.resolve_hyperparameters({**FAST[kind_name], **given})
    return kind.runtime.fit(
        FitInput(features, y, n_classes, kinds, params, 0, lambda _: None)
    ), features


def violations(error: pytest.ExceptionInfo[InvalidArgument]) -> list[tuple[str, str]]:
    """Return (field, description) of each violation."""
    return [(v.field, v.description) for v in error.value.violations]


def test_the_server_starts_without_the_libraries_that_fit() -> None:
    """Listing kinds and checking settings needs none of them; they take seconds to import."""
    script = "import sys, ml_service.grpc.server; print(*sorted(sys.modules))"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = {name.partition(".")[0] for name in done.stdout.split()}
    assert loaded.isdisjoint({"catboost", "sklearn", "skops", "scipy", "pandas"})


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(NotFound, match="unknown model kind 'xgboost'; known kinds: catboost, "):
        get_kind("xgboost")


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_defaults_resolve_and_resolving_again_changes_nothing(kind: Any) -> None:
    resolved = kind.resolve_hyperparameters({})
    assert resolved == {spec.name: spec.default for spec in kind.hyperparameters}
    # Retrain merges a parent's effective settings with changes: they must resolve again.
    assert kind.resolve_hyperparameters(resolved) == resolved
    for spec in kind.hyperparameters:
        assert spec.description and "\n" not in spec.description
        assert bool(spec.choices) == (spec.type == "string")


def test_numbers_are_normalised() -> None:
    params = CATBOOST.resolve_hyperparameters({"iterations": 3.0, "learning_rate": 1})
    assert params["iterations"] == 3 and isinstance(params["iterations"], int)
    assert params["learning_rate"] == 1.0 and isinstance(params["learning_rate"], float)


BAD = [
    ("catboost", {"trees": 10}, "hyperparameters.trees", "unknown hyperparameter"),
    (
        "catboost",
        {"iterations": True},
        "hyperparameters.iterations",
        "must be an integer, got true",
    ),
    (
        "catboost",
        {"iterations": 3.5},
        "hyperparameters.iterations",
        "must be an integer (a whole number), got 3.5",
    ),
    ("catboost", {"iterations": "300"}, "hyperparameters.iterations", "the string '300'"),
    (
        "catboost",
        {"iterations": 0},
        "hyperparameters.iterations",
        "must be at least 1 and at most 10000",
    ),
    ("catboost", {"iterations": 10001}, "hyperparameters.iterations", "got 10001"),
    (
        "catboost",
        {"learning_rate": 0},
        "hyperparameters.learning_rate",
        "must be at least 1e-06 and at most 1",
    ),
    ("catboost", {"learning_rate": 1.5}, "hyperparameters.learning_rate", "got 1.5"),
    ("catboost", {"learning_rate": math.nan}, "hyperparameters.learning_rate", "finite"),
    ("catboost", {"depth": 17}, "hyperparameters.depth", "at most 16"),
    (
        "catboost",
        {"verbose": 1},
        "hyperparameters.verbose",
        "must be a boolean (true or false), got 1",
    ),
    ("catboost", {"class_weights": "auto"}, "hyperparameters.class_weights", "one of 'none'"),
    ("logistic_regression", {"C": 0}, "hyperparameters.C", "must be at least 1e-10"),
    ("logistic_regression", {"C": None}, "hyperparameters.C", "must be a number, got null"),
    ("logistic_regression", {"max_iter": [1]}, "hyperparameters.max_iter", "type list"),
    ("logistic_regression", {"penalty": None}, "hyperparameters.penalty", "got null"),
    ("logistic_regression", {"solver": "adam"}, "hyperparameters.solver", "got the string"),
    ("logistic_regression", {"l1_ratio": 1.1}, "hyperparameters.l1_ratio", "at most 1"),
    ("logistic_regression", {"class_weight": 2}, "hyperparameters.class_weight", "got 2"),
    (
        "logistic_regression",
        {"penalty": "l1"},
        "hyperparameters.penalty",
        "solver 'lbfgs' does not support penalty 'l1'; it accepts 'l2' and 'none'; "
        "penalty 'l1' needs solver 'liblinear' or 'saga'",
    ),
    (
        "logistic_regression",
        {"penalty": "elasticnet", "solver": "liblinear"},
        "hyperparameters.penalty",
        "needs solver 'saga'",
    ),
    (
        "logistic_regression",
        {"penalty": "none", "solver": "liblinear"},
        "hyperparameters.penalty",
        "solver 'liblinear' does not support penalty 'none'",
    ),
]


@pytest.mark.parametrize(("kind", "given", "field", "text"), BAD)
def test_each_bad_hyperparameter_is_one_violation(
    kind: str, given: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        get_kind(kind).resolve_hyperparameters(given)
    [(got_field, description)] = violations(error)
    assert got_field == field
    assert text in description


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as error:
        CATBOOST.resolve_hyperparameters({"iterations": 0, "depth": "deep", "seed": 1})
    fields = sorted(field for field, _ in violations(error))
    assert fields == ["hyperparameters.depth", "hyperparameters.iterations", "hyperparameters.seed"]


def test_solver_penalty_rules_match_the_installed_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] > 0).astype(int)
    for solver, penalty in itertools.product(
        ("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"),
        ("l2", "l1", "elasticnet", "none"),
    ):
        # The installed library is the judge: call it with the deprecated penalty argument,
        # whose deprecation warnings are expected here and only here.
        legacy: dict[str, Any] = {"penalty": None if penalty == "none" else penalty}
        legacy["solver"] = solver
        legacy["l1_ratio"] = {"l1": 1.0, "elasticnet": 0.5}.get(penalty, 0.0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                LogisticRegression(**legacy).fit(x, y)
            library_accepts = True
        except ValueError:
            library_accepts = False
        try:
            LOGREG.resolve_hyperparameters({"solver": solver, "penalty": penalty})
            we_accept = True
        except InvalidArgument:
            we_accept = False
        assert we_accept == library_accepts, (solver, penalty)


@pytest.mark.parametrize(
    ("solver", "penalty"),
    [
        (solver, penalty)
        for solver, penalties in _PENALTIES_BY_SOLVER.items()
        for penalty in penalties
    ],
)
def test_accepted_combinations_fit_without_warnings(
    bank_small: pa.Table, solver: str, penalty: str
) -> None:
    # filterwarnings=error: a FutureWarning or ConvergenceWarning would fail this test.
    model, features = fit(
        "logistic_regression", bank_small, "y", solver=solver, penalty=penalty, max_iter=200
    )
    proba = LOGREG.runtime.predict_proba(model, features)
    assert proba.shape == (bank_small.num_rows, 2)
    assert ((proba.argmax(axis=1) == 0).mean()) > 0.5


def test_liblinear_refuses_more_than_two_classes() -> None:
    params = LOGREG.resolve_hyperparameters({"solver": "liblinear"})
    [violation] = LOGREG.check_for_data(params, 3)
    field, description = violation.field, violation.description
    assert field == "hyperparameters.solver"
    assert "two classes only and the target has 3" in description


def test_running_out_of_iterations_is_a_note_not_an_error(adult: pa.Table) -> None:
    model, _ = fit("logistic_regression", adult.slice(0, 2000), "income", max_iter=2)
    [note] = LOGREG.runtime.fit_notes(model)
    assert "max_iter=2" in note


def test_catboost_reports_every_iteration_with_losses(penguins: pa.Table) -> None:
    features, y, n_classes, kinds = prepared(penguins, "species")
    seen: list[Progress] = []
    params = CATBOOST.resolve_hyperparameters({"iterations": 25})
    CATBOOST.runtime.fit(
        FitInput(features, y, n_classes, kinds, params, 0, seen.append, (features, y))
    )
    assert [p.iteration for p in seen] == list(range(1, 26))
    assert all(p.stage == "fitting" and p.total_iterations == 25 for p in seen)
    assert seen[-1].fraction == 1.0
    assert set(seen[0].metrics) == {"learn_MultiClass", "holdout_MultiClass"}
    assert seen[-1].metrics["learn_MultiClass"] < seen[0].metrics["learn_MultiClass"]


def test_a_raising_reporter_stops_catboost_with_its_own_exception(adult: pa.Table) -> None:
    class CancelledError(Exception):
        pass

    def report(progress: Progress) -> None:
        if progress.iteration == 3:
            raise CancelledError

    features, y, n_classes, kinds = prepared(adult.slice(0, 3000), "income")
    params = CATBOOST.resolve_hyperparameters({"iterations": 5000})
    with pytest.raises(CancelledError):
        CATBOOST.runtime.fit(FitInput(features, y, n_classes, kinds, params, 0, report))


def test_logistic_regression_reports_its_stages(penguins: pa.Table) -> None:
    features, y, n_classes, kinds = prepared(penguins, "species")
    seen: list[Progress] = []
    params = LOGREG.resolve_hyperparameters({})
    LOGREG.runtime.fit(
        FitInput(features, y, n_classes, kinds, params, 0, seen.append, (features, y))
    )
    assert [p.fraction for p in seen] == sorted(p.fraction for p in seen)
    assert seen[-1].fraction == 1.0 and seen[-1].iteration > 0
    assert set(seen[-1].metrics) == {"learn_Logloss", "holdout_Logloss"}


@pytest.mark.parametrize("kind_name", list(KINDS))
def test_saved_model_loads_and_predicts_the_same(
    kind_name: str, penguins: pa.Table, tmp_path: Path
) -> None:
    kind = get_kind(kind_name)
    model, features = fit(kind_name, penguins, "species")
    path = str(tmp_path / f"model{kind.artifact_suffix}")
    kind.runtime.save(model, path)
    loaded = kind.runtime.load(path)
    np.testing.assert_array_equal(
        kind.runtime.predict_proba(loaded, features), kind.runtime.predict_proba(model, features)
    )


@pytest.mark.parametrize("kind_name", list(KINDS))
def test_importance_is_per_column_sums_to_100_and_is_sorted(
    kind_name: str, adult: pa.Table
) -> None:
    model, features = fit(kind_name, adult.slice(0, 3000), "income")
    names = features.column_names
    scores = get_kind(kind_name).runtime.feature_importance(model, names)
    importance = normalise_importance(names, scores)
    assert sorted(name for name, _ in importance) == sorted(features.column_names)
    assert sum(value for _, value in importance) == pytest.approx(100)
    assert [v for _, v in importance] == sorted((v for _, v in importance), reverse=True)


@pytest.mark.parametrize("kind_name", list(KINDS))
def test_unseen_categories_and_missing_values_predict(kind_name: str, penguins: pa.Table) -> None:
    kind = get_kind(kind_name)
    model, features = fit(kind_name, penguins, "species")
    odd = pa.table(
        {
            "island": ["Atlantis", None],
            "bill_length_mm": [None, 40.0],
            "bill_depth_mm": [18.0, None],
            "flipper_length_mm": pa.array([None, 190], pa.int64()),
            "body_mass_g": pa.array([3800, None], pa.int64()),
            "sex": ["unknown", None],
            "year": pa.array([2030, 2008], pa.int64()),
        }
    )
    proba = kind.runtime.predict_proba(model, odd.select(features.column_names))
    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("kind_name", list(KINDS))
def test_arrow_column_types_are_converted(kind_name: str) -> None:
    rng = np.random.default_rng(1)
    n = 300
    signal = rng.integers(0, 2, n)
    flip = rng.random(n) < 0.1
    colour = np.where(signal == 1, "red", "blue")
    table = pa.table(
        {
            "flag": pa.array(signal.astype(bool), mask=rng.random(n) < 0.1),
            "colour": pa.array(colour.tolist()).dictionary_encode(),
            "shape": pa.array(
                rng.choice(["a", "b"], n), pa.large_string(), mask=rng.random(n) < 0.3
            ),
            "count": pa.array(
                [None if i % 7 == 0 else int(v) for i, v in enumerate(signal)], pa.int32()
            ),
            "level": pa.array(signal * 10, pa.int64()),
            "label": pa.array((signal ^ flip).astype(bool)),
        }
    )
    kind = get_kind(kind_name)
    plan = dataset.plan_training(table.schema, "label", [], {"level": FeatureKind.CATEGORICAL})
    signature = dataset.build_signature(table, plan)
    assert signature.classes == ("false", "true")
    assert signature.features[4].categories == ("0", "10")
    y = dataset.encode_target(table.column("label"), signature.classes)
    params = kind.resolve_hyperparameters(FAST[kind_name])
    features = dataset.feature_table(table, plan)
    model = kind.runtime.fit(
        FitInput(features, y, 2, plan.feature_kinds, params, 0, lambda _: None)
    )
    accuracy = (kind.runtime.predict_proba(model, features).argmax(axis=1) == y).mean()
    assert accuracy > 0.85


NUMBERS_ONLY = ["bill_length_mm", "bill_depth_mm", "species"]
CATEGORIES_ONLY = ["island", "sex", "species"]


@pytest.mark.parametrize(
    ("data", "target", "given", "columns"),
    [
        ("adult", "income", {}, None),
        ("adult", "income", {"class_weight": "balanced", "penalty": "none"}, None),
        ("penguins", "species", {}, None),
        ("penguins", "species", {"solver": "saga", "penalty": "l1", "max_iter": 500}, None),
        ("penguins", "species", {}, NUMBERS_ONLY),
        ("penguins", "species", {}, CATEGORIES_ONLY),
    ],
)
def test_a_served_artifact_predicts_as_scikit_learn_does(
    data: str,
    target: str,
    given: dict[str, Any],
    columns: list[str] | None,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The server reads the artifact's arrays without scikit-learn; the answers must not move."""
    table = request.getfixturevalue(data).slice(0, 3000)
    table = table.select(columns) if columns else table
    model, features = fit("logistic_regression", table, target, **given)
    path = tmp_path / "model.skops"
    LOGREG.runtime.save(model, str(path))
    assert isinstance(skops_archive.read(str(path)), skops_archive.Fitted)  # no fallback to skops
    served = LOGREG.runtime.load(str(path))
    assert isinstance(served, CompiledLogistic)
    _, _, _, kinds = prepared(table, target)
    odd = pa.table(
        {
            name: pc.if_else(
                pa.array(np.arange(features.num_rows) % 9 == i % 9), None, column
            )  # a gap in every column, in different rows
            for i, (name, column) in enumerate(
                zip(features.column_names, features.columns, strict=True)
            )
        }
    )
    expected = model.predict_proba(to_frame(odd, kinds, math.nan))
    np.testing.assert_allclose(
        LOGREG.runtime.predict_proba(served, odd), expected, rtol=0, atol=1e-9
    )


def test_serving_logistic_regression_loads_no_scikit_learn(
    penguins: pa.Table, tmp_path: Path
) -> None:
    """A server with the kinds preloaded and a model loaded holds neither scikit-learn nor skops.

    (CatBoost's own import brings pandas and scipy.sparse, but not the rest of scipy.)
    """
    model, features = fit("logistic_regression", penguins, "species")
    path = tmp_path / "model.skops"
    LOGREG.runtime.save(model, str(path))
    rows = tmp_path / "rows.parquet"
    pq.write_table(features, rows)
    script = (
        "import sys, pyarrow.parquet as pq, ml_service.kinds as k\n"
        "k.preload()\n"
        "kind = k.get_kind('logistic_regression')\n"
        f"model = kind.runtime.load({str(path)!r})\n"
        f"proba = kind.runtime.predict_proba(model, pq.read_table({str(rows)!r}))\n"
        "print(proba.tolist())\n"
        "print(*sorted(sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    proba, modules = done.stdout.splitlines()
    loaded = set(modules.split())
    assert {name.partition(".")[0] for name in loaded}.isdisjoint({"sklearn", "skops"})
    assert "scipy.optimize" not in loaded and "scipy.special" not in loaded
    np.testing.assert_array_equal(
        np.array(json.loads(proba)), LOGREG.runtime.predict_proba(model, features)
    )


def test_skops_artifacts_hold_only_trusted_types(penguins: pa.Table, tmp_path: Path) -> None:
    model, _ = fit("logistic_regression", penguins, "species", class_weight="balanced")
    path = tmp_path / "model.skops"
    LOGREG.runtime.save(model, str(path))
    assert set(skops.io.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)


def test_skops_load_refuses_an_untrusted_type(tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    skops.io.dump(Pipeline([("f", FunctionTransformer(func=operator.neg))]), path)
    with pytest.raises(skops.io.exceptions.UntrustedTypesFoundException, match=r"_operator\.neg"):
        LOGREG.runtime.load(str(path))


def test_many_classes_and_categories_encode_by_frequency_and_say_so() -> None:
    rng = np.random.default_rng(4)
    rows = 120
    wide = pa.table(
        {
            **{f"c{i}": rng.choice(["a", "b", "c"], rows) for i in range(50)},
            "y": np.arange(rows) % 12,
        }
    )
    model, _ = fit("catboost", wide, "y", iterations=3)
    [note] = CATBOOST.runtime.fit_notes(model)
    assert "encoded by their frequency" in note

    narrow = wide.select(["c0", "c1", "y"])
    model, _ = fit("catboost", narrow, "y", iterations=3)
    assert CATBOOST.runtime.fit_notes(model) == []
