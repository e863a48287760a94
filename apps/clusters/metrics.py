"""Scrape-time metrics of clusters (registered by ClustersConfig): one series per
cluster for its circuit breaker, plus counts by API status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from apps.clusters.models import Cluster


class ClustersCollector:
    def collect(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily(
            "kubeprobe_cluster_breaker_open",
            "1 while the cluster's circuit breaker is open (its API server unreachable).",
            labels=["cluster"],
        )
        failures = GaugeMetricFamily(
            "kubeprobe_cluster_breaker_failures",
            "Consecutive failures to connect to the cluster's API server.",
            labels=["cluster"],
        )
        statuses: Counter[tuple[str, str]] = Counter()
        rows = Cluster.objects.values_list(
            "name", "breaker_open_since", "breaker_failures", "api_status", "enabled"
        ).order_by()
        for name, open_since, failed, api_status, on in rows.iterator(chunk_size=5000):
            breaker.add_metric([name], 0 if open_since is None else 1)
            failures.add_metric([name], failed)
            statuses[api_status or "unknown", "true" if on else "false"] += 1
        yield breaker
        yield failures
        clusters = GaugeMetricFamily(
            "kubeprobe_clusters",
            "Clusters by the last API check's status and whether they are enabled.",
            labels=["api_status", "enabled"],
        )
        for (api_status, enabled), n in sorted(statuses.items()):
            clusters.add_metric([api_status, enabled], n)
        yield clusters
