"""Errors the client raises: one class per thing a caller may want to handle differently.

    MlopsError
    ├── ServiceError            the service answered a call with an error status
    │   ├── InvalidArgument     bad hyperparameter, schema mismatch, bad data; has .violations
    │   ├── NotFound            no such kind, model, version or job
    │   ├── Conflict            the request clashes with the current state (cancel a finished job)
    │   ├── ResourceExhausted   over a limit (queue full, upload too large); has .retry_after
    │   ├── Unauthenticated     missing or wrong token
    │   ├── Unavailable         the service cannot be reached or is not ready
    │   ├── DeadlineExceeded    no answer within the call's timeout
    │   └── InternalError       anything else; the service logged the details
    └── JobError                a training job ended without a model version; has .job
        ├── JobFailed           the job stopped with an error
        └── JobCancelled        the job was cancelled

`str(error)` is a sentence for a person: the message and then each field violation.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import TYPE_CHECKING

import grpc

from mlops_client.rich_status import RichStatus, Violation, decode

if TYPE_CHECKING:
    from mlops_client.results import Job

__all__ = [
    "Conflict",
    "DeadlineExceeded",
    "InternalError",
    "InvalidArgument",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "MlopsError",
    "NotFound",
    "ResourceExhausted",
    "ServiceError",
    "Unauthenticated",
    "Unavailable",
    "Violation",
    "from_rpc_error",
]


class MlopsError(Exception):
    """Base of every error this client raises."""


class ServiceError(MlopsError):
    """The service answered with an error status."""

    def __init__(self, message: str, code: grpc.StatusCode, rich: RichStatus | None = None) -> None:
        rich = rich or RichStatus()
        self.message = message
        self.code = code
        self.violations: tuple[Violation, ...] = rich.violations
        self.retry_after = rich.retry_after
        super().__init__(message)

    def __str__(self) -> str:
        # The service's message already joins the violations; add only what it left out. It
        # cuts a violation's description at 200 characters, marked "…", and not its message.
        extra = [str(v) for v in self.violations if str(v).removesuffix("…") not in self.message]
        return "; ".join([self.message, *extra]) if extra else self.message


class InvalidArgument(ServiceError):
    """The request or its data is invalid; `violations` names each field."""


class NotFound(ServiceError):
    """The kind, model, version or job does not exist."""


class Conflict(ServiceError):
    """The request conflicts with the current state."""


class ResourceExhausted(ServiceError):
    """Over a configured limit; `retry_after` is set when waiting helps."""


class Unauthenticated(ServiceError):
    """The token is missing or wrong."""


class Unavailable(ServiceError):
    """The service cannot be reached or is not ready."""


class DeadlineExceeded(ServiceError):
    """The call did not finish within its timeout."""


class InternalError(ServiceError):
    """The service failed in a way it does not explain to clients."""


class JobError(MlopsError):
    """A training job ended without producing a model version."""

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message)
        self.job = job


class JobFailed(JobError):
    """The training job stopped with an error."""


class JobCancelled(JobError):
    """The training job was cancelled."""


_CLASS_OF: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(error: grpc.RpcError) -> ServiceError:
    """Turn a failed gRPC call into the matching typed error."""
    call: grpc.Call = error
    code = call.code()
    rich = decode(call.trailing_metadata())
    message = call.details() or code.name.lower().replace("_", " ")
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and (size := _TOO_LARGE.search(message)):
        message = _too_large(int(size[1]), int(size[2]), sent=size[0].startswith("Sent"))
    if code is grpc.StatusCode.UNAVAILABLE:
        message = _unreachable(message)
    return _CLASS_OF.get(code, InternalError)(message, code, rich)


# gRPC's own words when a message passes a channel's limit, which no handler sees.
_TOO_LARGE = re.compile(r"(?:Sent|Received) message larger than max \((\d+) vs\. (\d+)\)")


def _too_large(size: int, limit: int, sent: bool) -> str:
    whose = "this client's" if sent else "the service's (MLOPS_MAX_MESSAGE_BYTES)"
    return (
        f"a message of {size:,} bytes is over {whose} limit of {limit:,}; send fewer rows at "
        "a time (predict_file sends a file of any size in batches that fit)"
    )


# gRPC's words when no connection is made, which name C-core's address form and its causes
# ("failed to connect to all addresses; last error: UNKNOWN: ipv6:%5B::1%5D:443: Failed to
# connect to remote host: Connection refused"); the gateway's asyncio channel said
# "connections to all backends failing" for the same causes.
_NO_CONNECTION = re.compile(
    r"(?:failed to connect to all addresses|connections to all backends failing); last error:"
    r" \w+: (?:ipv[46]:)?(\S+?): (.*)",
    re.S,
)
_NOT_RESOLVED = re.compile(
    r"(?:errors resolving|DNS resolution failed for) (\S+?):? .*?(?:lookup failed|: )", re.S
)
# How a reader of these words sets TLS up: `mlops` and the client here; the gateway its
# MLOPS_GATEWAY_GRPC_TLS* variables (rest_gateway.backend).
CLIENT_TLS = {
    "tls_off": "leave out --tls and --ca-file; tls=False in the client",
    "roots": "--ca-file, or the system's for --tls",
    "tls_on": "--tls, or --ca-file for a private CA; tls= in the client",
}
_CAUSES = (
    ("Connection refused", "nothing listens there (is the service running, on that port?)"),
    # The TLS handshake's causes, as BoringSSL names them, before its catch-all below.
    ("WRONG_VERSION_NUMBER", "the TLS handshake failed: the service does not serve TLS "
     "({tls_off})"),
    ("certificate has expired", "the TLS handshake failed: the service's certificate has "
     "expired"),
    ("certificate is not yet valid", "the TLS handshake failed: the service's certificate is "
     "not valid yet (is this machine's clock right?)"),
    ("Hostname Verification Check failed", "the TLS handshake failed: the service's "
     "certificate is not for that host name (give the host its certificate names)"),
    ("CERTIFICATE_VERIFY_FAILED", "the TLS handshake failed: the service's certificate is not "
     "signed by the roots given ({roots})"),
    ("Tls handshake failed", "the TLS handshake failed: the service may not serve TLS, or its "
     "certificate is not signed by the roots given"),
    ("security handshaker", "the TLS roots given could not be loaded"),
    # A TLS service drops a plaintext client's first bytes unanswered.
    ("Socket closed", "it closed the connection at once: the service may serve TLS only "
     "({tls_on})"),
    ("timed out", "the connection timed out"),
    ("Deadline Exceeded", "the connection timed out"),
    ("No route to host", "no route to that host"),
    ("Network is unreachable", "the network is unreachable"),
)  # fmt: skip


def why_unreachable(message: str, tls: dict[str, str] = CLIENT_TLS) -> tuple[str, str] | None:
    """The address and, in a person's words, why no connection was made, from gRPC's details;
    None when they say something else. `tls` words the TLS settings for who reads it."""
    if found := _NOT_RESOLVED.match(message):
        return found[1], "its host name is not known"
    if not (found := _NO_CONNECTION.match(message)):
        return None
    address, cause = urllib.parse.unquote(found[1]), found[2].strip()
    said = next((words.format(**tls) for mark, words in _CAUSES if mark in cause), cause)
    return address, said


def _unreachable(message: str) -> str:
    if (why := why_unreachable(message)) is None:
        return message
    return f"cannot reach the service at {why[0]}: {why[1]}"
