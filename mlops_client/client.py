"""The Python client: train, inspect and predict with typed results and typed errors."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, overload

import grpc
import pyarrow as pa
from mlops.v1 import model_service_pb2 as ms
from mlops.v1 import model_service_pb2_grpc as ms_grpc
from mlops.v1 import prediction_service_pb2 as ps
from mlops.v1 import prediction_service_pb2_grpc as ps_grpc
from mlops.v1 import training_service_pb2 as ts
from mlops.v1 import training_service_pb2_grpc as ts_grpc
from mlops.v1 import types_pb2 as pb

from mlops_client import results as r
from mlops_client.errors import JobCancelled, JobFailed
from mlops_client.files import (
    BatchWriter,
    check_output,
    data_file,
    open_writer,
    read_batches,
    read_table,
)
from mlops_client.frames import FrameCodec, column_name, is_frame, not_a_table, row_table
from mlops_client.ipc import CHUNK_BYTES, fitting_ipc, from_ipc, to_ipc
from mlops_client.pipeline import ReadAhead, WriteBehind
from mlops_client.transport import Caller, open_channel
from mlops_client.uploads import (
    Data,
    Resources,
    create_messages,
    data_pieces,
    feature_type_values,
    resources_message,
    retrain_messages,
    struct,
)
from mlops_client.uploads import training_spec as build_spec

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[r.Job], None]
# Batches read ahead of the stream, and answers waiting to be written, at most.
PIPELINE_DEPTH = 3
# About the most a predicted file's batch holds, at 8 bytes a value, under the message cap
# (ipc.STREAM_MESSAGE_BYTES) so it is encoded once: 64k rows of up to 24 features; a table
# of 2,000 features goes 786 rows at a time, not 1 GiB of them.
BATCH_BYTES = 12 * 1024 * 1024


@dataclass(frozen=True)
class FileSummary:
    """What predict_file did: rows in, batches sent, and how long it took."""

    rows: int
    batches: int
    seconds: float
    version: int


class Client:
    """A connection to the mlops service; use as a context manager or call close()."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        token: str | None = None,
        tls: bool | str | Path | grpc.ChannelCredentials = False,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.1,
    ) -> None:
        self.target = target
        self._channel = open_channel(target, tls)
        self._call = Caller(token, timeout, retries, backoff)
        self._models = ms_grpc.ModelServiceStub(self._channel)
        self._training = ts_grpc.TrainingServiceStub(self._channel)
        self._prediction = ps_grpc.PredictionServiceStub(self._channel)
        self._frames = FrameCodec()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Models, versions, kinds.

    def kinds(self) -> list[r.ModelKind]:
        """List the model kinds the service trains, with their hyperparameters."""
        answer = self._call.unary(
            self._models.ListModelKinds, ms.ListModelKindsRequest(), idempotent=True
        )
        return [r.kind_from(k) for k in answer.kinds]

    def models(self) -> list[r.Model]:
        """List every model, newest first."""
        pages = self._pages(self._models.ListModels, ms.ListModelsRequest(), "models")
        return [r.model_from(m) for m in pages]

    def model(self, model: str) -> r.Model:
        """Get one model."""
        request = ms.GetModelRequest(model_id=model)
        return r.model_from(self._call.unary(self._models.GetModel, request, idempotent=True).model)

    def versions(self, model: str) -> list[r.ModelVersion]:
        """List a model's versions, newest first."""
        request = ms.ListModelVersionsRequest(model_id=model)
        pages = self._pages(self._models.ListModelVersions, request, "model_versions")
        return [r.version_from(v) for v in pages]

    def version(self, model: str, version: int | None = None) -> r.ModelVersion:
        """Get one version of a model; the latest when `version` is None."""
        request = ms.GetModelVersionRequest(model_id=model, version=version or 0)
        answer = self._call.unary(self._models.GetModelVersion, request, idempotent=True)
        return r.version_from(answer.model_version)

    def delete(self, model: str, version: int | None = None) -> r.Deleted:
        """Delete a model, or one version of it (its last takes the model along)."""
        if version is None:
            request = ms.DeleteModelRequest(model_id=model)
            answer = self._call.unary(self._models.DeleteModel, request, idempotent=False)
            return r.Deleted(versions=int(answer.deleted_versions), model_deleted=True)
        one = ms.DeleteModelVersionRequest(model_id=model, version=version)
        gone = self._call.unary(self._models.DeleteModelVersion, one, idempotent=False)
        return r.Deleted(versions=1, model_deleted=gone.model_deleted)

    def _pages(self, method: Callable[..., Any], request: Any, field: str) -> Iterator[Any]:
        request.page_size = 1000
        while True:
            answer = self._call.unary(method, request, idempotent=True)
            yield from getattr(answer, field)
            if not answer.next_page_token:
                return
            request.page_token = answer.next_page_token

    # Training jobs.

    @overload
    def train(
        self,
        data: Data,
        kind: str,
        target: Hashable,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        wait: Literal[True] = True,
        progress: Progress | None = None,
        name: str = "",
        description: str = "",
        feature_columns: Iterable[Hashable] = (),
        feature_types: Mapping[Any, str] | None = None,
        holdout_fraction: float | None = None,
        seed: int | None = None,
        allow_many_classes: bool = False,
        resources: Resources | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        upload_timeout: float = 600.0,
    ) -> r.ModelVersion: ...

    @overload
    def train(
        self,
        data: Data,
        kind: str,
        target: Hashable,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        wait: Literal[False],
        progress: Progress | None = None,
        name: str = "",
        description: str = "",
        feature_columns: Iterable[Hashable] = (),
        feature_types: Mapping[Any, str] | None = None,
        holdout_fraction: float | None = None,
        seed: int | None = None,
        allow_many_classes: bool = False,
        resources: Resources | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        upload_timeout: float = 600.0,
    ) -> r.Job: ...

    def train(
        self,
        data: Data,
        kind: str,
        target: Hashable,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        progress: Progress | None = None,
        name: str = "",
        description: str = "",
        feature_columns: Iterable[Hashable] = (),
        feature_types: Mapping[Any, str] | None = None,
        holdout_fraction: float | None = None,
        seed: int | None = None,
        allow_many_classes: bool = False,
        resources: Resources | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        upload_timeout: float = 600.0,
    ) -> r.ModelVersion | r.Job:
        """Upload a table and train a new model; wait for its version unless wait=False.

        `feature_columns` (default: every column but the target and a DataFrame's index
        kept as a column by pa.Table.from_pandas or to_parquet) are what the model reads;
        `feature_types` reads a column as "numeric" or "categorical" (a numeric code, say)
        instead of by its type. Columns go by a DataFrame's labels (0, or ("a", 1) of a
        MultiIndex) as well as by their names in the table ("0", "('a', '1')").
        """
        if isinstance(feature_columns, str):  # one column's name, not its letters
            feature_columns = (feature_columns,)
        spec = build_spec(
            kind, column_name(target), hyperparameters, allow_many_classes, name=name,
            description=description, feature_columns=tuple(map(column_name, feature_columns)),
            feature_types=feature_type_values(feature_types),
            holdout_fraction=holdout_fraction, seed=seed,
        )  # fmt: skip
        if resources is not None:
            spec.resources.CopyFrom(resources_message(resources))
        messages = create_messages(spec, data_pieces(data, chunk_bytes))
        job = r.job_from(
            self._call.upload(self._training.CreateTrainingJob, messages, upload_timeout).job
        )
        return self.wait(job.job_id, progress) if wait else job

    def retrain(
        self,
        model: str,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        data: Data | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        holdout_fraction: float | None = None,
        seed: int | None = None,
        resources: Resources | None = None,
        upload_timeout: float = 600.0,
    ) -> r.ModelVersion | r.Job:
        """Train the next version of a model, on new data or the parent's."""
        spec = pb.RetrainSpec(
            model_id=model, parent_version=version or 0, hyperparameters=struct(hyperparameters)
        )
        if holdout_fraction is not None:
            spec.holdout_fraction = holdout_fraction
        if seed is not None:
            spec.seed = seed
        if resources is not None:
            spec.resources.CopyFrom(resources_message(resources))
        pieces = data_pieces(data) if data is not None else None
        messages = retrain_messages(spec, pieces)
        job = r.job_from(
            self._call.upload(self._training.RetrainModel, messages, upload_timeout).job
        )
        return self.wait(job.job_id, progress) if wait else job

    def job(self, job_id: str) -> r.Job:
        """Get one training job."""
        request = ts.GetTrainingJobRequest(job_id=job_id)
        return r.job_from(
            self._call.unary(self._training.GetTrainingJob, request, idempotent=True).job
        )

    def jobs(self, model: str | None = None) -> list[r.Job]:
        """List training jobs, newest first; only one model's when `model` is given."""
        request = ts.ListTrainingJobsRequest(model_id=model or "")
        return [
            r.job_from(j) for j in self._pages(self._training.ListTrainingJobs, request, "jobs")
        ]

    def cancel(self, job_id: str) -> r.Job:
        """Cancel a queued or running job."""
        request = ts.CancelTrainingJobRequest(job_id=job_id)
        answer = self._call.unary(self._training.CancelTrainingJob, request, idempotent=False)
        return r.job_from(answer.job)

    def watch(self, job_id: str, timeout: float | None = None) -> Iterator[r.Job]:
        """Yield the job as it changes, ending with its final state."""
        request = ts.WatchTrainingJobRequest(job_id=job_id)
        for update in self._call.server_stream(self._training.WatchTrainingJob, request, timeout):
            yield r.job_from(update.job)

    def wait(self, job_id: str, progress: Progress | None = None) -> r.ModelVersion:
        """Follow a job to its end and return the version it made; raise if it made none."""
        last: r.Job | None = None
        for last in self.watch(job_id):
            if progress is not None:
                progress(last)
        job = last or self.job(job_id)
        if job.state is r.JobState.SUCCEEDED and job.result is not None:
            return job.result
        if job.state is r.JobState.CANCELLED:
            raise JobCancelled(f"job {job.job_id} was cancelled", job)
        raise JobFailed(f"job {job.job_id} failed: {job.error_message or job.state}", job)

    # Predictions.

    @overload
    def predict(
        self, model: str, data: pd.DataFrame, version: int | None = None
    ) -> pd.DataFrame: ...

    @overload
    def predict(
        self, model: str, data: pa.Table | pa.RecordBatch | str | Path, version: int | None = None
    ) -> pa.Table: ...

    @overload
    def predict(
        self, model: str, data: Mapping[str, Any], version: int | None = None
    ) -> dict[str, Any]: ...

    def predict(self, model: str, data: Any, version: int | None = None) -> Any:
        """Predict rows: a DataFrame gives a DataFrame, one row as a dict a dict, else a table.

        The answer has a `label` column and then one float64 probability column per class;
        a row given as {column: value} (None: missing) is answered as {"label": …,
        "proba_<class>": …}.
        """
        frame = is_frame(data)
        if frame:
            payload = self._frames.encode((model, version), data)
        elif isinstance(data, Mapping):
            payload = to_ipc(row_table(data))
        elif isinstance(data, pa.Table | pa.RecordBatch):
            payload = to_ipc(data)
        elif isinstance(data, str | Path):
            payload = to_ipc(read_table(data_file(data)))
        else:
            raise not_a_table(
                data, "a pandas DataFrame, an Arrow table or batch, a path or a row as a dict"
            )
        request = ps.PredictRequest(model_id=model, version=version or 0, arrow_ipc=payload)
        answer = self._call.unary(self._prediction.Predict, request, idempotent=True)
        table = from_ipc(answer.arrow_ipc)
        if isinstance(data, Mapping):
            return table.to_pylist()[0]
        return self._frames.decode(table, data) if frame else table

    def predict_stream(
        self,
        model: str,
        batches: Iterable[pa.RecordBatch | pa.Table | pd.DataFrame],
        version: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Predict batch after batch over one stream; answers come in order, one per batch.

        A DataFrame (a chunk of pd.read_csv(path, chunksize=n), say) is answered with a
        DataFrame indexed like it, as by predict; an Arrow table or batch with a table.
        """
        # The frame each answer lines up with, None for Arrow; queued as the stream takes
        # each batch, in gRPC's thread, before its answer can come.
        frames: deque[pd.DataFrame | None] = deque()

        def payloads() -> Iterator[bytes]:
            for batch in batches:
                if is_frame(batch):
                    payload = self._frames.encode((model, version), batch)
                elif isinstance(batch, pa.Table | pa.RecordBatch):
                    payload = to_ipc(batch)
                else:
                    raise not_a_table(batch, "a pandas DataFrame or an Arrow table or batch")
                frames.append(batch if is_frame(batch) else None)
                yield payload

        for table in self._stream(model, version, payloads(), timeout):
            like = frames.popleft()
            yield table if like is None else self._frames.decode(table, like)

    def _stream(
        self, model: str, version: int | None, payloads: Iterable[bytes], timeout: float | None
    ) -> Iterator[pa.Table]:
        failed: list[Exception] = []

        def requests() -> Iterator[ps.StreamPredictRequest]:
            try:
                for i, payload in enumerate(payloads):
                    first = i == 0
                    yield ps.StreamPredictRequest(
                        model_id=model if first else "",
                        version=(version or 0) if first else 0,
                        arrow_ipc=payload,
                    )
            except Exception as error:
                # Raising here makes grpc log a traceback and fail the call with "Exception
                # iterating requests!"; ending the stream lets the caller's thread raise it,
                # once the batches sent before it are answered.
                failed.append(error)

        # A batch whose answer would not fit one message comes in parts, all but the last
        # continued: given back whole, one answer per batch.
        parts: list[pa.Table] = []
        for answer in self._call.bidi(self._prediction.StreamPredict, requests(), timeout):
            parts.append(from_ipc(answer.arrow_ipc))
            if not answer.continued:
                yield parts[0] if len(parts) == 1 else pa.concat_tables(parts)
                parts = []
        if failed:
            raise failed[0]

    def predict_file(
        self,
        model: str,
        path: str | Path,
        out: str | Path | BinaryIO,
        version: int | None = None,
        *,
        batch_rows: int = 64 * 1024,
        progress: Callable[[int], None] | None = None,
    ) -> FileSummary:
        """Predict a CSV or Parquet file of any size into a CSV or Parquet file, in batches.

        The file is read and encoded a few batches ahead in one thread and the answers are
        written in another while the stream runs, so at most about 2 x PIPELINE_DEPTH
        batches are held at once whatever the file's size. The answers go to a hidden file
        beside `out` that takes its name only once every row is answered: a failure leaves
        no half-written answers, and whatever `out` held before stays as it was. An open
        binary stream for `out` (standard output, say) gets CSV as the answers come.
        """
        started = time.perf_counter()
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
        path = data_file(path)
        if not isinstance(out, str | Path):
            return self._predict_into(model, path, out, version, batch_rows, progress, started)
        out = Path(out)
        if out.is_symlink():  # the answers replace what it points to, not the link
            out = out.resolve()
        check_output(path, out)
        # Hidden, beside it, with its suffixes (answers.tsv.gz: tabs, compressed).
        partial = out.with_name(f".partial-{os.getpid()}-{out.name}")
        try:
            summary = self._predict_into(
                model, path, partial, version, batch_rows, progress, started
            )
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, out)
        return summary

    def _predict_into(
        self,
        model: str,
        path: Path,
        out: Path | BinaryIO,
        version: int | None,
        batch_rows: int,
        progress: Callable[[int], None] | None,
        started: float,
    ) -> FileSummary:
        pinned = self.version(model, version)  # read and predict with one version's signature
        # A wide table's rows in fewer per batch: what is held stays bounded.
        batch_rows = min(batch_rows, max(1, BATCH_BYTES // (8 * len(pinned.signature.features))))
        schema, batches = read_batches(path, batch_rows, pinned.signature)
        payloads = (payload for batch in batches for payload in fitting_ipc(batch))
        ahead = ReadAhead(payloads, PIPELINE_DEPTH)
        writer: BatchWriter | None = None
        behind: WriteBehind[pa.Table] | None = None
        rows = count = 0
        try:
            for answer in self._stream(model, pinned.version, _until_error(ahead), None):
                if behind is None:
                    writer = open_writer(out, answer.schema)
                    behind = WriteBehind(writer.write_table, PIPELINE_DEPTH)
                behind.put(answer)
                rows += answer.num_rows
                count += 1
                if progress is not None:
                    progress(answer.num_rows)
                if ahead.error is not None:
                    break
            if ahead.error is not None:
                raise ahead.error  # the file could not be read: say so, not what it cut short
            if behind is not None:
                behind.close()
        except BaseException:
            _close(ahead, behind, writer)
            raise
        _close(ahead, behind, writer)
        if writer is None:
            # No rows: the answers' columns still, as a header or a Parquet schema (an empty
            # file was no Parquet at all, and a CSV without the header a reader refuses).
            none = self.predict(model, schema.empty_table(), pinned.version)
            writer = open_writer(out, none.schema)
            writer.write_table(none)
            writer.close()
        return FileSummary(rows, count, time.perf_counter() - started, pinned.version)


def _close(
    ahead: ReadAhead[bytes], behind: WriteBehind[pa.Table] | None, writer: BatchWriter | None
) -> None:
    ahead.close()
    if behind is not None:
        behind.abandon()
    if writer is not None:
        writer.close()


def _until_error(items: ReadAhead[bytes]) -> Iterator[bytes]:
    # A request iterator that raises makes grpc log a traceback and cancel the call; ending
    # the stream instead lets predict_file raise the reader's own error in the caller's thread.
    try:
        yield from items
    except Exception:  # kept in items.error
        return
