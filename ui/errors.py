"""Turn what went wrong into a message for the person: gateway problems and unreadable files."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import gradio as gr

from ui.client import GatewayError, GatewayUnreachable
from ui.tables import BadCSV

F = TypeVar("F", bound=Callable[..., Any])


def _shown(error: Exception) -> gr.Error:
    if isinstance(error, GatewayUnreachable):
        return gr.Error(error.message, title="Gateway not reachable", print_exception=False)
    if isinstance(error, GatewayError):
        title = error.problem.title or "The gateway refused this"
        return gr.Error(error.message, title=title, print_exception=False)
    return gr.Error(str(error), title="Unreadable file", print_exception=False)


def shows_errors(fn: F) -> F:
    """Show gateway problems and bad files as a plain-words error box instead of a traceback."""
    shown = (GatewayError, BadCSV)
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except shown as error:
                raise _shown(error) from None

        return cast(F, generator)

    @functools.wraps(fn)
    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except shown as error:
            raise _shown(error) from None

    return cast(F, function)


def fail(message: str, title: str = "Not yet") -> gr.Error:
    """Build the error for something the person has to do first (choose a file, a model...)."""
    return gr.Error(message, title=title, print_exception=False)
