"""Scrape-time metrics of results and alerts (registered by AlertsConfig).

Each (case, cluster) pair's alert row holds its newest finished run's state and
duration and the alert state, so one query over the alerts table gives every
pair's series. Series per pair (cardinality = pairs judged so far, 3 each) can
be switched off with KUBEPROBE_METRICS_PER_PAIR=false; the aggregates stay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.alerts.models import Alert, AlertState, Notification
from apps.runs.models import RunState

# Alert states as numbers (one series per pair instead of one per pair and state).
ALERT_STATE_VALUES: dict[str, int] = {
    AlertState.OK: 0,
    AlertState.FIRING: 1,
    AlertState.ACKNOWLEDGED: 2,
    AlertState.SILENCED: 3,
}
ALERT_STATE_HELP = ", ".join(f"{value} {state}" for state, value in ALERT_STATE_VALUES.items())


class PairsCollector:
    def collect(self) -> Iterator[Metric]:
        per_pair = settings.KUBEPROBE_METRICS_PER_PAIR
        labels = ["case", "cluster"]
        success = GaugeMetricFamily(
            "kubeprobe_probe_success",
            "1 when the pair's newest finished run succeeded, 0 when it failed, "
            "errored or timed out.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "kubeprobe_probe_duration_seconds",
            "Duration of the pair's newest finished run.",
            labels=labels,
        )
        alert = GaugeMetricFamily(
            "kubeprobe_alert_state", f"The pair's alert state: {ALERT_STATE_HELP}.", labels=labels
        )
        alerts: Counter[tuple[str, str]] = Counter()
        results: Counter[str] = Counter()
        rows = Alert.objects.values_list(
            "case__name", "cluster__name", "state", "severity", "latest_state", "latest_duration_ms"
        ).order_by()
        for case, cluster, state, severity, latest, duration_ms in rows.iterator(chunk_size=5000):
            alerts[state, severity] += 1
            if latest:
                results[latest] += 1
            if not per_pair:
                continue
            pair = [case, cluster]
            alert.add_metric(pair, ALERT_STATE_VALUES.get(state, -1))
            if latest:
                success.add_metric(pair, 1 if latest == RunState.SUCCEEDED else 0)
                if duration_ms is not None:
                    duration.add_metric(pair, duration_ms / 1000)
        if per_pair:
            yield success
            yield duration
            yield alert
        by_state = GaugeMetricFamily(
            "kubeprobe_alerts", "Pairs by alert state and severity.", labels=["state", "severity"]
        )
        for (state, severity), n in sorted(alerts.items()):
            by_state.add_metric([state, severity], n)
        yield by_state
        by_result = GaugeMetricFamily(
            "kubeprobe_pairs_by_result",
            "Pairs by the state of their newest finished run.",
            labels=["result"],
        )
        for result, n in sorted(results.items()):
            by_result.add_metric([result], n)
        yield by_result


class NotificationsCollector:
    """Notifications created in the last KUBEPROBE_METRICS_WINDOW_SECONDS, by
    channel kind and their status now (sent, failed, retrying, …)."""

    def collect(self) -> Iterator[Metric]:
        window = settings.KUBEPROBE_METRICS_WINDOW_SECONDS
        family = GaugeMetricFamily(
            "kubeprobe_notifications_recent",
            f"Notifications created in the last {window} s, by channel kind and status.",
            labels=["kind", "status"],
        )
        counts = (
            Notification.objects.filter(created_at__gte=timezone.now() - timedelta(seconds=window))
            .values_list("channel__kind", "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for kind, status, n in counts:
            family.add_metric([kind, status], n)
        yield family
