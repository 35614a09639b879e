"""One channel to the service, with bearer tokens and retries only where a retry is safe."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from mlops_client.credentials import certificates, token_to_send
from mlops_client.errors import from_rpc_error

T = TypeVar("T")
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def open_channel(target: str, tls: bool | str | Path | grpc.ChannelCredentials) -> grpc.Channel:
    """Open an insecure channel, or a TLS one (system roots, a CA file or given credentials)."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if tls is False:
        return grpc.insecure_channel(target, options=options)
    if isinstance(tls, grpc.ChannelCredentials):
        credentials = tls
    elif tls is True:
        credentials = grpc.ssl_channel_credentials()
    else:
        credentials = grpc.ssl_channel_credentials(certificates(tls, "tls"))
    return grpc.secure_channel(target, credentials, options=options)


class Caller:
    """Make calls with the token and a timeout, retrying UNAVAILABLE with jittered backoff."""

    def __init__(self, token: str | None, timeout: float, retries: int, backoff: float) -> None:
        token = token_to_send(token, "token") if token else None
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def pause(self, attempt: int) -> None:
        """Sleep before retry number `attempt` (0-based): exponential, jittered, capped."""
        time.sleep(min(self.backoff * 2**attempt, 5.0) * random.uniform(0.5, 1.0))

    def unary(
        self,
        method: Callable[..., T],
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None = None,
    ) -> T:
        """Call a unary method; retry only idempotent reads, and only on UNAVAILABLE."""
        attempt = 0
        while True:
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
            except grpc.RpcError as exc:
                if not (idempotent and _unavailable(exc) and attempt < self.retries):
                    raise from_rpc_error(exc) from None
            self.pause(attempt)
            attempt += 1

    def upload(
        self, method: Callable[..., Any], messages: Callable[[], Iterator[Any]], timeout: float
    ) -> Any:
        """Stream an upload; retry on UNAVAILABLE only while the server cannot have accepted it.

        The service creates a job only after the client half-closes the stream, which happens
        once the request iterator is exhausted; until then a failed attempt created nothing.
        """
        attempt = 0
        while True:
            finished = False
            unreadable: Exception | None = None

            def tracked() -> Iterator[Any]:
                nonlocal finished, unreadable
                try:
                    yield from messages()
                except Exception as error:
                    # grpc cancels the call (nothing is created) and reports only "Exception
                    # iterating requests!": the caller is told what went wrong instead.
                    unreadable = error
                    raise
                finished = True

            try:
                return method(tracked(), timeout=timeout, metadata=self.metadata)
            except grpc.RpcError as exc:
                if unreadable is not None:
                    raise unreadable from None
                if finished or not _unavailable(exc) or attempt >= self.retries:
                    raise from_rpc_error(exc) from None
            self.pause(attempt)
            attempt += 1

    def server_stream(
        self, method: Callable[..., Iterator[T]], request: Any, timeout: float | None
    ) -> Iterator[T]:
        """Read a server stream of an idempotent read, reopening it on UNAVAILABLE."""
        attempt = 0
        while True:
            try:
                for answer in method(request, timeout=timeout, metadata=self.metadata):
                    attempt = 0
                    yield answer
                return
            except grpc.RpcError as exc:
                if not _unavailable(exc) or attempt >= self.retries:
                    raise from_rpc_error(exc) from None
            self.pause(attempt)
            attempt += 1

    def bidi(
        self, method: Callable[..., Iterator[T]], requests: Iterator[Any], timeout: float | None
    ) -> Iterator[T]:
        """Run a bidirectional stream once; its input cannot be replayed, so no retry."""
        try:
            yield from method(requests, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None


def _unavailable(exc: grpc.RpcError) -> bool:
    return exc.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[no-any-return]
