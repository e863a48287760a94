"""Parsing and checking the body a probe reports (pure functions, no database)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

MAX_ERRORS = 200
MAX_STEPS = 500
MAX_METRICS = 500
MAX_NAME = 200
ALLOWED_KEYS = {"ok", "errors", "steps", "metrics"}
STEP_KEYS = {"name", "ok", "duration_ms", "error"}


class InvalidReport(Exception):
    """The body is not a valid report; `errors` maps field paths to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class Report:
    ok: bool
    errors: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def _is_number(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value) and abs(value) < 1e300
    except OverflowError:  # a 400-digit integer
        return False


def _storable(text: str) -> bool:
    """Postgres text and JSON cannot hold NUL or lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(value: Any, where: str, problems: dict[str, str], allow_empty: bool = True) -> None:
    if isinstance(value, str) and not _storable(value):
        problems[where] = "must not contain NUL characters or unpaired surrogates"
    elif isinstance(value, str) and not allow_empty and not value.strip():
        problems[where] = "must be a non-empty string"


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidReport({"body": f"not valid JSON: {exc}"}) from exc
    except RecursionError as exc:
        raise InvalidReport({"body": "JSON nested too deeply"}) from exc


def _check_errors(raw: Any, problems: dict[str, str]) -> list[str]:
    if not isinstance(raw, list):
        problems["errors"] = "must be a list of strings"
        return []
    if len(raw) > MAX_ERRORS:
        problems["errors"] = f"at most {MAX_ERRORS} messages"
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item.strip():
            problems[f"errors[{i}]"] = "must be a non-empty string"
        else:
            _check_text(item, f"errors[{i}]", problems)
    return raw


def _check_steps(raw: Any, problems: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        problems["steps"] = "must be a list of {name, ok, duration_ms, error} objects"
        return []
    if len(raw) > MAX_STEPS:
        problems["steps"] = f"at most {MAX_STEPS} steps"
    steps = []
    for i, step in enumerate(raw):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            problems[where] = "must be an object"
            continue
        unknown = set(step) - STEP_KEYS
        if unknown:
            problems[where] = f"unknown keys: {', '.join(sorted(unknown))}"
        name = step.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            problems[f"{where}.name"] = (
                f"must be a non-empty string of at most {MAX_NAME} characters"
            )
        if not isinstance(step.get("ok"), bool):
            problems[f"{where}.ok"] = "must be true or false"
        duration: Any = step.get("duration_ms")
        if not _is_number(duration) or duration < 0:
            problems[f"{where}.duration_ms"] = "must be a non-negative number"
        error = step.get("error", "")
        if not isinstance(error, str):
            problems[f"{where}.error"] = "must be a string"
        _check_text(name, f"{where}.name", problems)
        _check_text(error, f"{where}.error", problems)
        steps.append(
            {"name": name, "ok": step.get("ok"), "duration_ms": duration, "error": error or ""}
        )
    return steps


def _check_metrics(raw: Any, problems: dict[str, str]) -> dict[str, float]:
    if not isinstance(raw, dict):
        problems["metrics"] = "must be an object of name: number"
        return {}
    if len(raw) > MAX_METRICS:
        problems["metrics"] = f"at most {MAX_METRICS} metrics"
    for name, value in raw.items():
        if not _storable(name):
            problems["metrics"] = "names must not contain NUL characters or unpaired surrogates"
        elif len(name) > MAX_NAME or not name:
            problems[f"metrics.{name[:40]}"] = f"names are 1 to {MAX_NAME} characters"
        elif not _is_number(value):
            problems[f"metrics.{name}"] = "must be a finite number"
    return raw


def validate(payload: Any) -> Report:
    """A KubeProbe report: {"ok", "errors", "steps", "metrics"}."""
    if not isinstance(payload, dict):
        raise InvalidReport({"body": "must be a JSON object"})
    problems: dict[str, str] = {}
    unknown = set(payload) - ALLOWED_KEYS
    if unknown:
        problems["body"] = f"unknown keys: {', '.join(sorted(unknown))}"
    ok = payload.get("ok")
    if not isinstance(ok, bool):
        problems["ok"] = "is required and must be true or false"
    errors = _check_errors(payload.get("errors", []), problems)
    steps = _check_steps(payload.get("steps", []), problems)
    metrics = _check_metrics(payload.get("metrics", {}), problems)
    if ok is True and errors and "errors" not in problems:
        problems["errors"] = "must be empty when ok is true"
    if ok is False and not errors and "errors" not in problems:
        problems["errors"] = "must name at least one error when ok is false"
    if problems:
        raise InvalidReport(problems)
    return Report(ok=bool(ok), errors=errors, steps=steps, metrics=metrics)


def validate_kuberhealthy(payload: Any) -> Report:
    """A Kuberhealthy check report: {"OK": bool, "Errors": [str]}.

    Go's JSON decoding matches keys case-insensitively and ignores unknown
    ones, so we do the same: existing check images send "ok"/"OK" alike.
    """
    if not isinstance(payload, dict):
        raise InvalidReport({"body": "must be a JSON object"})
    folded = {str(k).lower(): v for k, v in payload.items()}
    ok = folded.get("ok", False)
    errors = folded.get("errors") or []
    if not isinstance(ok, bool):
        raise InvalidReport({"ok": "must be true or false"})
    if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
        raise InvalidReport({"errors": "must be a list of strings"})
    if ok and errors:
        raise InvalidReport({"errors": "must be empty when ok is true"})
    if not ok and not errors:
        raise InvalidReport({"errors": "must name at least one error when ok is false"})
    if any(not e for e in errors):
        raise InvalidReport({"errors": "error strings must not be blank"})
    if not all(_storable(e) for e in errors):
        raise InvalidReport({"errors": "must not contain NUL characters or unpaired surrogates"})
    return Report(ok=ok, errors=errors[:MAX_ERRORS])
