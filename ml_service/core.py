"""The service's use cases: train, retrain, inspect and delete models. No transport here."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pyarrow as pa

from ml_service import dataset, executors, ingest
from ml_service.config import Settings
from ml_service.domain import (
    JobRecord,
    JobState,
    ModelRecord,
    VersionRecord,
)
from ml_service.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from ml_service.ids import check_id, new_id
from ml_service.job_manager import JobManager, JobView, LiveJob, utcnow
from ml_service.kinds import KINDS, Kind, get_kind
from ml_service.loaded_model import LoadedModel
from ml_service.predictor import ModelCache, Predictions, PredictLimits
from ml_service.replicas import ReplicaSync
from ml_service.store import Store
from ml_service.telemetry import Telemetry, use_case
from ml_service.training_contract import TrainingResult, TrainingTask
from ml_service.training_requests import (
    DEFAULT_HOLDOUT,
    NewJob,
    RetrainRequest,
    TrainRequest,
    check_holdout,
    check_text,
    had_many_classes,
)

log = logging.getLogger(__name__)


class ModelServiceCore:
    """Every operation the transports expose, on one store and one job manager."""

    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        # Without one given, metrics go to a registry of its own that nothing serves.
        self.telemetry = telemetry or Telemetry()
        self._store: Store | None = None
        self._jobs: JobManager | None = None
        self._sync: ReplicaSync | None = None
        # Names this process in the job rows it holds; unique across restarts and hosts.
        self._replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.predictions = Predictions(ModelCache(1, _closed), _closed, PredictLimits(1, 1, 1))

    async def open(self) -> None:
        """Open the store (sweeping leftovers) and start the training dispatchers."""
        store = await asyncio.to_thread(
            functools.partial(
                Store.open,
                self.settings.data_dir,
                database_url=self.settings.database_url,
                artifact_uri=self.settings.artifact_uri,
            )
        )
        store.observe = self.telemetry.store_operation
        jobs = JobManager(
            store,
            self._commit,
            max_concurrent=self.settings.max_concurrent_trainings,
            max_queued=self.settings.max_queued_jobs,
            cancel_grace_seconds=self.settings.cancel_grace_seconds,
            telemetry=self.telemetry,
            owner=self._replica,
            lease_seconds=self.settings.job_lease_seconds,
            executor=executors.build(self.settings, store),
        )
        await jobs.start()
        self.predictions = Predictions(
            ModelCache(self.settings.model_cache_size, store.open_artifact, self.telemetry),
            store.get_version,
            PredictLimits(
                rows=self.settings.max_predict_rows,
                values=self.settings.max_predict_values,
                message_bytes=self.settings.max_message_bytes,
            ),
        )
        if store.shared is not None:
            self._sync = ReplicaSync(
                store.shared,
                jobs,
                self.predictions,
                owner=self._replica,
                lease_seconds=self.settings.job_lease_seconds,
            )
            await self._sync.start()
        self._store, self._jobs = store, jobs

    async def close(self) -> None:
        """Stop training (running jobs end as interrupted) and close the store."""
        jobs, store, sync = self._jobs, self._store, self._sync
        self._jobs = self._store = self._sync = None
        if sync is not None:
            await sync.close()
        if jobs is not None:
            await jobs.close()
        if store is not None:
            await asyncio.to_thread(store.close)

    @property
    def store(self) -> Store:
        """The open store; calls before it opens are told to retry."""
        if self._store is None:
            raise Unavailable("the model store is not open yet; retry shortly")
        return self._store

    @property
    def jobs(self) -> JobManager:
        """The job manager of the open store."""
        if self._jobs is None:
            raise Unavailable("the model store is not open yet; retry shortly")
        return self._jobs

    # Kinds

    def list_kinds(self) -> list[Kind]:
        """Return every model kind."""
        return list(KINDS.values())

    # Training

    @use_case
    async def create_training_job(
        self, request: TrainRequest, chunks: AsyncIterator[bytes]
    ) -> JobView:
        """Check the request, receive and store the data, and queue the job."""
        try:
            kind = get_kind(request.kind)
        except NotFound as exc:
            raise InvalidArgument.field("kind", exc.message) from exc
        violations = check_text(request.name, request.description)
        params: dict[str, Any] = {}
        try:
            params = kind.resolve_hyperparameters(request.hyperparameters)
        except InvalidArgument as exc:
            violations.extend(exc.violations)
        if not request.target_column:
            violations.append(FieldViolation("target_column", "is required"))
        holdout = DEFAULT_HOLDOUT
        try:
            holdout = check_holdout(request.holdout_fraction, DEFAULT_HOLDOUT)
        except InvalidArgument as exc:
            violations.extend(exc.violations)
        if violations:
            raise InvalidArgument.of(violations)
        job = NewJob(
            kind=kind,
            params=params,
            requested=dict(request.hyperparameters),
            target=request.target_column,
            feature_columns=tuple(request.feature_columns),
            feature_types=dict(request.feature_types),
            holdout=holdout,
            seed=request.seed or 0,
            allow_many_classes=request.allow_many_classes,
            model_id=new_id("m"),
            name=request.name,
            description=request.description,
        )
        return await self._start_job(job, chunks)

    @use_case
    async def retrain(self, request: RetrainRequest, chunks: AsyncIterator[bytes]) -> JobView:
        """Queue the training of a model's next version from its parent's settings."""
        check_id(request.model_id, "model_id")
        parent = await asyncio.to_thread(
            self.store.get_version, request.model_id, request.parent_version
        )
        model = await asyncio.to_thread(self.store.get_model, request.model_id)
        kind = get_kind(parent.kind)
        params = kind.resolve_hyperparameters({**parent.hyperparameters, **request.hyperparameters})
        signature = parent.training.signature
        job = NewJob(
            kind=kind,
            params=params,
            requested=dict(request.hyperparameters),
            target=signature.target_column,
            feature_columns=tuple(column.name for column in signature.features),
            feature_types={column.name: column.kind for column in signature.features},
            holdout=check_holdout(request.holdout_fraction, parent.holdout_fraction),
            seed=parent.seed if request.seed is None else request.seed,
            # A parent trained on such a target was allowed it once; its next version is too.
            allow_many_classes=request.allow_many_classes or had_many_classes(parent),
            model_id=model.model_id,
            name=model.name,
            description=model.description,
            parent=parent,
        )
        return await self._start_job(job, chunks)

    async def _start_job(self, job: NewJob, chunks: AsyncIterator[bytes]) -> JobView:
        """Receive and check the data (or reuse the parent's), then queue the job: one path."""
        self.jobs.check_capacity()
        kind, plan = job.kind, None

        def check(table: pa.Table) -> None:
            nonlocal plan
            ingest.check_columns(table.schema, self.settings.max_columns)
            plan = dataset.plan_training(
                table.schema, job.target, job.feature_columns, job.feature_types
            )
            classes = dataset.check_training_table(
                table,
                plan,
                allow_many_classes=job.allow_many_classes,
                max_magnitude=kind.max_feature_magnitude,
            )
            if violations := kind.check_for_data(job.params, classes):
                raise InvalidArgument.of(violations)

        stored = await self._receive_dataset(chunks, check, allow_empty=job.parent is not None)
        if stored is not None and plan is not None:
            digest, rows = stored.digest, stored.rows
            features = tuple((name, use) for name, use, _ in plan.features)
        else:
            # A retrain without new data: the parent's data, columns and classes, as checked.
            parent = job.parent
            assert parent is not None
            classes = len(parent.training.signature.classes)
            if violations := kind.check_for_data(job.params, classes):
                raise InvalidArgument.of(violations)
            digest, rows = (
                parent.dataset_digest,
                parent.training.train_rows + parent.training.holdout_rows,
            )
            features = tuple((c.name, c.kind) for c in parent.training.signature.features)
        record = JobRecord(
            job_id=new_id("j"),
            model_id=job.model_id,
            kind=kind.name,
            state=JobState.QUEUED,
            parent_version=0 if job.parent is None else job.parent.version,
            requested_hyperparameters=job.requested,
            target_column=job.target,
            rows=rows,
            dataset_digest=digest,
            created_at=utcnow(),
            name=job.name,
            description=job.description,
        )
        task = TrainingTask(
            kind=kind.name,
            hyperparameters=job.params,
            dataset_path=self.jobs.dataset_location(digest),
            target_column=job.target,
            features=features,
            holdout_fraction=job.holdout,
            seed=job.seed,
            artifact_path=self.store.scratch_path(kind.artifact_suffix),
            # Concurrent trainings share the cores instead of oversubscribing them.
            threads=max(1, (os.cpu_count() or 1) // self.settings.max_concurrent_trainings),
        )
        return await self.jobs.submit(record, task)

    async def _receive_dataset(
        self,
        chunks: AsyncIterator[bytes],
        check: Callable[[pa.Table], None],
        allow_empty: bool = False,
    ) -> ingest.Dataset | None:
        path = self.store.scratch_path(".arrows")
        try:
            size = await ingest.receive(chunks, path, self.settings.max_upload_bytes)
            self.telemetry.metrics.upload_bytes.observe(size)
            if size == 0 and allow_empty:
                return None
            table = await asyncio.to_thread(
                ingest.read_ipc_file, path, self.settings.max_upload_rows
            )
            return await asyncio.to_thread(ingest.store_table, self.store, table, check)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    async def _commit(self, job: LiveJob, result: TrainingResult) -> VersionRecord:
        """Commit a finished training as the model's next version."""
        record = job.record
        started = record.started_at or record.created_at
        timings = dataclasses.replace(
            result.timings, queue_seconds=(started - record.created_at).total_seconds()
        )
        task = job.task
        draft = VersionRecord(
            model_id=record.model_id,
            version=0,
            kind=record.kind,
            hyperparameters=task.hyperparameters,
            training=dataclasses.replace(result, timings=timings),
            created_at=record.created_at,
            artifact_key="",
            parent_version=record.parent_version,
            dataset_digest=record.dataset_digest,
            job_id=record.job_id,
            holdout_fraction=task.holdout_fraction,
            seed=task.seed,
        )
        version = await asyncio.to_thread(
            self.store.commit_version, draft, task.artifact_path, record.name, record.description
        )
        self.predictions.forget(record.model_id)
        return version

    @use_case
    async def get_job(self, job_id: str) -> JobView:
        """Return one job, with the version it made once it has succeeded."""
        return await self._with_result(await self.jobs.get(check_id(job_id, "job_id")))

    @use_case
    async def list_jobs(
        self, page_size: int, page_token: str, model_id: str = ""
    ) -> tuple[list[JobView], str]:
        """Return one page of jobs, newest first, with live progress where there is some."""
        if model_id:
            check_id(model_id, "model_id")
        records, token = await asyncio.to_thread(
            self.store.list_jobs, page_size, page_token, model_id
        )
        views = []
        for record in records:
            live = self.jobs.live_view(record.job_id)
            views.append(live if live is not None else await self.jobs.get(record.job_id))
        return views, token

    @use_case
    async def cancel_job(self, job_id: str) -> JobView:
        """Cancel a queued or running job."""
        return await self.jobs.cancel(check_id(job_id, "job_id"))

    @use_case
    async def watch_job(self, job_id: str) -> AsyncIterator[JobView]:
        """Stream the job's changes until it ends; the last one carries the version it made."""
        async for view in self.jobs.watch(check_id(job_id, "job_id")):
            yield await self._with_result(view) if view.record.state.is_final else view

    async def _with_result(self, view: JobView) -> JobView:
        """Attach the version a succeeded job made, while it still exists."""
        if view.result is not None or view.record.state is not JobState.SUCCEEDED:
            return view
        try:
            result = await asyncio.to_thread(
                self.store.get_version, view.record.model_id, view.record.result_version
            )
        except NotFound:
            return view  # deleted since; the job still says which version it made
        return dataclasses.replace(view, result=result)

    # Prediction

    @use_case
    async def predict(self, model_id: str, version: int, data: bytes) -> tuple[int, bytes]:
        """Predict one Arrow IPC stream; return the version that answered and the predictions."""
        return await self.predictions.predict(model_id, version, data)

    @use_case
    async def prediction_model(self, model_id: str, version: int) -> LoadedModel:
        """Return a version's loaded model (0 = latest), for transports that decode rows."""
        return await self.predictions.model(model_id, version)

    @use_case
    async def predict_rows(self, model: LoadedModel, rows: pa.Table) -> pa.RecordBatch:
        """Predict decoded rows with a loaded model, under the same caps as predict."""
        return await self.predictions.predict_rows(model, rows)

    @use_case
    async def stream_predict(
        self, model_id: str, version: int, messages: AsyncIterator[bytes]
    ) -> AsyncIterator[tuple[int, int, bytes, bool]]:
        """Answer a stream of Arrow IPC batches in order (see Predictions.stream)."""
        async for answer in self.predictions.stream(model_id, version, messages):
            yield answer

    # Models and versions

    @use_case
    async def get_model(self, model_id: str) -> ModelRecord:
        """Return one model."""
        return await asyncio.to_thread(self.store.get_model, check_id(model_id, "model_id"))

    @use_case
    async def list_models(self, page_size: int, page_token: str) -> tuple[list[ModelRecord], str]:
        """Return one page of models, newest first."""
        return await asyncio.to_thread(self.store.list_models, page_size, page_token)

    @use_case
    async def get_version(self, model_id: str, version: int) -> VersionRecord:
        """Return one version; 0 means the latest."""
        check_id(model_id, "model_id")
        return await asyncio.to_thread(self.store.get_version, model_id, version)

    @use_case
    async def list_versions(
        self, model_id: str, page_size: int, page_token: str
    ) -> tuple[list[VersionRecord], str]:
        """Return one page of a model's versions, newest first."""
        check_id(model_id, "model_id")
        return await asyncio.to_thread(self.store.list_versions, model_id, page_size, page_token)

    @use_case
    async def delete_model(self, model_id: str) -> int:
        """Delete a model and all its versions; refused while a job trains it."""
        check_id(model_id, "model_id")
        self._refuse_if_training(model_id)
        deleted = await asyncio.to_thread(self.store.delete_model, model_id)
        self.predictions.forget(model_id)
        return deleted

    @use_case
    async def delete_version(self, model_id: str, version: int) -> bool:
        """Delete one version; returns whether the model went with it."""
        check_id(model_id, "model_id")
        if version <= 0:
            raise InvalidArgument.field("version", "name the version to delete (1 or more)")
        self._refuse_if_training(model_id)
        gone = await asyncio.to_thread(self.store.delete_version, model_id, version)
        self.predictions.forget(model_id, version)
        return gone

    def _refuse_if_training(self, model_id: str) -> None:
        job_id = self.jobs.active_job_for_model(model_id)
        if job_id is not None:
            raise FailedPrecondition(
                f"model '{model_id}' is being trained by job '{job_id}'; cancel it or wait"
            )


def _closed(*args: object) -> Any:
    raise Unavailable("the model store is not open yet; retry shortly")
