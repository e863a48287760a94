"""Executors launch a case somewhere and report on it: one module per kind.

Each module in this package registers its class with ``@register``; the
registry is filled by importing every module here, so adding an executor means
adding one module and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from apps.runs.executors.base import (
    Executor,
    ExecutorError,
    LaunchSpec,
    RunStatus,
    TransientExecutorError,
    registry,
)

__all__ = [
    "Executor",
    "ExecutorError",
    "LaunchSpec",
    "RunStatus",
    "TransientExecutorError",
    "get_executor",
]


@cache
def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def get_executor(name: str) -> Executor:
    _load_all()
    try:
        return registry[name]
    except KeyError:
        raise ExecutorError(
            f"No executor named '{name}' (known: {', '.join(sorted(registry))})."
        ) from None
