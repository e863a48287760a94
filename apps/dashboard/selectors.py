"""Reads behind the dashboard pages; every page costs a bounded number of queries.

The health matrix comes from `Alert` rows, one per (case, cluster) pair and
kept current after every finished run, so all cells are one query whatever the
number of clusters. Durations and success rates are aggregated in SQL
(percentile_cont on Postgres; computed in Python on SQLite, for trials).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Q, QuerySet
from django.utils import timezone

from apps.alerts.models import PROBLEM_STATES, SEVERITY_RANK, Alert, AlertState, Severity
from apps.catalog.models import Case, CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.clusters.selectors import cluster_group_resolve
from apps.dashboard import access
from apps.runs.models import FINISHED_STATES, ProbeRun, RunState
from apps.scheduling.models import Event

RED_STATES = frozenset({RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT})
SEVERITIES = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
WINDOWS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)))
NO_REGION = "(no region)"
NO_GROUP = "(no group)"
TIMELINE_LIMIT = 60
CHART_RUNS = 500
CHART_SPAN = timedelta(hours=24)
CHART_BUCKETS = 24
CHART_MAX_STEPS = 12
ALERTS_PER_STATE = 500


@dataclass(frozen=True)
class Filters:
    """What the matrix pages show; parsed from the query string by forms.FilterForm."""

    q: str = ""
    group: str = ""
    region: str = ""
    environment: str = ""
    case_set: str = ""
    state: str = ""  # "", failing, alerting, firing, ok
    group_by: str = "region"  # region | group


@dataclass(slots=True)
class Cell:
    case_id: int
    cluster_id: int
    run_state: str  # the newest finished run's state; "" when none
    alert_state: str
    severity: str
    run_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "cluster_id": self.cluster_id,
            "run_state": self.run_state or None,
            "alert_state": self.alert_state,
            "severity": self.severity,
            "run_id": self.run_id,
        }


@dataclass(slots=True)
class Row:
    cluster_id: int
    name: str
    display_name: str
    region: str
    environment: str
    cells: dict[int, Cell] = field(default_factory=dict)  # by case id
    also_in: list[str] = field(default_factory=list)  # other groups (group_by=group)
    # The cluster's circuit breaker is open (apps/clusters/breaker.py): since when, why.
    unreachable_since: datetime | None = None
    unreachable_error: str = ""


@dataclass
class Section:
    title: str
    rows: list[Row]


@dataclass
class FilterOptions:
    groups: list[str]
    regions: list[str]
    environments: list[str]
    case_sets: list[str]


@dataclass
class Matrix:
    cases: list[tuple[int, str]]
    sections: list[Section]
    counters: dict[str, int]
    options: FilterOptions

    @property
    def row_count(self) -> int:
        return sum(len(s.rows) for s in self.sections)


# ------------------------------------------------------------------ the matrix


def _row_matches(row: Row, state: str) -> bool:
    if not state:
        return True
    cells = row.cells.values()
    if state == "failing":
        return any(c.run_state in RED_STATES for c in cells)
    if state == "alerting":
        return any(c.alert_state in PROBLEM_STATES for c in cells)
    if state == "firing":
        return any(c.alert_state == AlertState.FIRING for c in cells)
    # "ok": all green
    return not any(c.run_state in RED_STATES or c.alert_state in PROBLEM_STATES for c in cells)


def firing_counters(cells: Any) -> dict[str, int]:
    """Firing alerts by severity, counted from cells as the live script recounts them."""
    counters = {str(s): 0 for s in SEVERITIES}
    for cell in cells:
        if cell.alert_state == AlertState.FIRING and cell.severity in counters:
            counters[cell.severity] += 1
    return counters


@dataclass
class _Scope:
    groups: list[ClusterGroup]  # the groups the user may use (all, or their viewable ones)
    clusters: QuerySet[Cluster]
    cases: QuerySet[Case]


def _scope(user: Any, filters: Filters, *, case: Case | None, cluster: Cluster | None) -> _Scope:
    viewable = access.viewable_groups(user)
    groups = (
        list(ClusterGroup.objects.only("id", "name", "selector").order_by("name"))
        if viewable is None
        else viewable
    )
    clusters = access.clusters_of_groups(viewable)
    # A cluster's own page shows it even while disabled; lists show enabled clusters.
    clusters = (
        clusters.filter(pk=cluster.pk) if cluster is not None else clusters.filter(enabled=True)
    )
    if filters.region:
        clusters = clusters.filter(region=filters.region)
    if filters.environment:
        clusters = clusters.filter(environment=filters.environment)
    if filters.q:
        clusters = clusters.filter(
            Q(name__icontains=filters.q) | Q(display_name__icontains=filters.q)
        )
    if filters.group:
        chosen = next((g for g in groups if g.name == filters.group), None)
        clusters = (
            clusters.filter(pk__in=cluster_group_resolve(group=chosen).values("pk"))
            if chosen
            else clusters.none()
        )
    cases = Case.objects.all() if case is not None else Case.objects.filter(enabled=True)
    if case is not None:
        cases = cases.filter(pk=case.pk)
    if filters.case_set:
        cases = cases.filter(memberships__case_set__name=filters.case_set)
    return _Scope(groups=groups, clusters=clusters, cases=cases)


def _cells(scope: _Scope) -> list[Cell]:
    rows = (
        Alert.objects.filter(
            cluster_id__in=scope.clusters.values("pk"), case_id__in=scope.cases.values("pk")
        )
        .order_by()
        .values_list("case_id", "cluster_id", "latest_state", "state", "severity", "latest_run_id")
    )
    return [Cell(*row) for row in rows]


def _rows(scope: _Scope, cells: list[Cell], *, with_labels: bool) -> tuple[list[Row], dict]:
    fields = [
        "pk",
        "name",
        "display_name",
        "region",
        "environment",
        "breaker_open_since",
        "breaker_last_error",
    ]
    if with_labels:
        fields.append("labels")
    by_id: dict[int, Row] = {}
    labels: dict[int, dict[str, str]] = {}
    for values in scope.clusters.order_by("name").values_list(*fields):
        added = by_id[values[0]] = Row(*values[:5])
        added.unreachable_since, added.unreachable_error = values[5], values[6] if values[5] else ""
        if with_labels:
            labels[values[0]] = values[7] or {}
    for cell in cells:
        row = by_id.get(cell.cluster_id)
        if row is not None:
            row.cells[cell.case_id] = cell
    return list(by_id.values()), labels


def _sections_by_group(
    rows: list[Row], labels: dict[int, dict[str, str]], groups: list[ClusterGroup]
) -> list[Section]:
    """Each cluster once, under the first of its groups by name (ids must stay unique)."""
    through = ClusterGroup.members.through
    members: dict[int, set[int]] = defaultdict(set)
    for group_id, cluster_id in through.objects.filter(
        clustergroup_id__in=[g.pk for g in groups]
    ).values_list("clustergroup_id", "cluster_id"):
        members[cluster_id].add(group_id)
    sections: dict[str, list[Row]] = {g.name: [] for g in groups}
    leftover: list[Row] = []
    for row in rows:
        mine = [
            g.name
            for g in groups
            if g.pk in members.get(row.cluster_id, ())
            or (
                g.selector
                and all(labels[row.cluster_id].get(k) == v for k, v in g.selector.items())
            )
        ]
        if mine:
            sections[mine[0]].append(row)
            row.also_in = mine[1:]
        else:
            leftover.append(row)
    out = [Section(name, section_rows) for name, section_rows in sections.items() if section_rows]
    if leftover:
        out.append(Section(NO_GROUP, leftover))
    return out


def _sections_by_region(rows: list[Row]) -> list[Section]:
    sections: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        sections[row.region or NO_REGION].append(row)
    return [
        Section(title, sections[title])
        for title in sorted(sections, key=lambda t: (t == NO_REGION, t))
    ]


def _options(user_clusters: QuerySet[Cluster], groups: list[ClusterGroup]) -> FilterOptions:
    regions: set[str] = set()
    environments: set[str] = set()
    for region, environment in (
        user_clusters.filter(enabled=True)
        .order_by()
        .values_list("region", "environment")
        .distinct()
    ):
        regions.add(region)
        environments.add(environment)
    return FilterOptions(
        groups=[g.name for g in groups],
        regions=sorted(r for r in regions if r),
        environments=sorted(e for e in environments if e),
        case_sets=list(CaseSet.objects.order_by("name").values_list("name", flat=True)),
    )


def matrix_overview(*, user: Any, filters: Filters) -> Matrix:
    """Clusters (rows, in sections) × enabled cases (columns); about ten queries in all."""
    scope = _scope(user, filters, case=None, cluster=None)
    cases = list(scope.cases.order_by("name").values_list("pk", "name"))
    cells = _cells(scope)
    by_group = filters.group_by == "group"
    rows, labels = _rows(scope, cells, with_labels=by_group)
    rows = [r for r in rows if _row_matches(r, filters.state)]
    sections = (
        _sections_by_group(rows, labels, scope.groups) if by_group else _sections_by_region(rows)
    )
    shown = (cell for row in rows for cell in row.cells.values())
    viewable = None if access.sees_all_clusters(user) else scope.groups
    return Matrix(
        cases=cases,
        sections=sections,
        counters=firing_counters(shown),
        options=_options(access.clusters_of_groups(viewable), scope.groups),
    )


def matrix_cells(
    *, user: Any, filters: Filters, case: Case | None = None, cluster: Cluster | None = None
) -> list[Cell]:
    """The cells a page shows, for the live script's resync (state.json)."""
    scope = _scope(user, filters, case=case, cluster=cluster)
    cells = _cells(scope)
    if not filters.state:
        return cells
    rows, _ = _rows(scope, cells, with_labels=False)
    keep = {r.cluster_id for r in rows if _row_matches(r, filters.state)}
    return [c for c in cells if c.cluster_id in keep]


def filter_options(*, user: Any) -> FilterOptions:
    viewable = access.viewable_groups(user)
    groups = (
        list(ClusterGroup.objects.only("id", "name", "selector").order_by("name"))
        if viewable is None
        else viewable
    )
    return _options(access.clusters_of_groups(viewable), groups)


# ------------------------------------------------------------------ durations and rates


class PercentileCont(Aggregate):
    """percentile_cont(f) WITHIN GROUP (ORDER BY expr), Postgres; FILTER works as usual."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float, **extra: Any) -> None:
        # A constant of ours, never user input: safe to place in the SQL text.
        super().__init__(expression, fraction=f"{float(fraction):.4f}", **extra)


@dataclass
class WindowStats:
    runs: int = 0
    succeeded: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def success_rate(self) -> float | None:
        return 100.0 * self.succeeded / self.runs if self.runs else None


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as Postgres' percentile_cont does."""
    if not values:
        return None
    ordered = sorted(values)
    pos = fraction * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def pair_stats(
    *, runs: QuerySet[ProbeRun], key: str, now: datetime | None = None
) -> dict[int, dict[str, WindowStats]]:
    """Per `key` (case_id or cluster_id): runs, successes, p50/p95 duration for 1 h, 24 h, 7 d.

    Runs count by when they were created (the indexed column) and only once finished.
    """
    now = now or timezone.now()
    since = now - WINDOWS[-1][1]
    finished = runs.filter(created_at__gte=since, state__in=FINISHED_STATES).order_by()
    out: dict[int, dict[str, WindowStats]] = defaultdict(
        lambda: {w: WindowStats() for w, _ in WINDOWS}
    )
    if connection.vendor == "postgresql":
        aggregates: dict[str, Any] = {}
        for name, span in WINDOWS:
            in_window = Q(created_at__gte=now - span)
            aggregates[f"n_{name}"] = Count("pk", filter=in_window)
            aggregates[f"ok_{name}"] = Count("pk", filter=in_window & Q(state=RunState.SUCCEEDED))
            aggregates[f"p50_{name}"] = PercentileCont("duration_ms", 0.5, filter=in_window)
            aggregates[f"p95_{name}"] = PercentileCont("duration_ms", 0.95, filter=in_window)
        for row in finished.values(key).annotate(**aggregates):
            out[row[key]] = {
                name: WindowStats(
                    runs=row[f"n_{name}"],
                    succeeded=row[f"ok_{name}"],
                    p50_ms=row[f"p50_{name}"],
                    p95_ms=row[f"p95_{name}"],
                )
                for name, _ in WINDOWS
            }
        return dict(out)
    # Elsewhere (SQLite trials): the week's finished runs, summed up here.
    samples: dict[tuple[int, str], list[float]] = defaultdict(list)
    for group_id, created, state, duration in finished.values_list(
        key, "created_at", "state", "duration_ms"
    ):
        for name, span in WINDOWS:
            if created >= now - span:
                stats = out[group_id][name]
                stats.runs += 1
                stats.succeeded += state == RunState.SUCCEEDED
                if duration is not None:
                    samples[(group_id, name)].append(duration)
    for (group_id, name), values in samples.items():
        out[group_id][name].p50_ms = percentile(values, 0.5)
        out[group_id][name].p95_ms = percentile(values, 0.95)
    return dict(out)


# ------------------------------------------------------------------ pages


@dataclass
class PairLine:
    """One line of the cluster page (per case) or the case page (per cluster)."""

    cell: Cell
    other_id: int
    other_name: str
    alert: Alert | None
    stats: dict[str, WindowStats]


@dataclass
class TimelineEntry:
    at: datetime
    kind: str  # "run" | "event"
    run_id: int | None = None
    state: str = ""
    text: str = ""
    trigger: str = ""
    duration_ms: int | None = None


def _visible(user: Any) -> Q:
    """A filter on `cluster` for the user's clusters; empty for those who see all."""
    groups = access.viewable_groups(user)
    if groups is None:
        return Q()
    return Q(cluster__in=access.clusters_of_groups(groups).values("pk"))


def visible_cluster(*, user: Any, name: str) -> Cluster | None:
    return access.visible_clusters(user).filter(name=name).defer("kubeconfig").first()


def visible_cluster_by_id(*, user: Any, cluster_id: int) -> Cluster | None:
    return access.visible_clusters(user).filter(pk=cluster_id).defer("kubeconfig").first()


def _empty_stats() -> dict[str, WindowStats]:
    return {name: WindowStats() for name, _ in WINDOWS}


@dataclass
class ClusterPage:
    cluster: Cluster
    lines: list[PairLine]
    open_alerts: list[Alert]
    timeline: list[TimelineEntry]
    counters: dict[str, int]


def cluster_page(*, cluster: Cluster, filters: Filters, now: datetime | None = None) -> ClusterPage:
    """Every case's latest result and stats on one cluster; the caller checked access."""
    cases = Case.objects.filter(enabled=True)
    if filters.case_set:
        cases = cases.filter(memberships__case_set__name=filters.case_set)
    case_names = dict(cases.order_by("name").values_list("pk", "name"))
    alerts = {
        a.case_id: a
        for a in Alert.objects.filter(cluster=cluster, case_id__in=list(case_names)).defer(
            "ack_note"
        )
    }
    stats = pair_stats(
        runs=ProbeRun.objects.filter(cluster=cluster, case_id__in=list(case_names)),
        key="case_id",
        now=now,
    )
    lines = []
    for case_id, name in case_names.items():
        alert = alerts.get(case_id)
        cell = _cell_of(alert, case_id, cluster.pk)
        line = PairLine(cell, case_id, name, alert, stats.get(case_id) or _empty_stats())
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


def case_page(*, user: Any, case: Case, filters: Filters, now: datetime | None = None) -> CasePage:
    """One case across the clusters the user may see (those with a result for it)."""
    now = now or timezone.now()
    scope = _scope(user, filters, case=case, cluster=None)
    cells = {c.cluster_id: c for c in _cells(scope)}
    alerts = {
        a.cluster_id: a
        for a in Alert.objects.filter(case=case, cluster_id__in=scope.clusters.values("pk"))
        .exclude(state=AlertState.OK)
        .only("pk", "cluster_id", "state", "severity", "step", "error", "hint", "firing_since")
    }
    names = dict(
        scope.clusters.filter(pk__in=list(cells)).order_by("name").values_list("pk", "name")
    )
    stats = pair_stats(
        runs=ProbeRun.objects.filter(case=case, cluster_id__in=scope.clusters.values("pk")),
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
        options=_options(access.clusters_of_groups(viewable), scope.groups),
    )


def step_latency_series(
    *, case: Case, clusters: QuerySet[Cluster], now: datetime | None = None
) -> dict[str, Any]:
    """p50/p95 duration per step over time, from the case's last runs (at most CHART_RUNS, 24 h).

    {"x": [unix seconds per bucket], "steps": [{"name", "p50": [...], "p95": [...]}], "runs": n}
    """
    now = now or timezone.now()
    runs = list(
        ProbeRun.objects.filter(
            case=case,
            state__in=FINISHED_STATES,
            created_at__gte=now - CHART_SPAN,
            cluster_id__in=clusters.values("pk"),
        )
        .order_by("-created_at")
        .values_list("created_at", "steps")[:CHART_RUNS]
    )
    if not runs:
        return {"x": [], "steps": [], "runs": 0}
    start = runs[-1][0].timestamp()
    end = runs[0][0].timestamp()
    width = max((end - start) / CHART_BUCKETS, 1.0)
    edges = [start + width * (i + 1) for i in range(CHART_BUCKETS - 1)]
    samples: dict[str, list[list[float]]] = {}
    order: list[str] = []
    for created, steps in reversed(runs):
        bucket = bisect.bisect_right(edges, created.timestamp())
        for step in steps if isinstance(steps, list) else []:
            if not isinstance(step, dict):
                continue
            name, duration = str(step.get("name", "")), step.get("duration_ms")
            if not name or not isinstance(duration, int | float):
                continue
            if name not in samples:
                if len(samples) >= CHART_MAX_STEPS:
                    continue
                samples[name] = [[] for _ in range(CHART_BUCKETS)]
                order.append(name)
            samples[name][bucket].append(float(duration))
    used = [i for i in range(CHART_BUCKETS) if any(samples[n][i] for n in order)]
    return {
        "x": [round(start + width * (i + 0.5)) for i in used],
        "steps": [
            {
                "name": name,
                "p50": [percentile(samples[name][i], 0.5) for i in used],
                "p95": [percentile(samples[name][i], 0.95) for i in used],
            }
            for name in order
        ],
        "runs": len(runs),
    }


@dataclass
class RunPage:
    run: ProbeRun
    alert: Alert | None
    failing_step: dict[str, Any] | None
    pod_events: list[dict[str, Any]]
    pod: dict[str, Any]


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
    )


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


def visible_alert(*, user: Any, alert_id: int) -> Alert | None:
    return (
        Alert.objects.filter(_visible(user), pk=alert_id)
        .select_related("case", "cluster")
        .defer("cluster__kubeconfig")
        .first()
    )
