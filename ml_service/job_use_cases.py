"""Job use cases: look at, list, cancel and watch training jobs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

from ml_service.core_state import CoreState
from ml_service.domain import JobState
from ml_service.errors import NotFound
from ml_service.ids import check_id
from ml_service.live_jobs import JobView
from ml_service.telemetry import use_case


class JobUseCases(CoreState):
    """Training jobs as clients see them: live progress, and the version a success made."""

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
