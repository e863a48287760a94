"""The run page and the alerts page, limited to the clusters the user may see."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count

from apps.alerts.models import PROBLEM_STATES, SEVERITY_RANK, Alert, AlertState
from apps.dashboard.selectors.matrix import SEVERITIES
from apps.dashboard.selectors.visibility import _visible
from apps.runs.models import ProbeRun

ALERTS_PER_STATE = 500


@dataclass
class RunPage:
    run: ProbeRun
    alert: Alert | None
    failing_step: dict[str, Any] | None
    pod_events: list[dict[str, Any]]
    pod: dict[str, Any]
    counters: dict[str, int]  # firing alerts by severity, for the top bar


def run_page(*, user: Any, run_id: int) -> RunPage | None:
    """A run with its alert; None when it does not exist or its cluster is not visible."""
    run = (
        ProbeRun.objects.filter(_visible(user), pk=run_id)
        .select_related("case", "cluster", "binding", "event", "requested_by")
        .defer("cluster__kubeconfig", "token_hash")
        .first()
    )
    if run is None:
        return None
    alert = Alert.objects.filter(case_id=run.case_id, cluster_id=run.cluster_id).first()
    steps = [s for s in run.steps if isinstance(s, dict)] if isinstance(run.steps, list) else []
    failing = next((s for s in steps if s.get("ok") is False), None)
    diagnostics = run.diagnostics if isinstance(run.diagnostics, dict) else {}
    events = diagnostics.get("events")
    pod = {k: v for k, v in diagnostics.items() if k != "events"}
    return RunPage(
        run=run,
        alert=alert,
        failing_step=failing,
        pod_events=[e for e in events if isinstance(e, dict)] if isinstance(events, list) else [],
        pod=pod,
        counters=firing_counts(user=user),
    )


def firing_counts(*, user: Any) -> dict[str, int]:
    """Firing alerts of the visible clusters by severity: the top bar's counters."""
    counters = {str(s): 0 for s in SEVERITIES}
    for severity, n in (
        Alert.objects.filter(_visible(user), state=AlertState.FIRING)
        .order_by()
        .values_list("severity")
        .annotate(n=Count("pk"))
    ):
        if severity in counters:
            counters[severity] += n
    return counters


@dataclass
class AlertsPage:
    sections: list[tuple[str, list[Alert], int]]  # state, first alerts, how many in all
    counters: dict[str, int]


def alerts_page(*, user: Any) -> AlertsPage:
    """Firing, acknowledged and silenced alerts of the visible clusters, worst first."""
    base = Alert.objects.filter(_visible(user), state__in=PROBLEM_STATES)
    totals: dict[str, int] = defaultdict(int)
    counters = {str(s): 0 for s in SEVERITIES}
    for state, severity, n in (
        base.order_by().values_list("state", "severity").annotate(n=Count("pk"))
    ):
        totals[state] += n
        if state == AlertState.FIRING and severity in counters:
            counters[severity] += n
    rank = {str(s): -r for s, r in SEVERITY_RANK.items()}
    sections = []
    for state in PROBLEM_STATES:
        alerts = list(
            base.filter(state=state)
            .select_related("case", "cluster", "ack_by")
            .defer("cluster__kubeconfig")
            .order_by("-changed_at", "-id")[:ALERTS_PER_STATE]
        )
        alerts.sort(key=lambda a: rank.get(a.severity, 0))  # stable: newest first per severity
        sections.append((str(state), alerts, totals.get(state, 0)))
    return AlertsPage(sections=sections, counters=counters)
