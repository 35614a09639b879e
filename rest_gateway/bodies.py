"""Request bodies by Content-Type: JSON, multipart CSV, raw CSV or Arrow IPC, and the byte cap."""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import Headers, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_gateway import inputs, tabular
from rest_gateway.config import GatewaySettings
from rest_gateway.problems import ProblemError, problem_response

JSON = "application/json"
MULTIPART = "multipart/form-data"
CSV = "text/csv"
SPOOL_BYTES = 1024 * 1024
# Windows tools (PowerShell's Out-File, Notepad) begin UTF-8 text with one; RFC 8259 lets a
# reader ignore it, and JSON parsers that do not take it call the whole body invalid.
UTF8_BOM = b"\xef\xbb\xbf"
S = TypeVar("S", bound=BaseModel)
#: Content-Encodings a request body may come in (curl --compressed, tritonclient's
#: request_compression_algorithm), and the zlib window bits that read each.
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def media_type(request: Request) -> str:
    """Return the request's media type without parameters, lower-cased ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def unsupported(request: Request, accepted: tuple[str, ...]) -> ProblemError:
    """Build the 415 for a body in a media type the route does not take."""
    given = media_type(request) or "no Content-Type"
    return ProblemError(
        415, f"Content-Type {given} is not accepted here; use {', '.join(accepted)}."
    )


@dataclass
class Upload(Generic[S]):
    """A training spec and, when given, the training data as consecutive IPC pieces."""

    spec: S
    pieces: AsyncIterator[bytes] | None


def _once_each(items: list[tuple[str, Any]]) -> dict[str, Any]:
    # A dict keeps the last of a field given twice (`-F kind=a -F kind=b`, `?kind=a&kind=b`):
    # the job would train on one the caller may not have meant, without a word.
    fields: dict[str, Any] = {}
    for key, value in items:
        if key in fields:
            raise ProblemError.invalid(key, "is given more than once; give it once")
        fields[key] = value
    return fields


def _query_fields(request: Request, reserved: tuple[str, ...]) -> dict[str, str]:
    return _once_each([(k, v) for k, v in request.query_params.multi_items() if k not in reserved])


def _no_query_spec(request: Request, reserved: tuple[str, ...]) -> None:
    for key in _query_fields(request, reserved):
        raise ProblemError.invalid(key, "belongs in the request body with this Content-Type")


async def _arrow_pieces(request: Request, chunk_bytes: int) -> AsyncIterator[bytes]:
    pending = bytearray()
    total = 0
    async for chunk in request.stream():
        pending += chunk
        total += len(chunk)
        while len(pending) >= chunk_bytes:
            yield bytes(pending[:chunk_bytes])
            del pending[:chunk_bytes]
    if total == 0:
        raise ProblemError.invalid("body", "the Arrow IPC stream is empty")
    if pending:
        yield bytes(pending)


async def primed(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Produce the first piece now, so a bad header or first block is a 400 before any call."""
    first = await anext(pieces, None)

    async def replay() -> AsyncIterator[bytes]:
        if first is not None:
            yield first
        async for piece in pieces:
            yield piece

    return replay()


async def _ipc_pieces(data: bytes, chunk_bytes: int) -> AsyncIterator[bytes]:
    for piece in tabular.split(data, chunk_bytes):
        yield piece


async def capped_body(request: Request, max_bytes: int, too_large: ProblemError) -> bytes:
    """Read a body as it arrives (and inflates), refused with `too_large` past `max_bytes`."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def json_body(request: Request, max_bytes: int) -> bytes:
    """Read a JSON body, refusing more than `max_bytes`: JSON rows become Python objects."""
    too_large = ProblemError(
        413,
        f"JSON bodies are limited to {max_bytes} bytes; send larger tables as CSV or Arrow IPC.",
    )
    return (await capped_body(request, max_bytes, too_large)).removeprefix(UTF8_BOM)


async def message_body(request: Request, max_bytes: int) -> bytes:
    """Read an Arrow body sent on as one gRPC message, refusing more than `max_bytes`.

    300 kB of gzip used to inflate to 300 MB before gRPC refused the message.
    """
    too_large = ProblemError(
        413,
        f"An Arrow IPC body to predict goes to the service as one gRPC message: it is limited"
        f" to {max_bytes} bytes (MLOPS_GATEWAY_MAX_MESSAGE_BYTES); send more rows as CSV, which"
        " is predicted in batches.",
    )
    return await capped_body(request, max_bytes, too_large)


@contextmanager
def spool() -> Iterator[IO[bytes]]:
    """Open a temporary file that stays in memory up to 1 MiB."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as file:
        yield file


async def spool_body(request: Request, file: IO[bytes]) -> None:
    """Copy the request body into a (spooled) file and rewind it."""
    async for chunk in request.stream():
        file.write(chunk)
    if file.tell() == 0:
        raise ProblemError.invalid("body", "the CSV body is empty")
    file.seek(0)


@asynccontextmanager
async def training_upload(
    request: Request,
    settings: GatewaySettings,
    spec_model: type[S],
    body_model: type[BaseModel],
    *,
    data_required: bool,
    reserved: tuple[str, ...] = ("wait",),
) -> AsyncIterator[Upload[S]]:
    """Read a training upload in any accepted form; the pieces stream while the context is open."""
    kind = media_type(request)
    block, chunk, columns = settings.csv_block_bytes, settings.chunk_bytes, settings.max_columns
    if kind == JSON or kind.endswith("+json"):
        _no_query_spec(request, reserved)
        body = inputs.parse_json(body_model, await json_body(request, settings.max_json_bytes))
        fields = body.model_dump(exclude={"rows"}, exclude_unset=True)
        rows: list[dict[str, Any]] | None = getattr(body, "rows", None)
        pieces = (
            _ipc_pieces(tabular.rows_to_ipc(rows, settings.max_columns), chunk) if rows else None
        )
        yield Upload(spec_model.model_validate(fields), pieces)
    elif kind == MULTIPART:
        _no_query_spec(request, reserved)
        async with request.form(max_files=1, max_fields=16) as form:
            file = form.get("file")
            fields = _once_each([(k, v) for k, v in form.multi_items() if k != "file"])
            if file is not None and not isinstance(file, UploadFile):
                raise ProblemError.invalid("file", "must be a file part")
            if any(not isinstance(v, str) for v in fields.values()):
                raise ProblemError.invalid("file", "only the field named file may be a file")
            if file is None and data_required:
                raise ProblemError.invalid("file", "a CSV file is required")
            spec = inputs.parse_fields(spec_model, fields)
            pieces = None
            if file is not None:
                pieces = await primed(tabular.csv_to_ipc_pieces(file.file, block, chunk, columns))
            yield Upload(spec, pieces)
    elif kind == CSV:
        spec = inputs.parse_fields(spec_model, _query_fields(request, reserved))
        with spool() as spooled:
            await spool_body(request, spooled)
            yield Upload(
                spec, await primed(tabular.csv_to_ipc_pieces(spooled, block, chunk, columns))
            )
    elif kind == tabular.ARROW_STREAM:
        spec = inputs.parse_fields(spec_model, _query_fields(request, reserved))
        yield Upload(spec, await primed(_arrow_pieces(request, chunk)))
    elif not kind and not data_required and not await request.body():
        yield Upload(inputs.parse_fields(spec_model, _query_fields(request, reserved)), None)
    else:
        raise unsupported(request, (JSON, MULTIPART, CSV, tabular.ARROW_STREAM))


class BodyLimitMiddleware:
    """Refuse request bodies over the cap with 413, before or while they are read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ProblemError:
        return ProblemError(413, f"The request body is larger than {self.max_bytes} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check Content-Length up front and count the bytes of chunked bodies as they arrive."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await problem_response(request, self._too_large())(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)


class ContentDecodingMiddleware:
    """Inflate request bodies sent with Content-Encoding gzip or deflate, as they stream.

    Routes read the plain body whatever its media type; the inflated bytes are capped as the
    body itself is, since a few kilobytes can inflate to gigabytes.
    """

    PREFIXES = ("/v1/", "/v2/")
    PIECE_BYTES = 1024 * 1024

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass bodies without an encoding on; inflate gzip and deflate; 415 for the rest."""
        if scope["type"] != "http" or not scope["path"].startswith(self.PREFIXES):
            await self.app(scope, receive, send)
            return
        encoding = Headers(scope=scope).get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            await self.app(scope, receive, send)
            return
        wbits = ENCODINGS.get(encoding)
        if wbits is None:
            refused = ProblemError(
                415, f"Content-Encoding {encoding} is not accepted here; use gzip, deflate or none."
            )
            await problem_response(Request(scope), refused)(scope, receive, send)
            return
        # The route sees the body as if it had been sent plain.
        dropped = (b"content-encoding", b"content-length")
        plain_scope = {**scope, "headers": [h for h in scope["headers"] if h[0] not in dropped]}
        await self.app(plain_scope, self._inflating(receive, encoding, wbits), send)

    def _inflating(self, receive: Receive, encoding: str, wbits: int) -> Receive:
        reader = zlib.decompressobj(wbits)
        pending, ended, inflated = b"", False, 0

        async def inflating_receive() -> Message:
            nonlocal pending, ended, inflated
            while True:
                if ended and not pending:
                    return await receive()  # only a disconnect is left to hear
                if not pending and not ended:
                    message = await receive()
                    if message["type"] != "http.request":
                        return message
                    pending = message.get("body", b"")
                    ended = not message.get("more_body", False)
                try:
                    plain = reader.decompress(pending, self.PIECE_BYTES)
                except zlib.error:
                    raise ProblemError.invalid(
                        "body", f"the body is not {encoding} data, as its Content-Encoding says"
                    ) from None
                pending = reader.unconsumed_tail
                inflated += len(plain)
                if inflated > self.max_bytes:
                    raise ProblemError(
                        413,
                        f"The request body is larger than {self.max_bytes} bytes once"
                        " decompressed.",
                    )
                last = ended and not pending
                if last and not reader.eof:
                    raise ProblemError.invalid("body", f"the {encoding} body is cut short")
                if plain or last:
                    return {"type": "http.request", "body": plain, "more_body": not last}

        return inflating_receive
