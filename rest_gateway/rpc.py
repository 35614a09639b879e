"""Client-streaming calls: write while the service may already have answered, keep its status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar, cast

import grpc

T = TypeVar("T")
CORE_INTERNAL = "Internal error from Core"


def _settled(coroutine: Coroutine[Any, Any, T]) -> T:
    # Run a coroutine that cannot suspend (a finished call's status getter) to its result.
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    coroutine.close()
    raise RuntimeError("the call's status was not settled")


def _snapshot(call: Any) -> grpc.aio.AioRpcError:
    """Capture a finished call's status as an error."""
    return grpc.aio.AioRpcError(
        _settled(call.code()),
        _settled(call.initial_metadata()),
        _settled(call.trailing_metadata()),
        _settled(call.details()),
    )


class StatusKeeper:
    """Remember the first status a call ends with.

    grpc.aio replaces the service's status with INTERNAL "Internal error from Core" when a
    write races the service's early answer (a bad spec, an unknown model); the status the
    call first ended with is the service's own.
    """

    def __init__(self, call: Any) -> None:
        self._first: list[grpc.aio.AioRpcError] = []
        call.add_done_callback(lambda done: self._first.append(_snapshot(done)))

    def real(self, error: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
        """Return the service's status in place of grpc.aio's stand-in."""
        if error.details() == CORE_INTERNAL and self._first:
            return self._first[0]
        return error


async def write_all(call: Any, messages: AsyncIterator[Any]) -> None:
    """Write every message and half-close; stop quietly once the service has answered."""
    try:
        async for message in messages:
            await call.write(message)
        await call.done_writing()
    except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
        pass  # The call is over; reading or awaiting it tells why.
