"""Decode the rich status (google.rpc.Status) a failed call carries in its trailers.

The three messages are declared here in a private descriptor pool, so the client needs only
protobuf and never clashes with another copy of google.rpc loaded in the same process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import any_pb2, descriptor_pool, duration_pb2
from google.protobuf.message_factory import GetMessageClass

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

DETAILS_KEY = "grpc-status-details-bin"
_BAD_REQUEST = "google.rpc.BadRequest"
_RETRY_INFO = "google.rpc.RetryInfo"


def _file() -> descriptor_pb2.FileDescriptorProto:
    # Imported here: descriptor_pb2 takes ~35 ms to import, a twentieth of the command line's
    # start, and only a failed call needs these messages.
    from google.protobuf import descriptor_pb2

    f = descriptor_pb2.FileDescriptorProto(
        name="mlops_client/google_rpc.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto", "google/protobuf/duration.proto"],
    )
    opt, rep = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, 3
    t = descriptor_pb2.FieldDescriptorProto
    status = f.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=t.TYPE_INT32, label=opt)
    status.field.add(name="message", number=2, type=t.TYPE_STRING, label=opt)
    status.field.add(
        name="details", number=3, type=t.TYPE_MESSAGE, label=rep, type_name=".google.protobuf.Any"
    )
    bad = f.message_type.add(name="BadRequest")
    violation = bad.nested_type.add(name="FieldViolation")
    violation.field.add(name="field", number=1, type=t.TYPE_STRING, label=opt)
    violation.field.add(name="description", number=2, type=t.TYPE_STRING, label=opt)
    bad.field.add(
        name="field_violations",
        number=1,
        type=t.TYPE_MESSAGE,
        label=rep,
        type_name=".google.rpc.BadRequest.FieldViolation",
    )
    retry = f.message_type.add(name="RetryInfo")
    retry.field.add(
        name="retry_delay",
        number=1,
        type=t.TYPE_MESSAGE,
        label=opt,
        type_name=".google.protobuf.Duration",
    )
    return f


@functools.cache
def _messages() -> tuple[Any, Any, Any]:
    """The Status, BadRequest and RetryInfo classes, declared once, on first use."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (any_pb2, duration_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    pool.Add(_file())
    status, bad_request, retry_info = (
        GetMessageClass(pool.FindMessageTypeByName(name))
        for name in ("google.rpc.Status", _BAD_REQUEST, _RETRY_INFO)
    )
    return status, bad_request, retry_info


@dataclass(frozen=True)
class Violation:
    """One problem with one field of a request, as the service named it."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


@dataclass(frozen=True)
class RichStatus:
    """What the trailers said beyond the code and message."""

    violations: tuple[Violation, ...] = ()
    retry_after: float | None = None


def decode(trailers: Iterable[tuple[str, Any]] | None) -> RichStatus:
    """Read field violations and retry delay from a call's trailing metadata."""
    raw = next((v for k, v in (trailers or ()) if k == DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return RichStatus()
    status_type, bad_request_type, retry_info_type = _messages()
    try:
        status = status_type.FromString(raw)
    except Exception:  # a malformed trailer must not hide the error it came with
        return RichStatus()
    violations: list[Violation] = []
    retry_after = None
    for detail in status.details:
        name = detail.type_url.rsplit("/", 1)[-1]
        if name == _BAD_REQUEST:
            bad = bad_request_type.FromString(detail.value)
            violations += [Violation(v.field, v.description) for v in bad.field_violations]
        elif name == _RETRY_INFO:
            delay = retry_info_type.FromString(detail.value).retry_delay
            retry_after = delay.seconds + delay.nanos / 1e9
    return RichStatus(tuple(violations), retry_after)
