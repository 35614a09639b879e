"""The id of the request being answered: in log lines, problem bodies and calls to the service."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from mlops import names
from opentelemetry import trace

HEADER = names.REQUEST_ID_KEY
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_GOOD_ID = re.compile(names.REQUEST_ID_PATTERN)


def choose(caller_id: str | None) -> str:
    """The trace id when tracing, else the caller's id if well formed, else a new one."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        return trace.format_trace_id(span_context.trace_id)
    if caller_id and _GOOD_ID.fullmatch(caller_id):
        return caller_id
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being answered ("-" outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record; add `request_id`."""
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get() or "-"
        return True
