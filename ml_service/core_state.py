"""What every use case shares: the settings, telemetry, the open store and job manager,
and the predictions; calls before the store opens are told to retry."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from ml_service.config import Settings
from ml_service.errors import Unavailable
from ml_service.job_manager import JobManager
from ml_service.predictor import ModelCache, Predictions, PredictLimits
from ml_service.replicas import ReplicaSync
from ml_service.store import Store
from ml_service.telemetry import Telemetry

NOT_OPEN = "the model store is not open yet; retry shortly"


class CoreState:
    """The core's state; ModelServiceCore opens and closes it, the use cases read it."""

    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        # Without one given, metrics go to a registry of its own that nothing serves.
        self.telemetry = telemetry or Telemetry()
        self._store: Store | None = None
        self._jobs: JobManager | None = None
        self._sync: ReplicaSync | None = None
        # Names this process in the job rows it holds; unique across restarts and hosts.
        self._replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Why calls are refused until the store opens; a store that did not answer names itself.
        self._not_open = NOT_OPEN
        self.predictions = Predictions(
            ModelCache(1, self._closed), self._closed, PredictLimits(1, 1, 1)
        )

    @property
    def store(self) -> Store:
        """The open store; calls before it opens are told to retry."""
        if self._store is None:
            raise Unavailable(self._not_open)
        return self._store

    @property
    def jobs(self) -> JobManager:
        """The job manager of the open store."""
        if self._jobs is None:
            raise Unavailable(self._not_open)
        return self._jobs

    def _closed(self, *args: object) -> Any:
        raise Unavailable(self._not_open)
