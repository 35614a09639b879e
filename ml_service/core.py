"""The service's use cases: train, retrain, inspect and delete models. No transport here."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_service import dataset, uploads
from ml_service.config import Settings
from ml_service.domain import (
    FeatureKind,
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
from ml_service.jobs import JobManager, JobView, LiveJob, utcnow
from ml_service.kinds import KINDS, Kind, get_kind
from ml_service.predictor import ModelCache, Predictions, PredictLimits
from ml_service.records import result_from_dict
from ml_service.store import Store, VersionDraft

log = logging.getLogger(__name__)

DEFAULT_HOLDOUT = 0.2
MAX_NAME = 200
MAX_DESCRIPTION = 2000


@dataclass(frozen=True)
class TrainRequest:
    """What a client asks to train, before the data arrives."""

    kind: str
    target_column: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    feature_columns: tuple[str, ...] = ()
    feature_types: Mapping[str, FeatureKind] = field(default_factory=dict)
    holdout_fraction: float | None = None
    seed: int | None = None
    allow_many_classes: bool = False


@dataclass(frozen=True)
class RetrainRequest:
    """What a client asks to change when training a model's next version."""

    model_id: str
    parent_version: int = 0
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    holdout_fraction: float | None = None
    seed: int | None = None
    allow_many_classes: bool = False


def check_holdout(value: float | None, default: float) -> float:
    """Return the holdout fraction, or raise naming the field."""
    if value is None:
        return default
    if not (math.isfinite(value) and 0.0 <= value < 0.9):
        raise InvalidArgument.field(
            "holdout_fraction", f"must be at least 0 and below 0.9, got {value}"
        )
    return value


class ModelServiceCore:
    """Every operation the transports expose, on one store and one job manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._jobs: JobManager | None = None
        self.predictions = Predictions(ModelCache(1, _closed), _closed, PredictLimits(1, 1, 1))

    async def open(self) -> None:
        """Open the store (sweeping leftovers) and start the training dispatchers."""
        store = await asyncio.to_thread(Store.open, self.settings.data_dir)
        jobs = JobManager(
            store,
            self._commit,
            max_concurrent=self.settings.max_concurrent_trainings,
            max_queued=self.settings.max_queued_jobs,
            cancel_grace_seconds=self.settings.cancel_grace_seconds,
        )
        await jobs.start()
        self.predictions = Predictions(
            ModelCache(self.settings.model_cache_size, store.open_artifact),
            store.get_version,
            PredictLimits(
                rows=self.settings.max_predict_rows,
                values=self.settings.max_predict_values,
                message_bytes=self.settings.max_message_bytes,
            ),
        )
        self._store, self._jobs = store, jobs

    async def close(self) -> None:
        """Stop training (running jobs end as interrupted) and close the store."""
        jobs, store = self._jobs, self._store
        self._jobs = self._store = None
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

    async def create_training_job(
        self, request: TrainRequest, chunks: AsyncIterator[bytes]
    ) -> JobView:
        """Check the request, receive and store the data, and queue the job."""
        try:
            kind = get_kind(request.kind)
        except NotFound as exc:
            raise InvalidArgument.field("kind", exc.message) from exc
        violations = _check_text(request.name, request.description)
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
        self.jobs.check_capacity()

        features = list(request.feature_columns)
        overrides = dict(request.feature_types)

        def check(table: Any) -> None:
            uploads.check_columns(table.schema, self.settings.max_columns)
            plan = dataset.plan_training(table.schema, request.target_column, features, overrides)
            dataset.check_training_table(
                table,
                plan,
                allow_many_classes=request.allow_many_classes,
                max_magnitude=kind.max_feature_magnitude,
            )

        stored = await self._receive_dataset(chunks, check)
        record = JobRecord(
            job_id=new_id("j"),
            model_id=new_id("m"),
            kind=kind.name,
            state=JobState.QUEUED,
            parent_version=0,
            requested_hyperparameters=dict(request.hyperparameters),
            target_column=request.target_column,
            rows=stored.rows,
            dataset_digest=stored.digest,
            created_at=utcnow(),
            name=request.name,
            description=request.description,
        )
        task = self._task(
            record,
            params,
            features,
            {k: v.value for k, v in overrides.items()},
            holdout,
            request.seed or 0,
            request.allow_many_classes,
        )
        return await self.jobs.submit(record, task)

    async def retrain(self, request: RetrainRequest, chunks: AsyncIterator[bytes]) -> JobView:
        """Queue the training of a model's next version from its parent's settings."""
        check_id(request.model_id, "model_id")
        parent = await asyncio.to_thread(
            self.store.get_version, request.model_id, request.parent_version
        )
        model = await asyncio.to_thread(self.store.get_model, request.model_id)
        kind = get_kind(parent.kind)
        params = kind.resolve_hyperparameters({**parent.hyperparameters, **request.hyperparameters})
        holdout = check_holdout(request.holdout_fraction, parent.holdout_fraction)
        self.jobs.check_capacity()
        seed = parent.seed if request.seed is None else request.seed
        signature = parent.signature
        features = [column.name for column in signature.features]
        overrides = {column.name: column.kind for column in signature.features}
        # A parent trained on such a target was allowed it once; its next version is too.
        allow_many_classes = request.allow_many_classes or _had_many_classes(parent)

        def check(table: Any) -> None:
            uploads.check_columns(table.schema, self.settings.max_columns)
            plan = dataset.plan_training(table.schema, signature.target_column, features, overrides)
            dataset.check_training_table(
                table,
                plan,
                allow_many_classes=allow_many_classes,
                max_magnitude=kind.max_feature_magnitude,
            )

        stored = await self._receive_dataset(chunks, check, allow_empty=True)
        digest, rows = (
            (stored.digest, stored.rows)
            if stored
            else (parent.dataset_digest, parent.train_rows + parent.holdout_rows)
        )
        record = JobRecord(
            job_id=new_id("j"),
            model_id=model.model_id,
            kind=kind.name,
            state=JobState.QUEUED,
            parent_version=parent.version,
            requested_hyperparameters=dict(request.hyperparameters),
            target_column=signature.target_column,
            rows=rows,
            dataset_digest=digest,
            created_at=utcnow(),
            name=model.name,
            description=model.description,
        )
        overrides_text = {k: v.value for k, v in overrides.items()}
        task = self._task(
            record, params, features, overrides_text, holdout, seed, allow_many_classes
        )
        return await self.jobs.submit(record, task)

    async def _receive_dataset(
        self, chunks: AsyncIterator[bytes], check: Any, allow_empty: bool = False
    ) -> Any:
        path = self.store.scratch_path(".arrows")
        try:
            size = await uploads.receive(chunks, path, self.settings.max_upload_bytes)
            if size == 0 and allow_empty:
                return None
            table = await asyncio.to_thread(
                uploads.read_ipc_file, path, self.settings.max_upload_rows
            )
            return await asyncio.to_thread(uploads.store_table, self.store, table, check)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def _task(
        self,
        record: JobRecord,
        params: dict[str, Any],
        features: list[str],
        overrides: dict[str, str],
        holdout: float,
        seed: int,
        allow_many_classes: bool,
    ) -> dict[str, Any]:
        return {
            "kind": record.kind,
            "hyperparameters": params,
            "dataset_path": self.store.dataset_path(record.dataset_digest),
            "target_column": record.target_column,
            "feature_columns": features,
            "feature_types": overrides,
            "holdout_fraction": holdout,
            "seed": seed,
            "allow_many_classes": allow_many_classes,
            "artifact_path": self.store.scratch_path(get_kind(record.kind).artifact_suffix),
            # Concurrent trainings share the cores instead of oversubscribing them.
            "threads": max(1, (os.cpu_count() or 1) // self.settings.max_concurrent_trainings),
        }

    async def _commit(self, job: LiveJob, result: dict[str, Any]) -> VersionRecord:
        """Turn a worker's result into a committed model version."""
        trained = result_from_dict(result)
        record = job.record
        started = record.started_at or record.created_at
        timings = dataclasses.replace(
            trained.timings, queue_seconds=(started - record.created_at).total_seconds()
        )
        draft = VersionDraft(
            model_id=record.model_id,
            kind=record.kind,
            hyperparameters=job.task["hyperparameters"],
            signature=trained.signature,
            metrics=trained.metrics,
            feature_importance=trained.feature_importance,
            train_rows=trained.train_rows,
            holdout_rows=trained.holdout_rows,
            timings=timings,
            library_versions=trained.library_versions,
            parent_version=record.parent_version,
            dataset_digest=record.dataset_digest,
            job_id=record.job_id,
            holdout_fraction=job.task["holdout_fraction"],
            seed=job.task["seed"],
            name=record.name,
            description=record.description,
        )
        version = await asyncio.to_thread(
            self.store.commit_version, draft, job.task["artifact_path"]
        )
        self.predictions.forget(record.model_id)
        return version

    async def get_job(self, job_id: str) -> JobView:
        """Return one job."""
        return await self.jobs.get(check_id(job_id, "job_id"))

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

    async def cancel_job(self, job_id: str) -> JobView:
        """Cancel a queued or running job."""
        return await self.jobs.cancel(check_id(job_id, "job_id"))

    def watch_job(self, job_id: str) -> AsyncIterator[JobView]:
        """Stream the job's changes until it ends."""
        return self.jobs.watch(check_id(job_id, "job_id"))

    async def job_result(self, view: JobView) -> VersionRecord | None:
        """Return the version a succeeded job made, if it still exists."""
        if view.result is not None or view.record.state is not JobState.SUCCEEDED:
            return view.result
        with contextlib.suppress(Exception):
            return await asyncio.to_thread(
                self.store.get_version, view.record.model_id, view.record.result_version
            )
        return None

    # Models and versions

    async def get_model(self, model_id: str) -> ModelRecord:
        """Return one model."""
        return await asyncio.to_thread(self.store.get_model, check_id(model_id, "model_id"))

    async def list_models(self, page_size: int, page_token: str) -> tuple[list[ModelRecord], str]:
        """Return one page of models, newest first."""
        return await asyncio.to_thread(self.store.list_models, page_size, page_token)

    async def get_version(self, model_id: str, version: int) -> VersionRecord:
        """Return one version; 0 means the latest."""
        check_id(model_id, "model_id")
        return await asyncio.to_thread(self.store.get_version, model_id, version)

    async def list_versions(
        self, model_id: str, page_size: int, page_token: str
    ) -> tuple[list[VersionRecord], str]:
        """Return one page of a model's versions, newest first."""
        check_id(model_id, "model_id")
        return await asyncio.to_thread(self.store.list_versions, model_id, page_size, page_token)

    async def delete_model(self, model_id: str) -> int:
        """Delete a model and all its versions; refused while a job trains it."""
        check_id(model_id, "model_id")
        self._refuse_if_training(model_id)
        deleted = await asyncio.to_thread(self.store.delete_model, model_id)
        self.predictions.forget(model_id)
        return deleted

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


def _had_many_classes(parent: VersionRecord) -> bool:
    classes = len(parent.signature.classes)
    rows = parent.train_rows + parent.holdout_rows
    return classes > dataset.MANY_CLASSES or (
        classes >= dataset.FEW_ROWS_CLASSES and rows < dataset.MIN_ROWS_PER_CLASS * classes
    )


def _closed(*args: object) -> Any:
    raise Unavailable("the model store is not open yet; retry shortly")


def _check_text(name: str, description: str) -> list[FieldViolation]:
    violations = []
    if len(name) > MAX_NAME:
        violations.append(FieldViolation("name", f"is longer than {MAX_NAME} characters"))
    if len(description) > MAX_DESCRIPTION:
        violations.append(
            FieldViolation("description", f"is longer than {MAX_DESCRIPTION} characters")
        )
    return violations
