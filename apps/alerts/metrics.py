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
from apps.core.metrics import Exposition, family_header, label_value
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
    """Per pair: kubeprobe_probe_success, kubeprobe_probe_duration_seconds and
    kubeprobe_alert_state, written as text (apps.core.metrics.Exposition: 10,000
    clusters x 20 cases are 600,000 series); then the aggregates by state."""

    def collect(self) -> Iterator[Metric | Exposition]:
        per_pair = settings.KUBEPROBE_METRICS_PER_PAIR
        success: list[str] = []
        duration: list[str] = []
        alert: list[str] = []
        alerts: Counter[tuple[str, str]] = Counter()
        results: Counter[str] = Counter()
        escaped: dict[str, str] = {}  # each name escaped once, not once per pair
        rows = Alert.objects.values_list(
            "case__name", "cluster__name", "state", "severity", "latest_state", "latest_duration_ms"
        ).order_by()
        for case, cluster, state, severity, latest, duration_ms in rows.iterator(chunk_size=10000):
            alerts[state, severity] += 1
            if latest:
                results[latest] += 1
            if not per_pair:
                continue
            case_label = escaped.get(case) or escaped.setdefault(case, label_value(case))
            cluster_label = escaped.get(cluster) or escaped.setdefault(
                cluster, label_value(cluster)
            )
            pair = f'{{case="{case_label}",cluster="{cluster_label}"}} '
            alert.append(f"kubeprobe_alert_state{pair}{ALERT_STATE_VALUES.get(state, -1)}\n")
            if latest:
                ok = 1 if latest == RunState.SUCCEEDED else 0
                success.append(f"kubeprobe_probe_success{pair}{ok}\n")
                if duration_ms is not None:
                    duration.append(f"kubeprobe_probe_duration_seconds{pair}{duration_ms / 1000}\n")
        if per_pair:
            yield Exposition(
                family_header(
                    "kubeprobe_probe_success",
                    "1 when the pair's newest finished run succeeded, 0 when it failed, "
                    "errored or timed out.",
                )
                + "".join(success)
                + family_header(
                    "kubeprobe_probe_duration_seconds",
                    "Duration of the pair's newest finished run.",
                )
                + "".join(duration)
                + family_header(
                    "kubeprobe_alert_state", f"The pair's alert state: {ALERT_STATE_HELP}."
                )
                + "".join(alert)
            )
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
