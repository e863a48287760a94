"""What every log line carries where it applies: request id, run id, cluster.

One context variable holds the fields in force (request middleware, the report
fast path, Celery tasks, dispatch and the reaper set them with `log_context`);
`ContextFilter`, on the console handler, copies them onto each record, and
both formats print them: JSON lines as keys (KUBEPROBE_LOG_FORMAT=json), plain
lines as a `[request_id=… run_id=… cluster=…]` suffix. Fields not in force are
left out rather than printed empty.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FIELDS = ("request_id", "run_id", "cluster")

_context: ContextVar[dict[str, Any] | None] = ContextVar("kubeprobe_log_context", default=None)

# A client's X-Request-ID is kept when it looks like an id (no spaces or
# control characters to forge log lines with), else a new one is made.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(header: str | None) -> str:
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return os.urandom(8).hex()


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (request_id, run_id, cluster) to every log line inside the block."""
    current = _context.get()
    token = _context.set({**current, **fields} if current else fields)
    try:
        yield
    finally:
        _context.reset(token)


def log_fields() -> dict[str, Any]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the fields in force onto the record (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        if fields:
            for name, value in fields.items():
                if value is not None and not hasattr(record, name):
                    setattr(record, name, value)
        return True


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)
        )
        return f"{line} [{context}]" if context else line


class JsonLinesFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, the context fields,
    any `extra`, and the traceback under exc_info."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__(["asctime", "levelname", "name", "message"], *args, **kwargs)
