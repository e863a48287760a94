"""What every log line carries where it applies: request id, run id, cluster.

One context variable holds the fields in force: a request (middleware, the
report fast path) or a Celery task begins afresh, and the code that learns a
run or cluster adds it (`log_context_update`, or `log_context` for a block);
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
from contextvars import ContextVar, Token
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


def log_context_begin(**fields: Any) -> None:
    """Start a request with these fields only. The middleware does not reset them
    when the chain returns, so the lines Django logs after it ("Not Found: …")
    still carry the request's id; `log_context_end` (request_finished) does."""
    _context.set(fields)


def log_context_end(**_: Any) -> None:
    """Django's request_finished receiver: the thread's next lines are no request's."""
    _context.set(None)


def log_context_update(**fields: Any) -> None:
    """Add fields until the enclosing `log_context` block (or task) ends."""
    current = _context.get()
    _context.set({**current, **fields} if current else fields)


# Celery task id → the context before it began.
_task_tokens: dict[str, Token[dict[str, Any] | None]] = {}


def task_context_begin(task_id: str = "", **_: Any) -> None:
    """Celery task_prerun receiver: each task starts without the last one's fields
    (a worker process runs task after task in one context)."""
    _task_tokens[task_id] = _context.set({})


def task_context_end(task_id: str = "", **_: Any) -> None:
    """Celery task_postrun receiver: back to the caller's fields (a task run eagerly,
    inside a request, gives the request its fields back)."""
    token = _task_tokens.pop(task_id, None)
    if token is not None:
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
