"""Reading a case's configuration from env vars, with errors that name the variable."""

from __future__ import annotations

import os
from typing import List, Optional


class ConfigError(ValueError):
    """A case's env var is missing or malformed."""


def text(name: str, default: Optional[str] = None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError("%s is required" % name)
    return default


def number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError("%s must be a number, got %r" % (name, raw)) from None


def items(name: str, default: str = "") -> List[str]:
    """A comma-separated list."""
    return [part.strip() for part in text(name, default).split(",") if part.strip()]


def flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError("%s must be true or false, got %r" % (name, raw))
