"""Rules the three parts' settings share: the log levels they take, and how a bad one is told.

Each part is started by an operator from a manifest, where a traceback or a field name
(`port`) says less than the variable to correct (`MLOPS_GATEWAY_PORT`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

from pydantic import AfterValidator, ValidationError

# The levels both Python's logging and uvicorn know; uvicorn has no WARN, FATAL or NOTSET.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"should be one of {', '.join(LOG_LEVELS)}")
    return level


LogLevel = Annotated[str, AfterValidator(_log_level)]
"""A logging level's name in any case, kept in capitals."""


def settings_problems(error: ValidationError, prefix: str, flags: Collection[str] = ()) -> str:
    """Say what is wrong with the settings in one line, each problem under the variable that
    set it (or the command-line flag, for a field in `flags`), without pydantic's links.

    Values are never repeated: a bad one may be a token or a URL with a password.
    """
    problems = []
    for e in error.errors():
        message = e["msg"].removeprefix("Value error, ")
        if e["loc"]:
            field = str(e["loc"][0])
            name = f"--{field.replace('_', '-')}" if field in flags else prefix + field.upper()
            if name not in message:
                message = f"{name}: {message}"
        problems.append(message)
    return "; ".join(problems)
