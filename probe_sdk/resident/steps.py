"""Timing the steps of one resident sample (standard library only).

`Steps` has the `step()`/`metric()` interface of `probe_sdk.Probe`, so code
written for a periodic case (e.g. `etcd.probe_endpoint(probe, ...)`) runs a
resident sample unchanged. The first exception escaping a step carries that
step's name (`exc.step`), which becomes the sample's failing step.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional


class StepFailed(AssertionError):
    """A step that was slower than its threshold."""


class Steps:
    def __init__(self) -> None:
        self.timings: Dict[str, float] = {}
        self.metrics: Dict[str, float] = {}

    @contextmanager
    def step(self, name: str, threshold_ms: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        record: Dict[str, Any] = {"name": name}
        started = time.monotonic()
        try:
            yield record
        except BaseException as exc:
            self.timings[name] = round((time.monotonic() - started) * 1000, 3)
            if not getattr(exc, "step", None):
                exc.step = name  # type: ignore[attr-defined]
            raise
        took = round((time.monotonic() - started) * 1000, 3)
        self.timings[name] = took
        if threshold_ms is not None and took > threshold_ms:
            failure = StepFailed("took %d ms, over the %d ms threshold" % (took, threshold_ms))
            failure.step = name  # type: ignore[attr-defined]
            raise failure

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)
