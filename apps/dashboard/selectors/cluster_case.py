"""The cluster page (every case on one cluster) and the case page (one case everywhere)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.alerts.models import PROBLEM_STATES, SEVERITY_RANK, Alert, AlertState, Severity
from apps.alerts.selectors import ROOT_CAUSE_FIELDS
from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.dashboard import access
from apps.dashboard.selectors.matrix import (
    Cell,
    FilterOptions,
    Filters,
    Row,
    _cells,
    _row_matches,
    filter_cases,
    firing_counters,
    options_of,
    scope_of,
)
from apps.dashboard.selectors.stats import (
    WindowStats,
    _empty_stats,
    pair_stats,
    step_latency_series,
)
from apps.runs.models import ProbeRun, RunRollup
from apps.scheduling.models import Event
from apps.scheduling.selectors import scheduled_pairs

TIMELINE_LIMIT = 60


@dataclass
class PairLine:
    """One line of the cluster page (per case) or the case page (per cluster)."""

    cell: Cell
    other_id: int
    other_name: str
    alert: Alert | None
    stats: dict[str, WindowStats]
    # Some enabled binding runs this pair (the cluster page; the case page lists all).
    scheduled: bool = True


@dataclass
class TimelineEntry:
    at: datetime
    kind: str  # "run" | "event"
    run_id: int | None = None
    state: str = ""
    text: str = ""
    trigger: str = ""
    duration_ms: int | None = None


@dataclass
class ClusterPage:
    cluster: Cluster
    lines: list[PairLine]
    open_alerts: list[Alert]
    timeline: list[TimelineEntry]
    counters: dict[str, int]


def cluster_page(*, cluster: Cluster, filters: Filters, now: datetime | None = None) -> ClusterPage:
    """Every case's latest result and stats on one cluster; the caller checked access."""
    cases = filter_cases(Case.objects.filter(enabled=True), filters)
    case_names = dict(cases.order_by("name").values_list("pk", "name"))
    alerts = {
        a.case_id: a
        for a in Alert.objects.filter(cluster=cluster, case_id__in=list(case_names)).defer(
            "ack_note"
        )
    }
    stats = pair_stats(
        runs=ProbeRun.objects.filter(cluster=cluster, case_id__in=list(case_names)),
        rollups=RunRollup.objects.filter(cluster=cluster, case_id__in=list(case_names)),
        key="case_id",
        now=now,
    )
    scheduled = {case for case, cluster_id in scheduled_pairs() if cluster_id == cluster.pk}
    lines = []
    for case_id, name in case_names.items():
        alert = alerts.get(case_id)
        cell = _cell_of(alert, case_id, cluster.pk)
        line = PairLine(
            cell,
            case_id,
            name,
            alert,
            stats.get(case_id) or _empty_stats(),
            scheduled=case_id in scheduled,
        )
        if _line_matches(line, filters.state):
            lines.append(line)
    open_alerts = sorted(
        (a for a in alerts.values() if a.state in PROBLEM_STATES),
        key=lambda a: (-SEVERITY_RANK.get(Severity(a.severity), 0), a.case_id),
    )
    for alert in open_alerts:
        alert.case_name = case_names.get(alert.case_id, "")  # type: ignore[attr-defined]
    return ClusterPage(
        cluster=cluster,
        lines=lines,
        open_alerts=open_alerts,
        timeline=cluster_timeline(cluster_id=cluster.pk),
        counters=firing_counters(line.cell for line in lines),
    )


def _cell_of(alert: Alert | None, case_id: int, cluster_id: int) -> Cell:
    if alert is None:
        return Cell(case_id, cluster_id, "", AlertState.OK, "", None)
    return Cell(
        case_id, cluster_id, alert.latest_state, alert.state, alert.severity, alert.latest_run_id
    )


def _line_matches(line: PairLine, state: str) -> bool:
    row = Row(0, "", "", "", "", cells={0: line.cell})
    return _row_matches(row, state)


def cluster_timeline(*, cluster_id: int, limit: int = TIMELINE_LIMIT) -> list[TimelineEntry]:
    """Recent runs and events of a cluster, merged newest first (two bounded queries)."""
    runs = (
        ProbeRun.objects.filter(cluster_id=cluster_id)
        .order_by("-created_at", "-id")
        .values_list("pk", "created_at", "state", "case__name", "trigger", "duration_ms")[:limit]
    )
    events = (
        Event.objects.filter(cluster_id=cluster_id)
        .order_by("-created_at", "-id")
        .values_list("created_at", "kind", "component")[:limit]
    )
    entries = [
        TimelineEntry(
            at=at,
            kind="run",
            run_id=pk,
            state=state,
            text=case_name,
            trigger=trigger,
            duration_ms=duration,
        )
        for pk, at, state, case_name, trigger, duration in runs
    ] + [
        TimelineEntry(at=at, kind="event", text=f"{kind}: {component}" if component else kind)
        for at, kind, component in events
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


@dataclass
class CasePage:
    case: Case
    lines: list[PairLine]
    counters: dict[str, int]
    charts: dict[str, Any]
    options: FilterOptions
    history: list[HistoryEntry]


HISTORY_LIMIT = 50


@dataclass
class HistoryEntry:
    """One run of the case page's history."""

    run_id: int
    cluster_name: str
    state: str
    trigger: str
    created_at: datetime
    duration_ms: int | None
    failing_step: str


def case_history(*, case: Case, clusters: Any, limit: int = HISTORY_LIMIT) -> list[HistoryEntry]:
    """The case's newest runs on these clusters, any state, newest first."""
    out = []
    for pk, cluster_name, state, trigger, created, duration, steps in (
        ProbeRun.objects.filter(case=case, cluster_id__in=clusters.values("pk"))
        .order_by("-created_at", "-id")
        .values_list(
            "pk", "cluster__name", "state", "trigger", "created_at", "duration_ms", "steps"
        )[:limit]
    ):
        failing = next(
            (
                str(s.get("name", ""))
                for s in (steps if isinstance(steps, list) else [])
                if isinstance(s, dict) and s.get("ok") is False
            ),
            "",
        )
        out.append(HistoryEntry(pk, cluster_name, state, trigger, created, duration, failing))
    return out


def case_page(*, user: Any, case: Case, filters: Filters, now: datetime | None = None) -> CasePage:
    """One case across the clusters the user may see (those with a result for it)."""
    now = now or timezone.now()
    scope = scope_of(user, filters, case=case, cluster=None)
    cells = {c.cluster_id: c for c in _cells(scope)}
    alerts = {
        a.cluster_id: a
        for a in Alert.objects.filter(case=case, cluster_id__in=scope.clusters.values("pk"))
        .exclude(state=AlertState.OK)
        .only(
            "pk",
            "cluster_id",
            "state",
            "severity",
            "step",
            "error",
            "firing_since",
            *ROOT_CAUSE_FIELDS,
        )
    }
    names = dict(
        scope.clusters.filter(pk__in=list(cells)).order_by("name").values_list("pk", "name")
    )
    stats = pair_stats(
        runs=ProbeRun.objects.filter(case=case, cluster_id__in=scope.clusters.values("pk")),
        rollups=RunRollup.objects.filter(case=case, cluster_id__in=scope.clusters.values("pk")),
        key="cluster_id",
        now=now,
    )
    lines = []
    for cluster_id, name in names.items():
        line = PairLine(
            cells[cluster_id],
            cluster_id,
            name,
            alerts.get(cluster_id),
            stats.get(cluster_id) or _empty_stats(),
        )
        if _line_matches(line, filters.state):
            lines.append(line)
    viewable = None if access.sees_all_clusters(user) else scope.groups
    return CasePage(
        case=case,
        lines=lines,
        counters=firing_counters(line.cell for line in lines),
        charts=step_latency_series(case=case, clusters=scope.clusters, now=now),
        options=options_of(access.clusters_of_groups(viewable), scope.groups),
        history=case_history(case=case, clusters=scope.clusters),
    )
