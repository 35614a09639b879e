"""Show what went wrong inline, in the tab it happened in, until the person's next action.

Exception
├── GatewayError (ui.client)  the gateway refused or did not answer
├── BadCSV (ui.tables)        a file that is not a readable CSV table
└── NotYet                    something the person has to do first (choose a file, a model...)

Handlers wrapped by `inline_errors(n)` have `n` outputs, the last an error area: on one of
these errors every other output is left as it is (no input is replaced by an error badge)
and the area shows the message; on success the handler returns "" there, clearing it.
"""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import gradio as gr
import pandas as pd

from ui.client import GatewayError, GatewayUnreachable
from ui.messages import explain
from ui.tables import BadCSV

F = TypeVar("F", bound=Callable[..., Any])
CLEAR = ""


class NotYet(Exception):
    """Something the person has to do before this action can run."""

    def __init__(self, message: str, title: str = "Not yet") -> None:
        self.title = title
        super().__init__(message)


def error_html(message: str, title: str, request_id: str = "") -> str:
    """An alert box with a title and the message, both shown literally, and the request id."""
    quote = (
        f' <span class="request-id">Request id: <code>{html.escape(request_id)}</code></span>'
        if request_id
        else ""
    )
    return (
        f'<div class="inline-error" role="alert"><strong>{html.escape(title)}.</strong> '
        f"{html.escape(message)}{quote}</div>"
    )


def describe(error: Exception, rows: pd.DataFrame | None = None) -> str:
    """The alert box for an error this module knows; `rows` are the rows that were sent."""
    if isinstance(error, GatewayUnreachable):
        return error_html(error.message, "Gateway not reachable")
    if isinstance(error, GatewayError):
        title = error.problem.title or "The gateway refused this"
        return error_html(explain(error.message, rows), title, error.problem.request_id)
    if isinstance(error, NotYet):
        return error_html(str(error), error.title)
    return error_html(str(error), "Unreadable file")


SHOWN = (GatewayError, BadCSV, NotYet)


def unchanged(outputs: int, message: str) -> tuple[Any, ...]:
    """Leave every output but the error area as it is, and show `message` there."""
    return (*[gr.skip() for _ in range(outputs - 1)], message)


def inline_errors(outputs: int) -> Callable[[F], F]:
    """Catch the errors a person can act on and show them in the handler's error area."""

    def wrap(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from fn(*args, **kwargs)
                except SHOWN as error:
                    yield unchanged(outputs, describe(error))

            return cast(F, generator)

        @functools.wraps(fn)
        def function(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except SHOWN as error:
                return unchanged(outputs, describe(error))

        return cast(F, function)

    return wrap
