"""Prometheus metrics: the `/metrics` exposition and the registry of scrape-time collectors.

Two kinds of metrics end up in one scrape:

* **Process metrics** (counters and histograms such as report ingestion, kept by
  the process that serves the request). Under gunicorn every worker process
  writes them to files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
  multiprocess mode) and whichever process answers the scrape sums them.
* **State metrics** read from the database and Redis at scrape time by
  collectors that each app registers in its ``AppConfig.ready()`` with
  ``collector_register`` (one or two queries each, never a gauge per request),
  so any web process answers with the same numbers, and apps stay below core's
  registry in the layering.

Which series exist and how many is documented in docs/operating.md ("Metrics").
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exposition(str):
    """Ready-made exposition text of whole metric families, which a collector may
    yield instead of Metric objects: for the per-pair families (hundreds of
    thousands of series), prometheus_client's per-sample objects and formatting
    took seconds. Label values must be escaped with `label_value`."""


def label_value(value: str) -> str:
    """A label value escaped as the text format wants it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family_header(name: str, help_text: str, kind: str = "gauge") -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


class Collector(Protocol):
    def collect(self) -> Iterable[Metric | Exposition]: ...


# name → collector; a name registers once however often ready() runs (tests).
_collectors: dict[str, Collector] = {}


def collector_register(*, name: str, collector: Collector) -> None:
    """Add a scrape-time collector under a short name (shown in the collector timings)."""
    _collectors[name] = collector


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Scrape:
    """One scrape: process metrics, then every registered collector, each timed.

    A collector that fails is left out and counted, so a broken query cannot
    take the process metrics (or the others) down with it.
    """

    def __init__(self, process: CollectorRegistry) -> None:
        self.process = process
        self.texts: list[Exposition] = []  # appended after the Metric families

    def collect(self) -> Iterator[Metric]:
        yield from self.process.collect()
        timings = GaugeMetricFamily(
            "kubeprobe_metrics_collector_duration_seconds",
            "Time this scrape spent in each state collector.",
            labels=["collector"],
        )
        failed = GaugeMetricFamily(
            "kubeprobe_metrics_collector_failed",
            "1 when the collector failed in this scrape (its metrics are missing).",
            labels=["collector"],
        )
        for name, collector in _collectors.items():
            started = time.perf_counter()
            try:
                # Materialised, so a failure half way leaves nothing half written.
                metrics = list(collector.collect())
            except Exception:
                logger.exception("metrics collector %s failed", name)
                metrics = []
                failed.add_metric([name], 1)
            else:
                failed.add_metric([name], 0)
            timings.add_metric([name], time.perf_counter() - started)
            for metric in metrics:
                if isinstance(metric, Exposition):
                    self.texts.append(metric)
                else:
                    yield metric
        yield timings
        yield failed


def _process_registry() -> CollectorRegistry:
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def metrics_exposition() -> bytes:
    """The text a scrape gets (Prometheus text format 0.0.4)."""
    scrape = _Scrape(_process_registry())
    text = generate_latest(scrape)  # type: ignore[arg-type]
    return text + "".join(scrape.texts).encode()


def metrics_authorized(authorization: str) -> bool:
    """Whether a request may scrape: always when no token is set (the network
    policy is then the guard), else only with `Authorization: Bearer <token>`."""
    token = settings.KUBEPROBE_METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)
