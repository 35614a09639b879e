"""Domain errors: what went wrong, in words for the user, with no transport in sight.

    ServiceError
    ├── InvalidArgument      bad request data; carries one FieldViolation per problem
    ├── NotFound             no such kind, model, version or job
    ├── FailedPrecondition   the request conflicts with the current state
    ├── ResourceExhausted    over a configured limit (queue, size, rows)
    │   └── NoSpace          the disk or quota is full, so a write failed (ENOSPC, EDQUOT)
    ├── Unavailable          the service cannot answer yet (store still opening)
    └── Unauthenticated      missing or wrong credentials

Each transport maps these with one table (ml_service.grpc.errors for gRPC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one field of a request."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request or its data is invalid."""

    def __init__(self, message: str, violations: Iterable[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.violations = tuple(violations)

    @classmethod
    def of(cls, violations: Iterable[FieldViolation]) -> InvalidArgument:
        """Build one error from several violations, its message joining their descriptions."""
        items = tuple(violations)
        message = "; ".join(f"{v.field}: {v.description}" for v in items) or "invalid argument"
        return cls(message, items)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """Build an error with a single violation."""
        return cls.of([FieldViolation(field, description)])


class NotFound(ServiceError):
    """The named kind, model, version or job does not exist."""


class FailedPrecondition(ServiceError):
    """The request conflicts with the current state, e.g. cancelling a finished job."""


class ResourceExhausted(ServiceError):
    """A configured limit was reached: queue length, message size, rows or bytes."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        # Set when waiting helps (a full queue), unset when the request itself is too big.
        self.retry_after_seconds = retry_after_seconds


class NoSpace(ResourceExhausted):
    """Storage ran out while writing; nothing half written is left behind."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no space left for {what}")
        self.what = what


class Unavailable(ServiceError):
    """The service cannot answer right now; retrying later may succeed."""


class Unauthenticated(ServiceError):
    """The caller gave no valid credentials."""
