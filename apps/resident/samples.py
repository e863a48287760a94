"""Parsing a sample batch (the resident-sample protocol): pure functions, no database.

Every rejection names the field, e.g. ``windows[3].latency_ms.p99``.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apps.resident.storage import Window

MAX_WINDOWS = 100
MAX_ERRORS = 5
MAX_ERROR_CHARS = 500
MAX_BODY_BYTES = 1024 * 1024
# Windows from further ahead than this are a broken clock, not data.
FUTURE_SLACK = timedelta(hours=1)

TOP_KEYS = {"batch_id", "probe", "cluster", "dropped", "windows"}
WINDOW_KEYS = {"start", "end", "count", "failures", "latency_ms", "state", "errors"}
LATENCY_KEYS = {"p50", "p99", "max"}
LATENCY_KEYS_ORDER = ("p50", "p99", "max")
ERROR_KEYS = {"step", "error", "count"}


class SampleRejected(Exception):
    def __init__(self, status: int, detail: dict[str, Any]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _bad(field: str, message: str) -> SampleRejected:
    return SampleRejected(400, {field: [message]})


@dataclass(frozen=True)
class Batch:
    batch_id: str  # uuid hex
    probe: str
    cluster: str
    dropped: int
    windows: list[Window]


def _int(value: Any, field: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field, "Must be an integer.")
    if value < minimum:
        raise _bad(field, f"Must be at least {minimum}.")
    return value


def _string(value: Any, field: str, max_length: int = 253) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(field, "Must be a non-empty string.")
    if len(value) > max_length:
        raise _bad(field, f"Must be at most {max_length} characters.")
    return value


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(field, "Must be an ISO 8601 time with a zone, e.g. 2026-12-07T10:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(
            field, "Must be an ISO 8601 time with a zone, e.g. 2026-12-07T10:00:00Z."
        ) from None
    if parsed.tzinfo is None:
        raise _bad(field, "Must carry a time zone (e.g. a trailing Z).")
    return parsed


def _latency(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(field, "Must be a number of milliseconds or null.")
    if not math.isfinite(value) or value < 0:
        raise _bad(field, "Must be a finite number >= 0.")
    return float(value)


def _unknown(data: dict[str, Any], allowed: set[str], prefix: str) -> None:
    extra = data.keys() - allowed  # runs 3 times per window: no sorting unless refused
    if extra:
        raise _bad(prefix + sorted(extra)[0], "Unknown field.")


def _errors(value: Any, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(field, "Must be a list of {step, error, count}.")
    if len(value) > MAX_ERRORS:
        raise _bad(field, f"At most {MAX_ERRORS} distinct errors per window.")
    out = []
    for i, item in enumerate(value):
        name = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise _bad(name, "Must be an object {step, error, count}.")
        _unknown(item, ERROR_KEYS, name + ".")
        step = item.get("step", "")
        if not isinstance(step, str):
            raise _bad(name + ".step", "Must be a string.")
        error = item.get("error")
        if not isinstance(error, str):
            raise _bad(name + ".error", "Must be a string.")
        count = _int(item.get("count", 1), name + ".count", minimum=1)
        out.append({"step": step[:200], "error": error[:MAX_ERROR_CHARS], "count": count})
    return out


def _window(data: Any, i: int, now: datetime, oldest: datetime) -> Window:
    field = f"windows[{i}]"
    if not isinstance(data, dict):
        raise _bad(field, "Must be an object.")
    _unknown(data, WINDOW_KEYS, field + ".")
    for key in ("start", "end", "count", "failures", "state"):
        if key not in data:
            raise _bad(f"{field}.{key}", "This field is required.")
    start = _time(data["start"], field + ".start")
    end = _time(data["end"], field + ".end")
    if end < start:
        raise _bad(field + ".end", "Must not be before start.")
    if start > now + FUTURE_SLACK:
        raise _bad(field + ".start", "Is in the future (check the runner's clock).")
    if start < oldest:
        raise _bad(field + ".start", "Is older than the retention period.")
    count = _int(data["count"], field + ".count")
    failures = _int(data["failures"], field + ".failures")
    if failures > count:
        raise _bad(field + ".failures", "Must not exceed count.")
    latency = data.get("latency_ms") or {}
    if not isinstance(latency, dict):
        raise _bad(field + ".latency_ms", "Must be an object {p50, p99, max}.")
    _unknown(latency, LATENCY_KEYS, field + ".latency_ms.")
    p50, p99, top = (
        _latency(latency.get(k), f"{field}.latency_ms.{k}") for k in LATENCY_KEYS_ORDER
    )
    state = data["state"]
    if state not in ("up", "down"):
        raise _bad(field + ".state", 'Must be "up" or "down".')
    return Window(
        start=start,
        end=end,
        count=count,
        failures=failures,
        p50_ms=p50,
        p99_ms=p99,
        max_ms=top,
        up=state == "up",
        errors=_errors(data.get("errors"), field + ".errors"),
    )


def batch_parse(body: bytes, *, now: datetime, oldest: datetime) -> Batch:
    """The batch in a request body, or SampleRejected(400) naming the first bad field."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _bad("non_field_errors", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _bad("non_field_errors", "The body must be a JSON object.")
    _unknown(data, TOP_KEYS, "")
    for key in ("batch_id", "probe", "cluster", "windows"):
        if key not in data:
            raise _bad(key, "This field is required.")
    raw_id = data["batch_id"]
    try:
        if not isinstance(raw_id, str):
            raise ValueError
        batch_id = uuid.UUID(raw_id).hex
    except ValueError:
        raise _bad("batch_id", "Must be a UUID (hex).") from None
    windows = data["windows"]
    if not isinstance(windows, list) or not windows:
        raise _bad("windows", "Must be a non-empty list of windows.")
    if len(windows) > MAX_WINDOWS:
        raise _bad("windows", f"At most {MAX_WINDOWS} windows per batch.")
    parsed = [_window(w, i, now, oldest) for i, w in enumerate(windows)]
    for i in range(1, len(parsed)):
        if parsed[i].start < parsed[i - 1].start:
            raise _bad(f"windows[{i}].start", "Windows must be sent oldest first.")
    return Batch(
        batch_id=batch_id,
        probe=_string(data["probe"], "probe", 63),
        cluster=_string(data["cluster"], "cluster", 63),
        dropped=_int(data.get("dropped", 0), "dropped"),
        windows=parsed,
    )
