"""Logging that never writes what people entered: no link token, no answer, no comment, no key.

Every ``/s/<token>`` becomes ``/s/…``. An exception is logged by its kind and where it was raised, never by
its text: a database error's text holds the statement's parameters (answers, free text) and the database's
own detail ("Failing row contains (...)"), and any exception may quote the value that upset it. The engine
also hides parameters (``hide_parameters``), so a message that escapes this filter still carries none.
"""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType
from typing import Any

_LINK = re.compile(r"/s/[^\s/?\"']+")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def redact(text: str) -> str:
    return _LINK.sub("/s/…", text)


def describe(exc: BaseException) -> str:
    """An exception's kind without its text: its class, and for a database error the driver's class and code."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's exception
    if isinstance(orig, BaseException):
        code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
        kind += f" from {type(orig).__module__}.{type(orig).__qualname__}" + (f" ({code})" if code else "")
    return kind


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and of the exceptions it came from: frames and kinds, no message, no locals."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    note = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, note))
        if current.__cause__ is not None:
            current, note = current.__cause__, "The above exception was the direct cause of the following:"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, note = current.__context__, "During handling of the above exception, another occurred:"
        else:
            current = None
    parts: list[str] = []
    for error, follows in reversed(chain):
        frames = "".join(traceback.StackSummary.extract(traceback.walk_tb(error.__traceback__)).format())
        parts.append(f"Traceback (most recent call last):\n{frames}{describe(error)} (message withheld)")
        if follows:
            parts.append(follows)
    return "\n".join(parts)


class Redact(logging.Filter):
    """Link tokens out of messages and their arguments; exceptions as their kind and frames, never their text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_safe(a) for a in args)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrubbed_traceback(record.exc_info[1])
            record.exc_info = None
        return True


def _safe(arg: Any) -> Any:
    if isinstance(arg, BaseException):
        return describe(arg)
    return redact(arg) if isinstance(arg, str) else arg


def log_to_stderr() -> None:
    """For every command but ``serve`` (which has ``log_config``): warnings and errors to stderr, redacted.

    Does nothing when logging is already set up (a test runner's capture, an embedding program).
    """
    handler = logging.StreamHandler()
    handler.addFilter(Redact())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the redaction filter on every handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "service.logs.Redact"}},
        "formatters": {
            "default": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            "access": {"format": "%(asctime)s %(levelname)s access %(message)s"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["redact"],
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "peil": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
        # Every other library's records (the scheduler's, SQLAlchemy's) through the same filter.
        "root": {"handlers": ["default"], "level": "WARNING"},
    }
