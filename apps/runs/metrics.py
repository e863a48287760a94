"""Metrics of the run loop: report ingestion (process metrics) and runs by state
and trigger (read at scrape time; registered by RunsConfig)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.runs.models import ProbeRun, RunState

ACTIVE_STATES = [RunState.PENDING, RunState.DISPATCHED, RunState.RUNNING]

# Reports answered, by protocol (kubeprobe, kuberhealthy) and HTTP status: a
# dozen series per process at most.
REPORTS = Counter(
    "kubeprobe_reports",
    "Reports answered by this portal, by protocol and HTTP status.",
    ["protocol", "code"],
)
# Up to the report's group-commit wait (30 s).
REPORT_SECONDS = Histogram(
    "kubeprobe_report_duration_seconds",
    "Time to answer a report (reading, checking and storing it), by protocol.",
    ["protocol"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# .labels() costs more than the observation itself: children are looked up once.
_counted: dict[tuple[str, int], Counter] = {}
_timed = {protocol: REPORT_SECONDS.labels(protocol) for protocol in ("kubeprobe", "kuberhealthy")}


def report_observe(protocol: str, status: int, started: float) -> None:
    """Count one answered report and its time since `started` (time.perf_counter())."""
    _timed[protocol].observe(time.perf_counter() - started)
    child = _counted.get((protocol, status))
    if child is None:
        child = _counted[protocol, status] = REPORTS.labels(protocol, str(status))
    child.inc()


class RunsCollector:
    """Active runs by state and trigger (the `run_active` index), and runs finished
    within the last KUBEPROBE_METRICS_WINDOW_SECONDS (the `run_finished` index):
    counting every run ever stored would read the whole runs table."""

    def collect(self) -> Iterator[Metric]:
        window = settings.KUBEPROBE_METRICS_WINDOW_SECONDS
        active = GaugeMetricFamily(
            "kubeprobe_runs_active",
            "Runs not finished yet, by state and trigger.",
            labels=["state", "trigger"],
        )
        counts = (
            ProbeRun.objects.filter(state__in=ACTIVE_STATES)
            .values_list("state", "trigger")
            .annotate(n=Count("id"))
            .order_by()
        )
        for state, trigger, n in counts:
            active.add_metric([state, trigger], n)
        finished = GaugeMetricFamily(
            "kubeprobe_runs_finished_recent",
            f"Runs finished in the last {window} s (KUBEPROBE_METRICS_WINDOW_SECONDS), "
            "by final state and trigger.",
            labels=["state", "trigger"],
        )
        counts = (
            ProbeRun.objects.filter(finished_at__gte=timezone.now() - timedelta(seconds=window))
            .values_list("state", "trigger")
            .annotate(n=Count("id"))
            .order_by()
        )
        for state, trigger, n in counts:
            finished.add_metric([state, trigger], n)
        yield active
        yield finished
