"""Errors only the store raises; all are FailedPrecondition, so transports need no new row."""

from __future__ import annotations

from ml_service.errors import FailedPrecondition


class ArtifactCorrupted(FailedPrecondition):
    """A stored artifact is missing or its sha256 does not match the version's record."""


class StoreInUse(FailedPrecondition):
    """Another process already has the data directory open."""


class LeaseLost(FailedPrecondition):
    """Shared mode: the replica committing a job's version no longer holds the job's lease."""
