"""Logging for every command: readable text lines by default, one JSON object per line with
LOG_FORMAT=json (python-json-logger), for a collector to index.

A JSON line always has `time` (ISO 8601, UTC), `level`, `logger`, `message` and `pid`, the
request id of the request it was written in when there is one, and whatever fields the line
carries: the access log line per request (skillswap.http.metrics.log_request) adds `route`,
`method`, `path`, `status`, `duration_ms`, `user_id` and `client`. A traceback is the
`exc_info` field of its line, so a line stays a line.

Nothing here decides what is logged; what must never be (tokens, passwords, codes) is kept out
where lines are written: credentials in query strings are blanked in the access log, mails are
logged with their bodies only on the embedded default's console mailer.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from skillswap.settings import LOG_FORMATS, ConfigError, Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"
JSON_NAMES = {"levelname": "level", "name": "logger", "process": "pid"}


class RequestIdFilter(logging.Filter):
    """Give a line written while a request is served that request's id (unless it has one)."""

    def __init__(self, request_id: ContextVar[str | None]) -> None:
        super().__init__()
        self.request_id = request_id

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            current = self.request_id.get()
            if current is not None:
                record.request_id = current
        return True


def configure_logging(settings: Settings) -> None:
    """Send every logger's lines to stderr, as LOG_FORMAT says, at LOG_LEVEL."""
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of: {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        from skillswap.admin.audit import REQUEST_ID  # the id `prepare` sets for each request

        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields=JSON_NAMES,
                timestamp="time",
                json_ensure_ascii=False,
            )
        )
        handler.addFilter(RequestIdFilter(REQUEST_ID))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # At DEBUG aiosqlite logs every statement with its parameters: whatever is written (a
    # webhook's signature, a code's digest) would be in the log. Its INFO and above stay.
    logging.getLogger("aiosqlite").setLevel(max(root.level, logging.INFO))


def announce(settings: Settings, message: str) -> None:
    """A process's start-up line: printed for a person reading text, a log line in JSON (so
    that a collector reading the output finds nothing but JSON)."""
    if settings.log_format == "json":
        logging.getLogger("skillswap").info(message)
    else:
        print(message, flush=True)
