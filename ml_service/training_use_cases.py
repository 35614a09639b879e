"""Training use cases: train a new model, retrain one, and commit what a job trained.

Create and retrain check their request, then share one path (`_start_job`): receive and
check the data (or reuse the parent's), store it by digest, and queue a TrainingTask.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pyarrow as pa

from ml_service import dataset, ingest
from ml_service.core_state import CoreState
from ml_service.domain import JobRecord, JobState, VersionRecord
from ml_service.errors import FieldViolation, InvalidArgument, NotFound
from ml_service.ids import check_id, new_id
from ml_service.kinds import get_kind
from ml_service.live_jobs import JobView, LiveJob, utcnow
from ml_service.telemetry import use_case
from ml_service.training_contract import TrainingResult, TrainingTask, threads_for
from ml_service.training_requests import (
    DEFAULT_HOLDOUT,
    NewJob,
    RetrainRequest,
    TrainRequest,
    check_holdout,
    check_text,
    had_many_classes,
    resolve_resources,
)


class TrainingUseCases(CoreState):
    """Create and retrain training jobs; commit their results as versions."""

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
        resources = None
        try:
            resources = resolve_resources(request.resources, self.settings)
        except InvalidArgument as exc:
            violations.extend(exc.violations)
        if violations or resources is None:
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
            resources=resources,
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
        resources = resolve_resources(request.resources, self.settings)
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
            resources=resources,
            parent=parent,
        )
        return await self._start_job(job, chunks)

    async def _start_job(self, job: NewJob, chunks: AsyncIterator[bytes]) -> JobView:
        """Receive and check the data (or reuse the parent's), then queue the job: one path."""
        await self.jobs.check_room()
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
                feature_float=kind.feature_float,
                holdout=job.holdout,
                seed=job.seed,
                parent_version=job.parent.version if job.parent is not None else None,
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
        # Shared mode: the replica that claims the job places its files; a copy of the data
        # fetched here would be wasted on any other replica.
        placed = self.store.shared is None
        task = TrainingTask(
            kind=kind.name,
            hyperparameters=job.params,
            dataset_path=self.jobs.dataset_location(digest) if placed else "",
            target_column=job.target,
            features=features,
            holdout_fraction=job.holdout,
            seed=job.seed,
            artifact_path=self.store.scratch_path(kind.artifact_suffix) if placed else "",
            threads=threads_for(job.resources),
            resources=job.resources,
        )
        return await self.jobs.submit(record, task)

    async def _receive_dataset(
        self,
        chunks: AsyncIterator[bytes],
        check: Callable[[pa.Table], None],
        allow_empty: bool = False,
    ) -> ingest.Dataset | None:
        path = self.store.scratch_path(".arrows")
        # Reading, checking and writing the table leaves its buffers with the allocators, as
        # large predictions do: trimmed after, an adult.csv upload leaves the idle service
        # 14 MB larger instead of 19.
        with self.predictions.trimmer.working():
            try:
                size = await ingest.receive(chunks, path, self.settings.max_upload_bytes)
                self.telemetry.metrics.upload_bytes.observe(size)
                if size == 0 and allow_empty:
                    return None
                table = await asyncio.to_thread(
                    ingest.read_ipc_file,
                    path,
                    self.settings.max_upload_rows,
                    self.settings.max_upload_bytes,
                    self.settings.max_columns,
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
        # Shared mode: only while this replica still holds the job (see Store.commit_version).
        owner = None if self.store.shared is None else self._replica
        version = await asyncio.to_thread(
            self.store.commit_version,
            draft,
            task.artifact_path,
            record.name,
            record.description,
            owner,
        )
        self.predictions.forget(record.model_id)
        return version
