"""Errors only the store raises; each is a domain error, so transports need no new row.

ArtifactCorrupted        FailedPrecondition: a stored artifact is missing or altered
StoreInUse               FailedPrecondition: another process has the data directory
DatabaseUnavailable      Unavailable: the metadata database cannot be reached
ObjectStoreUnavailable   Unavailable: the bucket of artifacts and datasets cannot be reached
StoreRefused             Unavailable: the database or bucket answers, but refuses the settings
                         (DatabaseRefused, ObjectStoreRefused); fatal at start, not retried
LeaseLost                FailedPrecondition: the committing replica lost the job's lease
"""

from __future__ import annotations

from ml_service.errors import FailedPrecondition, Unavailable


class ArtifactCorrupted(FailedPrecondition):
    """A stored artifact is missing or its sha256 does not match the version's record."""


class StoreInUse(FailedPrecondition):
    """Another process already has the data directory open."""


class LeaseLost(FailedPrecondition):
    """Shared mode: the replica committing a job's version no longer holds the job's lease."""


class StoreUnreachable(Unavailable):
    """A shared part of the store cannot be reached; `reason` says why, for the log only."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DatabaseUnavailable(StoreUnreachable):
    """The metadata database refused or dropped the connection."""


class ObjectStoreUnavailable(StoreUnreachable):
    """The object store holding artifacts and datasets did not answer."""


class StoreRefused(StoreUnreachable):
    """A shared part of the store answers but refuses this configuration: no such database
    or bucket, a wrong user, password or key. Waiting will not mend it, so a process that
    meets it at start exits; met later (a password rotated while serving), it is an outage
    like any other."""


class DatabaseRefused(DatabaseUnavailable, StoreRefused):
    """The metadata database refused the URL's database, user or password."""


class ObjectStoreRefused(ObjectStoreUnavailable, StoreRefused):
    """The object store has no such bucket or refused the credentials."""
