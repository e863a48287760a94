"""Scrape-time metrics of resident probes (registered by ResidentConfig): per
(probe, cluster), availability and sample rate over the last
KUBEPROBE_METRICS_WINDOW_SECONDS (one grouped query over the window table's
newest partition), whether the newest window was up, and the runner's drops.
Cardinality: resident probes x the clusters they run in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.resident.models import ResidentTarget
from apps.resident.storage import totals_since


class ResidentCollector:
    def collect(self) -> Iterator[Metric]:
        window = settings.KUBEPROBE_METRICS_WINDOW_SECONDS
        labels = ["probe", "cluster"]
        availability = GaugeMetricFamily(
            "kubeprobe_resident_availability",
            f"Share of samples that succeeded in the last {window} s (missing: no samples).",
            labels=labels,
        )
        rate = GaugeMetricFamily(
            "kubeprobe_resident_samples_per_second",
            f"Samples received per second over the last {window} s.",
            labels=labels,
        )
        up = GaugeMetricFamily(
            "kubeprobe_resident_up", "1 when the newest window was up, 0 when down.", labels=labels
        )
        dropped = GaugeMetricFamily(
            "kubeprobe_resident_samples_dropped",
            "Samples the resident runner dropped (rate limit or full outbox), as it last reported.",
            labels=labels,
        )
        names: dict[tuple[int, int], list[str]] = {}
        targets = ResidentTarget.objects.values_list(
            "probe_id", "cluster_id", "probe__name", "cluster__name", "state", "samples_dropped"
        ).order_by()
        for probe_id, cluster_id, probe, cluster, state, drops in targets:
            pair = names[probe_id, cluster_id] = [probe, cluster]
            if state in ("up", "down"):
                up.add_metric(pair, 1 if state == "up" else 0)
            dropped.add_metric(pair, drops)
        totals = totals_since(since=timezone.now() - timedelta(seconds=window))
        for key, row in totals.items():
            if key not in names or not row.count:
                continue
            availability.add_metric(names[key], 1 - row.failures / row.count)
            rate.add_metric(names[key], row.count / window)
        yield availability
        yield rate
        yield up
        yield dropped
