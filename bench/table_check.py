"""One generated table through the real gRPC service, for one model kind: what a user sees.

The rules: training succeeds, or is refused with INVALID_ARGUMENT naming a field the table
gives reason to refuse; never another code, never a hang. A trained model answers every
row of its own table through Predict and StreamPredict with unique output columns, labels
in the target's type and the probabilities the library itself gives (bench.table_reference)
within 1e-9; GetModelVersion gives the names and classes back as sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb

from bench import table_reference
from bench.tables import Case
from mlops_client.ipc import from_ipc, table_chunks, to_ipc

KINDS = ("catboost", "logistic_regression")
TOLERANCE = 1e-9
#: Longest wait for one job: the largest generated table trains in seconds.
JOB_SECONDS = 180.0
STREAM_BATCHES = 3


@dataclass
class Outcome:
    """How one (table, kind) went: trained, refused (and on which fields), or failed (why)."""

    seed: int
    kind: str
    status: Literal["trained", "refused", "failed"]
    fields: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        said = "; ".join(self.problems) if self.problems else ", ".join(self.fields)
        return f"seed {self.seed} {self.kind}: {self.status}: {said}"[:2000]


def hyperparameters(case: Case, kind: str) -> dict[str, float | int]:
    """Quick settings for the kind, varied by seed so more than the defaults are seen."""
    rng = np.random.default_rng([case.seed, KINDS.index(kind)])
    if kind == "catboost":
        return {"iterations": int(rng.integers(10, 31)), "depth": int(rng.integers(2, 7))}
    return {"C": float(rng.choice([0.1, 1.0, 10.0])), "max_iter": 300}


def has_allow_many_classes() -> bool:
    """Say whether the stubs have the spec's allow_many_classes field (issue 10) yet."""
    return "allow_many_classes" in pb.TrainingJobSpec.DESCRIPTOR.fields_by_name


def proba_columns(names: list[str], classes: list[str]) -> list[str] | None:
    """Return the probability columns in class order, as named by the new or old contract."""
    for candidates in ([f"proba_{c}" for c in classes], list(classes)):
        if names == ["label", *candidates]:
            return candidates
    return None


def check_predictions(
    answer: pa.Table, case: Case, classes: list[str], expected: npt.NDArray[np.float64], via: str
) -> list[str]:
    """Compare predictions with the reference; return what a user would notice, in words."""
    names = answer.column_names
    if len(set(names)) != len(names):
        return [f"{via}: duplicate output columns {names[:8]}"]
    columns = proba_columns(names, classes)
    if columns is None:
        return [f"{via}: output columns {names[:8]} are not label + one per class {classes[:8]}"]
    if answer.num_rows != case.table.num_rows:
        return [f"{via}: {answer.num_rows} rows for {case.table.num_rows} sent"]
    problems = []
    target_type = case.table.schema.field(case.target).type
    if pa.types.is_dictionary(target_type):
        target_type = target_type.value_type
    if answer.schema.field("label").type != target_type:
        problems.append(f"{via}: label type {answer.schema.field('label').type}, not {target_type}")
    proba = np.column_stack([answer.column(c).to_numpy() for c in columns])
    if not np.all(np.isfinite(proba)):
        problems.append(f"{via}: {int(np.sum(~np.isfinite(proba)))} probabilities are not finite")
    elif (gap := float(np.max(np.abs(proba - expected)))) > TOLERANCE:
        problems.append(f"{via}: probabilities differ from the library's by up to {gap:.3g}")
    labels = table_reference.as_text(answer.column("label")).to_pylist()
    top = np.sort(expected, axis=1)
    # Where the two best classes tie within the tolerance, either label is right.
    clear = (top[:, -1] - top[:, -2]) > TOLERANCE if len(classes) > 1 else np.ones(len(top), bool)
    wanted = np.array(classes, dtype=object)[expected.argmax(axis=1)]
    wrong = [i for i in np.flatnonzero(clear) if labels[i] != wanted[i]]
    if wrong:
        i = wrong[0]
        problems.append(
            f"{via}: {len(wrong)} labels differ, row {i}: {labels[i]!r} != {wanted[i]!r}"
        )
    return problems


class TableChecker:
    """Checks cases against one service; reuse it across many tables."""

    def __init__(self, channel: grpc.Channel, threads: int) -> None:
        self.training = ts_grpc.TrainingServiceStub(channel)
        self.models = ms_grpc.ModelServiceStub(channel)
        self.predictions = ps_grpc.PredictionServiceStub(channel)
        #: The thread count the service gives each job, so the reference fits alike.
        self.threads = threads

    def check(self, case: Case, kind: str) -> Outcome:
        """Train `kind` on the case's table and check everything a user would see."""
        outcome = Outcome(case.seed, kind, "failed")
        try:
            version = self._train(case, kind, outcome)
        except grpc.RpcError as exc:
            self._refused(exc.code(), _violation_fields(exc), exc.details() or "", case, outcome)
            return outcome
        if version is None:
            return outcome
        params = hyperparameters(case, kind)
        try:
            classes, expected = table_reference.fit_predict(
                case.table, case.target, kind, params, case.seed, self.threads
            )
        except Exception as exc:  # the library's own refusal: the service should refuse too
            outcome.problems.append(f"trained, but the library refuses the table: {exc!r}"[:500])
            return outcome
        outcome.problems += self._check_version(case, version, classes)
        outcome.problems += self._check_predict(case, version, classes, expected)
        if not outcome.problems:
            outcome.status = "trained"
        return outcome

    def _train(self, case: Case, kind: str, outcome: Outcome) -> pb.ModelVersion | None:
        params = struct_pb2.Struct()
        params.update(hyperparameters(case, kind))
        spec = pb.TrainingJobSpec(
            kind=kind,
            target_column=case.target,
            hyperparameters=params,
            holdout_fraction=0.0,
            seed=case.seed,
        )
        if case.allow_many_classes and has_allow_many_classes():
            spec.allow_many_classes = True  # type: ignore[attr-defined]

        def messages() -> Iterator[ts.CreateTrainingJobRequest]:
            yield ts.CreateTrainingJobRequest(spec=spec)
            for piece in table_chunks(case.table):
                yield ts.CreateTrainingJobRequest(arrow_chunk=piece)

        job = self.training.CreateTrainingJob(messages(), timeout=JOB_SECONDS).job
        watch = ts.WatchTrainingJobRequest(job_id=job.job_id)
        try:
            for update in self.training.WatchTrainingJob(watch, timeout=JOB_SECONDS):
                job = update.job
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            outcome.problems.append(f"job did not end within {JOB_SECONDS:g} s (a hang)")
            return None
        if job.state == pb.JOB_STATE_SUCCEEDED:
            result: pb.ModelVersion = job.result
            return result
        if job.state != pb.JOB_STATE_FAILED:
            outcome.problems.append(f"job ended in state {pb.JobState.Name(job.state)}")
            return None
        # A job that fails in its worker carries the violations as "field: description; ...".
        fields = [part.split(": ", 1)[0] for part in job.error.message.split("; ") if ": " in part]
        code = (
            grpc.StatusCode[job.error.code]
            if job.error.code in grpc.StatusCode.__members__
            else None
        )
        self._refused(
            code, fields, f"job failed: {job.error.code}: {job.error.message}", case, outcome
        )
        return None

    @staticmethod
    def _refused(code: Any, fields: list[str], message: str, case: Case, outcome: Outcome) -> None:
        if code != grpc.StatusCode.INVALID_ARGUMENT:
            outcome.problems.append(f"{getattr(code, 'name', code)}: {message}"[:600])
        elif not fields:
            outcome.problems.append(f"INVALID_ARGUMENT without a field: {message}"[:600])
        elif "*" not in case.refusable and not set(fields) <= case.refusable:
            outcome.problems.append(f"refused a table it should train: {message}"[:600])
        else:
            outcome.status, outcome.fields = "refused", fields

    def _check_version(self, case: Case, version: pb.ModelVersion, classes: list[str]) -> list[str]:
        request = ms.GetModelVersionRequest(model_id=version.model_id, version=version.version)
        got = self.models.GetModelVersion(request, timeout=30).model_version
        problems = []
        signature = got.signature
        if [f.name for f in signature.features] != case.features:
            problems.append(
                f"signature names {[f.name for f in signature.features][:6]} not as sent"
            )
        if signature.target_column != case.target:
            problems.append(f"signature target {signature.target_column!r} != {case.target!r}")
        if list(signature.classes) != classes:
            problems.append(f"signature classes {list(signature.classes)[:6]} != {classes[:6]}")
        if sorted(f.feature for f in got.feature_importance) != sorted(case.features):
            problems.append("feature importance names are not the names sent")
        return problems

    def _check_predict(
        self,
        case: Case,
        version: pb.ModelVersion,
        classes: list[str],
        expected: npt.NDArray[np.float64],
    ) -> list[str]:
        rows = case.table.drop_columns([case.target])
        model_id, number = version.model_id, version.version
        try:
            answer = self.predictions.Predict(
                ps.PredictRequest(model_id=model_id, version=number, arrow_ipc=to_ipc(rows)),
                timeout=60,
            )
            problems = check_predictions(
                from_ipc(answer.arrow_ipc), case, classes, expected, "Predict"
            )
        except grpc.RpcError as exc:
            problems = [f"Predict: {exc.code().name}: {exc.details()}"[:600]]
        size = -(-rows.num_rows // STREAM_BATCHES)
        requests = [
            ps.StreamPredictRequest(
                model_id=model_id, version=number, arrow_ipc=to_ipc(rows.slice(start, size))
            )
            for start in range(0, rows.num_rows, size)
        ]
        try:
            answers = list(self.predictions.StreamPredict(iter(requests), timeout=60))
            parts = [from_ipc(a.arrow_ipc) for a in sorted(answers, key=lambda a: a.batch_index)]
            streamed = pa.concat_tables(parts) if parts else pa.table({})
            problems += check_predictions(streamed, case, classes, expected, "StreamPredict")
        except grpc.RpcError as exc:
            problems.append(f"StreamPredict: {exc.code().name}: {exc.details()}"[:600])
        return problems


def _violation_fields(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    fields: list[str] = []
    for detail in status.details if status is not None else []:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields += [v.field for v in bad_request.field_violations]
    return fields
