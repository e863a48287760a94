"""Samples and their aggregation per window, in the center's wire format."""

from __future__ import annotations

import datetime
import math
from typing import Any, Dict, List, Optional, Tuple

MAX_ERRORS = 5
MAX_ERROR_CHARS = 500  # 100 windows x 5 errors stay far under the 1 MiB limit
MAX_STEP_CHARS = 200


class Sample:
    __slots__ = ("error", "latency_ms", "ok", "step")

    def __init__(self, ok: bool, latency_ms: float, step: str = "", error: str = "") -> None:
        self.ok = ok
        self.latency_ms = latency_ms
        self.step = step
        self.error = error


def iso(seconds: float) -> str:
    """Unix seconds as the protocol's UTC time with milliseconds: 2026-12-07T10:00:00.000Z."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)  # noqa: UP017 (Python 3.8)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def percentile(ordered: List[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


class Window:
    """The samples of one window; windows follow each other without gaps."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.latencies: List[float] = []
        self.failures = 0
        self.errors: Dict[Tuple[str, str], int] = {}

    @property
    def count(self) -> int:
        return len(self.latencies)

    def add(self, sample: Sample) -> None:
        self.latencies.append(sample.latency_ms)
        if sample.ok:
            return
        self.failures += 1
        key = (sample.step[:MAX_STEP_CHARS], sample.error[:MAX_ERROR_CHARS])
        if key in self.errors or len(self.errors) < MAX_ERRORS:
            self.errors[key] = self.errors.get(key, 0) + 1

    def close(self, end: float, state: str) -> Dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "start": iso(self.start),
            "end": iso(max(end, self.start)),
            "count": self.count,
            "failures": self.failures,
            "latency_ms": {
                "p50": round(percentile(ordered, 50), 3),
                "p99": round(percentile(ordered, 99), 3),
                "max": round(ordered[-1], 3),
            },
            "state": state,
            "errors": [
                {"step": step, "error": error, "count": count}
                for (step, error), count in self.errors.items()
            ],
        }


def should_close(window: Optional[Window], now: float, length: float, changed: bool) -> bool:
    """A window closes when it is long enough, or early on a state change (so the state
    each window reports is exact); never empty, so a slow sample stretches it."""
    return window is not None and window.count > 0 and (changed or now - window.start >= length)
