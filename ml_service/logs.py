"""Logging set-up: one JSON object per line, with any `extra` fields as keys.

Every line logged while a request is handled carries its id (`request_id`), taken from a
context variable the per-RPC wrapper sets, so one grep finds all lines of one request.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as a JSON line: time, level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Underscored attributes are other libraries' bookkeeping, not extras (Ray's record
        # factory adds _ray_timestamp_ns to every record once the Ray executor imports it).
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        line.update({k: v for k, v in extras.items() if not k.startswith("_")})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class RequestIdFilter(logging.Filter):
    """Add the id of the request being handled, if any, to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record; stamp it with the request id."""
        request_id = REQUEST_ID.get()
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with the request id at the end of lines about a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, then name its request."""
        text = super().format(record)
        request_id = getattr(record, "request_id", "")
        return f"{text} request_id={request_id}" if request_id else text


def configure(level: str, as_json: bool) -> None:
    """Send the service's logs to stderr at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
