"""The health matrix: its filters, scope, cells (state.json, cluster and case pages) and
sections. The overview itself is built by grid.py.

The cells come from `Alert` rows, one per (case, cluster) pair and kept current
after every finished run, so all cells are one query whatever the number of
clusters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from django.db.models import QuerySet

from apps.alerts.models import PROBLEM_STATES, Alert, AlertState, Severity
from apps.catalog.filters import CaseFilter
from apps.catalog.models import Case, CaseSet
from apps.clusters.filters import ClusterFilter
from apps.clusters.models import Cluster, ClusterGroup
from apps.dashboard import access
from apps.runs.models import RunState

RED_STATES = frozenset({RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT})
SEVERITIES = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
NO_REGION = "(no region)"
NO_GROUP = "(no group)"


@dataclass(frozen=True)
class Filters:
    """What the matrix pages show; parsed from the query string by forms.FilterForm."""

    # Valid parameters of the API's ClusterFilter and CaseFilter, applied by those sets.
    clusters: Mapping[str, str] = field(default_factory=dict)
    cases: Mapping[str, str] = field(default_factory=dict)
    state: str = ""  # "", failing, alerting, firing, ok
    group_by: str = "region"  # region | group
    # Columns: every enabled case, not only those scheduled on a shown cluster or with results.
    all_cases: bool = False
    order: str = ""  # "" (by name) | problems (rows with a red or alerting cell first)


def filter_clusters(clusters: QuerySet[Cluster], filters: Filters) -> QuerySet[Cluster]:
    """`clusters` narrowed as /api/v1/clusters/ narrows them for the same parameters."""
    return (
        ClusterFilter(data=filters.clusters, queryset=clusters).qs if filters.clusters else clusters
    )


def filter_cases(cases: QuerySet[Case], filters: Filters) -> QuerySet[Case]:
    """`cases` narrowed as /api/v1/cases/ narrows them for the same parameters."""
    return CaseFilter(data=filters.cases, queryset=cases).qs if filters.cases else cases


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
class FilterOptions:
    groups: list[str]
    regions: list[str]
    environments: list[str]
    case_sets: list[str]


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
class Scope:
    groups: list[ClusterGroup]  # the groups the user may use (all, or their viewable ones)
    clusters: QuerySet[Cluster]
    cases: QuerySet[Case]


def scope_of(user: Any, filters: Filters, *, case: Case | None, cluster: Cluster | None) -> Scope:
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
    clusters = filter_clusters(clusters, filters)
    cases = Case.objects.all() if case is not None else Case.objects.filter(enabled=True)
    if case is not None:
        cases = cases.filter(pk=case.pk)
    cases = filter_cases(cases, filters)
    return Scope(groups=groups, clusters=clusters, cases=cases)


def _cells(scope: Scope) -> list[Cell]:
    rows = (
        Alert.objects.filter(
            cluster_id__in=scope.clusters.values("pk"), case_id__in=scope.cases.values("pk")
        )
        .order_by()
        .values_list("case_id", "cluster_id", "latest_state", "state", "severity", "latest_run_id")
    )
    return [Cell(*row) for row in rows]


def _rows(scope: Scope, cells: list[Cell], *, with_labels: bool) -> tuple[list[Row], dict]:
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


class Placed(Protocol):
    """What sectioning needs of a row (Row here, GridRow in grid.py)."""

    cluster_id: int
    region: str
    also_in: list[str]


R = TypeVar("R", bound=Placed)


def sections_by_group(
    rows: list[R], labels: dict[int, dict[str, str]], groups: list[ClusterGroup]
) -> list[tuple[str, list[R]]]:
    """Each cluster once, under the first of its groups by name (ids must stay unique)."""
    through = ClusterGroup.members.through
    members: dict[int, set[int]] = defaultdict(set)
    for group_id, cluster_id in through.objects.filter(
        clustergroup_id__in=[g.pk for g in groups]
    ).values_list("clustergroup_id", "cluster_id"):
        members[cluster_id].add(group_id)
    sections: dict[str, list[R]] = {g.name: [] for g in groups}
    leftover: list[R] = []
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
    out = [(name, section_rows) for name, section_rows in sections.items() if section_rows]
    if leftover:
        out.append((NO_GROUP, leftover))
    return out


def sections_by_region(rows: list[R]) -> list[tuple[str, list[R]]]:
    sections: dict[str, list[R]] = defaultdict(list)
    for row in rows:
        sections[row.region or NO_REGION].append(row)
    return [
        (title, sections[title]) for title in sorted(sections, key=lambda t: (t == NO_REGION, t))
    ]


def options_of(user_clusters: QuerySet[Cluster], groups: list[ClusterGroup]) -> FilterOptions:
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


def matrix_cells(
    *, user: Any, filters: Filters, case: Case | None = None, cluster: Cluster | None = None
) -> list[Cell]:
    """The cells a page shows, for the live script's resync (state.json)."""
    scope = scope_of(user, filters, case=case, cluster=cluster)
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
    return options_of(access.clusters_of_groups(viewable), groups)
