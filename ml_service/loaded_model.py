"""A model in memory: check rows against its signature, predict, shape the answer.

Everything between a decoded table and the predictions' record batch: the columns the
signature needs (missing, duplicated, binary or nested ones refused by name), the kinds'
typed input (ml_service.model_input), finite probabilities, and the output columns.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from mlops import names

from ml_service import model_input
from ml_service.arrow_ipc import has_newer_layouts, plain_types
from ml_service.dataset import decode_labels
from ml_service.domain import FeatureKind, Signature
from ml_service.errors import FieldViolation, InvalidArgument
from ml_service.kinds import Kind
from ml_service.kinds.base import FEW_ROWS
from mlops_client.number_text import is_text

#: The predicted class; the probability columns are PROBABILITY_PREFIX + the class's text,
#: so no class name can collide with another output column, whatever the classes are called.
LABEL_COLUMN = names.LABEL_COLUMN
PROBABILITY_PREFIX = names.PROBABILITY_PREFIX


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory with what is needed to check its input and shape its output."""

    model_id: str
    version: int
    kind: Kind
    model: object
    signature: Signature
    output_schema: pa.Schema
    #: Every class in the target's Arrow type, so answers take labels instead of casting.
    labels: pa.Array = field(init=False, repr=False)
    #: The output schema as an IPC message, written before every answer's batch.
    schema_message: bytes = field(init=False, repr=False)
    # What conform decided per input schema (serialised, so field metadata counts): the
    # features' positions, whether newer Arrow layouts among them are made plain, and which
    # boolean features came as text.
    _plans: dict[bytes, tuple[list[int], bool, list[int]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    _features: list[tuple[str, FeatureKind]] = field(init=False, repr=False, compare=False)
    # Positions of the features trained on booleans, whose text is read as booleans.
    _booleans: list[int] = field(init=False, repr=False, compare=False)
    #: The columns predict reads; a request's others are ignored (and may go unread).
    column_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = decode_labels(np.arange(len(self.signature.classes)), self.signature)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "_features", [(f.name, f.kind) for f in self.signature.features])
        booleans = [i for i, f in enumerate(self.signature.features) if f.arrow_type == "bool"]
        object.__setattr__(self, "_booleans", booleans)
        object.__setattr__(self, "column_names", frozenset(f.name for f in self.signature.features))
        object.__setattr__(self, "schema_message", self.output_schema.serialize().to_pybytes())

    def predict(self, table: pa.Table) -> pa.RecordBatch:
        """Predict labels and class probabilities for the rows of `table`, in order."""
        conformed = self._conform(table)
        try:
            proba = model_input.probabilities(
                self.kind.runtime, self.model, conformed, self._features
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            # Conversions the kinds do not name themselves still say what Arrow refused.
            raise InvalidArgument.field("arrow_ipc", f"the rows cannot be used: {exc}") from exc
        finite = np.isfinite(proba).all(axis=1)
        if not finite.all():
            features = model_input.build(conformed, self._features)
            raise _not_finite(features, int(np.argmin(finite)), self.signature)
        best = np.argmax(proba, axis=1)
        if len(best) <= FEW_ROWS:
            # A compute call (take) costs ~10 us whatever the length; a few rows' labels don't.
            labels = pa.array([self.labels[i] for i in best.tolist()], self.labels.type)
        else:
            labels = self.labels.take(pa.array(best))
        columns = [labels, *(pa.array(proba[:, i]) for i in range(proba.shape[1]))]
        return pa.RecordBatch.from_arrays(columns, schema=self.output_schema)

    def _conform(self, table: pa.Table) -> pa.Table:
        """conform(), deciding once per input schema: clients send the same one every call."""
        key = table.schema.serialize().to_pybytes()
        plan = self._plans.get(key)
        if plan is None:
            # A refused schema is not kept.
            positions = conform_plan(table.schema, self.signature)
            # Boolean features sent as text (JSON rows' "true"), read as booleans each call.
            as_text = [i for i in self._booleans if is_text(table.schema.field(positions[i]).type)]
            plan = (positions, has_newer_layouts(table.schema), as_text)
            # The keys are kept too: 64 schemas of a message's worth of columns each would
            # hold gigabytes after their requests ended.
            if len(key) <= _PLAN_KEY_BYTES:
                kept = sum(map(len, self._plans))
                if len(self._plans) >= _PLANS_KEPT or kept + len(key) > _PLAN_KEY_BYTES:
                    # A client cycling through schemas only costs itself the cache.
                    self._plans.clear()
                self._plans[key] = plan
        positions, newer, as_text = plan
        selected = table.select(positions)
        if newer:
            selected = plain_types(selected)
        for index in as_text:
            read = model_input.booleans(selected.column(index), self.signature.features[index].name)
            selected = selected.set_column(index, selected.field(index).name, read)
        return selected


_PLANS_KEPT = 64
# Most bytes of serialised schemas kept as keys, in all; a wider schema is planned each call,
# which costs less than reading its columns did.
_PLAN_KEY_BYTES = 16 * 1024 * 1024


def output_schema(signature: Signature) -> pa.Schema:
    """The predictions' schema: the label in the target's type, then one float per class."""
    label_type = decode_labels(np.zeros(0, np.int64), signature).type
    fields = [pa.field(LABEL_COLUMN, label_type)]
    fields += [pa.field(PROBABILITY_PREFIX + name, pa.float64()) for name in signature.classes]
    return pa.schema(fields)


def _not_finite(features: pa.Table, row: int, signature: Signature) -> InvalidArgument:
    # Finite inputs far beyond what training saw (1e308, say) overflow the model's arithmetic;
    # the largest number in the row is the one to blame.
    largest = model_input.largest_magnitude(features, row)
    if largest is None:
        return InvalidArgument.field(
            "arrow_ipc", f"row {row}: the model cannot give finite probabilities for these values"
        )
    name = signature.features[largest[0]].name
    return InvalidArgument.field(
        f"columns.{name}",
        f"row {row}: column '{name}' holds {largest[1]:.6g}, too large in magnitude for this "
        "model to give finite probabilities; send values of the size seen in training",
    )


def _refused_type(field: pa.Field) -> str | None:
    # Unregistered extension types arrive as their storage type, marked in the metadata.
    if field.metadata and b"ARROW:extension:name" in field.metadata:
        return (
            f"extension type {field.metadata[b'ARROW:extension:name'].decode()!r} is not accepted"
        )
    return _refused_arrow_type(field.type)


def _refused_arrow_type(arrow_type: pa.DataType) -> str | None:
    if isinstance(arrow_type, pa.BaseExtensionType):
        return f"extension type {arrow_type} is not accepted"
    if pa.types.is_run_end_encoded(arrow_type):  # flat values, stored in runs
        return _refused_arrow_type(arrow_type.value_type)
    if pa.types.is_nested(arrow_type):
        return f"nested type {arrow_type} is not accepted; send flat columns"
    if pa.types.is_dictionary(arrow_type):
        return _refused_arrow_type(arrow_type.value_type)
    return None


def _is_binary(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_fixed_size_binary(arrow_type)
    )


def conform(table: pa.Table, signature: Signature) -> pa.Table:
    """Select the model's feature columns by name; refuse missing columns and unsafe types."""
    return table.select(conform_plan(table.schema, signature))


def conform_plan(schema: pa.Schema, signature: Signature) -> list[int]:
    """Return the positions of the model's features in `schema`, or raise what conform would."""
    problems = []
    features = {f.name for f in signature.features}
    # Only the features: a column the model does not read is ignored whatever it holds (a
    # DataFrame's list of tags, a pandas Period), as binary ones always were.
    for column in schema:
        if column.name in features and (refused := _refused_type(column)):
            problems.append(FieldViolation(f"columns.{column.name}", refused))
    counts = collections.Counter(schema.names)
    # A feature twice is ambiguous; a column the model does not read may repeat (the unnamed
    # empty columns of a spreadsheet's export).
    duplicated = sorted(n for n, c in counts.items() if c > 1 and n in features)
    problems += [FieldViolation(f"columns.{n}", "appears more than once") for n in duplicated]
    present = set(counts)
    unique = {f.name: f.type for f in schema if counts[f.name] == 1}
    problems += [
        FieldViolation(f"columns.{f.name}", f"missing column '{f.name}' ({f.arrow_type})")
        for f in signature.features
        if f.name not in present
    ]
    problems += [
        FieldViolation(f"columns.{f.name}", "binary values are not accepted; send text or numbers")
        for f in signature.features
        if f.name in unique and _is_binary(unique[f.name])
    ]
    if problems:
        raise InvalidArgument.of(problems)
    return [schema.get_field_index(f.name) for f in signature.features]
