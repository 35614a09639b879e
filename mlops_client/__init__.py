"""Python client of the mlops service: `Client("127.0.0.1:50051").predict(model, frame)`.

Names load on first use (PEP 562): `mlops` sets the process up before pyarrow and numpy
load, which importing the package alone does not do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_client.client import Client, FileSummary
    from mlops_client.errors import (
        Conflict,
        DeadlineExceeded,
        InternalError,
        InvalidArgument,
        JobCancelled,
        JobError,
        JobFailed,
        MlopsError,
        NotFound,
        ResourceExhausted,
        ServiceError,
        Unauthenticated,
        Unavailable,
        Violation,
    )
    from mlops_client.results import (
        Deleted,
        Feature,
        Hyperparameter,
        Job,
        JobState,
        Metrics,
        Model,
        ModelKind,
        ModelVersion,
        Progress,
        Signature,
    )
    from mlops_client.uploads import Resources

_HOMES = {
    "Client": "mlops_client.client",
    "Conflict": "mlops_client.errors",
    "DeadlineExceeded": "mlops_client.errors",
    "Deleted": "mlops_client.results",
    "Feature": "mlops_client.results",
    "FileSummary": "mlops_client.client",
    "Hyperparameter": "mlops_client.results",
    "InternalError": "mlops_client.errors",
    "InvalidArgument": "mlops_client.errors",
    "Job": "mlops_client.results",
    "JobCancelled": "mlops_client.errors",
    "JobError": "mlops_client.errors",
    "JobFailed": "mlops_client.errors",
    "JobState": "mlops_client.results",
    "Metrics": "mlops_client.results",
    "MlopsError": "mlops_client.errors",
    "Model": "mlops_client.results",
    "ModelKind": "mlops_client.results",
    "ModelVersion": "mlops_client.results",
    "NotFound": "mlops_client.errors",
    "Progress": "mlops_client.results",
    "ResourceExhausted": "mlops_client.errors",
    "Resources": "mlops_client.uploads",
    "ServiceError": "mlops_client.errors",
    "Signature": "mlops_client.results",
    "Unauthenticated": "mlops_client.errors",
    "Unavailable": "mlops_client.errors",
    "Violation": "mlops_client.errors",
}

__all__ = [
    "Client",
    "Conflict",
    "DeadlineExceeded",
    "Deleted",
    "Feature",
    "FileSummary",
    "Hyperparameter",
    "InternalError",
    "InvalidArgument",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobState",
    "Metrics",
    "MlopsError",
    "Model",
    "ModelKind",
    "ModelVersion",
    "NotFound",
    "Progress",
    "ResourceExhausted",
    "Resources",
    "ServiceError",
    "Signature",
    "Unauthenticated",
    "Unavailable",
    "Violation",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:  # a submodule (mlops_client.ipc), or nothing
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
