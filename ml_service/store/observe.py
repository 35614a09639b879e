"""How the store lets its operations be timed and traced without knowing by whom."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])
#: Given an operation's name, a context manager around the operation.
Observe = Callable[[str], AbstractContextManager[None]]


def unobserved(operation: str) -> AbstractContextManager[None]:
    """Observe nothing."""
    return contextlib.nullcontext()


class _Observable(Protocol):
    observe: Observe


def operation(fn: F) -> F:
    """Run a store method inside `self.observe(<method name>)`."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self: _Observable, *args: Any, **kwargs: Any) -> Any:
        with self.observe(name):
            return fn(self, *args, **kwargs)

    return cast(F, wrapper)
