"""The overview matrix as a compact grid: one short string of state codes per cluster.

At 10,000 clusters × 20 cases the matrix is 200,000 cells. Rendered as HTML
that is ~33 MB and 1.6 s of server time; as Python objects, ~1 s before any
HTML. Here Postgres builds each row's cells into two strings (``string_agg``
over clusters × cases left-joined to their `Alert` rows), so Python handles
10,000 rows, never 200,000 cells, and the page ships those strings for the
browser to draw (static/dashboard/grid.js) or for the paginated table.

Each cell is three characters: run state, alert state, severity
(`RUN_CODES`, `ALERT_CODES`, `SEVERITY_CODES`). Run ids are a comma-separated
string per row, empty where a pair has no run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.alerts.models import Alert
from apps.clusters.models import Cluster
from apps.dashboard import access
from apps.dashboard.selectors import matrix
from apps.dashboard.selectors.matrix import NO_GROUP, NO_REGION, Cell, FilterOptions, Filters
from apps.dashboard.selectors.resident import ResidentMatrix
from apps.scheduling.selectors import scheduled_pairs

RUN_CODES = {
    "succeeded": "S",
    "failed": "F",
    "error": "E",
    "timed_out": "T",
    "running": "R",
    "dispatched": "D",
    "pending": "P",
}
UNSCHEDULED = "u"  # no result, and no enabled binding runs the pair
NO_RESULT = "-"
ALERT_CODES = {"ok": "o", "firing": "f", "acknowledged": "a", "silenced": "s"}
SEVERITY_CODES = {"critical": "c", "warning": "w", "info": "i"}
EMPTY = NO_RESULT * 3  # a pair without an Alert row
WORK_MEM = "64MB"
RED = frozenset("FET")
ALERTING = frozenset("fas")
RUN_STATES = {code: state for state, code in RUN_CODES.items()}
ALERT_STATES = {code: state for state, code in ALERT_CODES.items()}
SEVERITIES = {code: severity for severity, code in SEVERITY_CODES.items()}


@dataclass(slots=True)
class GridRow:
    cluster_id: int
    name: str
    display_name: str
    region: str
    environment: str
    codes: str  # three characters per shown case, in column order
    runs: str  # run ids, comma-separated, in column order ("" where none)
    unreachable_since: datetime | None = None
    unreachable_error: str = ""
    also_in: list[str] = field(default_factory=list)

    @property
    def problem(self) -> bool:
        return not RED.isdisjoint(self.codes[0::3]) or not ALERTING.isdisjoint(self.codes[1::3])

    def cell(self, index: int, case_id: int) -> Cell | None:
        """The cell of column `index` as the table fallback draws it; None: no Alert row."""
        code = self.codes[3 * index : 3 * index + 3]
        if code[1] == NO_RESULT:  # no Alert row (scheduled or not)
            return None
        run = self.runs.split(",")[index]
        return Cell(
            case_id=case_id,
            cluster_id=self.cluster_id,
            run_state=RUN_STATES.get(code[0], ""),
            alert_state=ALERT_STATES.get(code[1], "ok"),
            severity=SEVERITIES.get(code[2], ""),
            run_id=int(run) if run else None,
        )


@dataclass
class Grid:
    cases: list[tuple[int, str]]
    sections: list[tuple[str, list[GridRow]]]
    counters: dict[str, int]
    options: FilterOptions
    unscheduled_cases: int = 0

    @property
    def row_count(self) -> int:
        return sum(len(rows) for _title, rows in self.sections)


def _code_sql(column: str, codes: dict[str, str], default: str) -> str:
    # Codes and states are the constants above: nothing from the user enters the SQL text.
    whens = " ".join(f"WHEN '{state}' THEN '{code}'" for state, code in codes.items())
    return f"CASE a.{column} {whens} ELSE '{default}' END"


def _fetch_postgres(clusters: Any, case_ids: list[int], with_labels: bool) -> list[tuple]:
    try:
        cluster_sql, params = clusters.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing (an unknown group)
        return []
    labels = ", cl.labels" if with_labels else ""
    cell = (
        f"CASE WHEN a.id IS NULL THEN '{EMPTY}' ELSE "
        f"{_code_sql('latest_state', RUN_CODES, NO_RESULT)} || "
        f"{_code_sql('state', ALERT_CODES, 'o')} || "
        f"{_code_sql('severity', SEVERITY_CODES, NO_RESULT)} END"
    )
    # Rows come sorted by (cluster, column) from the subquery, so the aggregates need no
    # ORDER BY of their own (a sort per cluster; Postgres keeps the subquery's order).
    sql = f"""
        SELECT cl.id, cl.name, cl.display_name, cl.region, cl.environment,
               cl.breaker_open_since, cl.breaker_last_error{labels}, t.codes, t.runs
        FROM (
            SELECT cluster_id, string_agg(code, '') AS codes, string_agg(run, ',') AS runs
            FROM (
                SELECT cl.id AS cluster_id, {cell} AS code,
                       COALESCE(a.latest_run_id::text, '') AS run
                FROM {Cluster._meta.db_table} cl
                CROSS JOIN unnest(%s::bigint[]) WITH ORDINALITY AS k(case_id, ord)
                LEFT JOIN {Alert._meta.db_table} a
                    ON a.cluster_id = cl.id AND a.case_id = k.case_id
                WHERE cl.id IN ({cluster_sql})
                ORDER BY cl.id, k.ord
            ) cells
            GROUP BY cluster_id
        ) t
        JOIN {Cluster._meta.db_table} cl ON cl.id = t.cluster_id
        ORDER BY cl.name
    """  # noqa: S608 - table names and codes are ours; values are parameters
    with transaction.atomic(), connection.cursor() as cursor:
        # 200,000 joined cells: sorted and hashed in memory, not in temporary files.
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute(sql, [case_ids, *params])
        return cursor.fetchall()


def _fetch_python(clusters: Any, case_ids: list[int], with_labels: bool) -> list[tuple]:
    """The same rows without Postgres' aggregates (SQLite trials: small fleets)."""
    index = {case_id: i for i, case_id in enumerate(case_ids)}
    cells: dict[int, list[str]] = {}
    runs: dict[int, list[str]] = {}
    for case_id, cluster_id, latest, state, severity, run_id in Alert.objects.filter(
        cluster_id__in=clusters.values("pk"), case_id__in=case_ids
    ).values_list("case_id", "cluster_id", "latest_state", "state", "severity", "latest_run_id"):
        row_cells = cells.setdefault(cluster_id, [EMPTY] * len(case_ids))
        row_runs = runs.setdefault(cluster_id, [""] * len(case_ids))
        row_cells[index[case_id]] = (
            RUN_CODES.get(latest, NO_RESULT)
            + ALERT_CODES.get(state, "o")
            + SEVERITY_CODES.get(severity, NO_RESULT)
        )
        row_runs[index[case_id]] = str(run_id or "")
    fields = ["pk", "name", "display_name", "region", "environment"]
    fields += ["breaker_open_since", "breaker_last_error"] + (["labels"] if with_labels else [])
    empty, no_runs = EMPTY * len(case_ids), ",".join([""] * len(case_ids))
    return [
        (
            *values,
            "".join(cells[values[0]]) if values[0] in cells else empty,
            ",".join(runs[values[0]]) if values[0] in runs else no_runs,
        )
        for values in clusters.order_by("name").values_list(*fields)
    ]


def _matches(row: GridRow, state: str) -> bool:
    if not state:
        return True
    runs, alerts = row.codes[0::3], row.codes[1::3]
    if state == "failing":
        return not RED.isdisjoint(runs)
    if state == "alerting":
        return not ALERTING.isdisjoint(alerts)
    if state == "firing":
        return "f" in alerts
    return not row.problem  # ok: all green


def _mark_unscheduled(rows: list[GridRow], case_ids: list[int], scheduled: set) -> None:
    """Cells without an Alert row of a pair no enabled binding runs: "u" instead of "-"."""
    for row in rows:
        at = row.codes.find(EMPTY)
        if at < 0:
            continue
        codes = list(row.codes)
        for i, case_id in enumerate(case_ids):
            if row.codes[3 * i : 3 * i + 3] == EMPTY and (case_id, row.cluster_id) not in scheduled:
                codes[3 * i] = UNSCHEDULED
        row.codes = "".join(codes)


def _keep_columns(rows: list[GridRow], keep: list[int]) -> None:
    for row in rows:
        runs = row.runs.split(",")
        row.codes = "".join(row.codes[3 * i : 3 * i + 3] for i in keep)
        row.runs = ",".join(runs[i] for i in keep)


def grid_overview(*, user: Any, filters: Filters) -> Grid:
    """The overview's rows, columns, counters and filter options; about ten queries."""
    scope = matrix.scope_of(user, filters, case=None, cluster=None)
    enabled_cases = list(scope.cases.order_by("name").values_list("pk", "name"))
    case_ids = [pk for pk, _name in enabled_cases]
    by_group = filters.group_by == "group"
    fetch = _fetch_postgres if connection.vendor == "postgresql" and case_ids else _fetch_python
    labels: dict[int, dict[str, str]] = {}
    rows: list[GridRow] = []
    for values in fetch(scope.clusters, case_ids, by_group):
        cluster_id, name, display_name, region, environment = values[:5]
        row = GridRow(
            cluster_id, name, display_name, region, environment, values[-2] or "", values[-1] or ""
        )
        if values[5] is not None:
            row.unreachable_since, row.unreachable_error = values[5], values[6]
        if by_group:
            # A raw cursor gets jsonb as text (Django's JSONField decodes it; this query is SQL).
            raw = values[7] or {}
            labels[row.cluster_id] = json.loads(raw) if isinstance(raw, str) else raw
        rows.append(row)
    rows = [r for r in rows if _matches(r, filters.state)]
    shown = {r.cluster_id for r in rows}
    # Which pairs bindings run is a set as large as the fleet (200,000 pairs): asked
    # only when a cell has no result or a column no data, which a busy fleet rarely has.
    with_data = {
        case_id
        for i, case_id in enumerate(case_ids)
        if any(r.codes[3 * i + 1] != NO_RESULT for r in rows)  # an Alert row: an alert code
    }
    gaps = any(EMPTY in r.codes for r in rows)
    needed = gaps or (len(with_data) < len(case_ids) and not (filters.all_cases or filters.cases))
    scheduled = scheduled_pairs() if needed else set()
    if gaps:
        _mark_unscheduled(rows, case_ids, scheduled)
    # As before: a case scheduled on none of these clusters and without results is left
    # out as a column, unless every case is asked for or cases are filtered.
    keep = list(range(len(case_ids)))
    if not (filters.all_cases or filters.cases) and len(with_data) < len(case_ids):
        useful = with_data | {case for case, cluster in scheduled if cluster in shown}
        keep = [i for i, case_id in enumerate(case_ids) if case_id in useful]
        if len(keep) < len(case_ids):
            _keep_columns(rows, keep)
    if filters.order == "problems":
        rows.sort(key=lambda r: not r.problem)  # stable: by name within each half
    sections = (
        matrix.sections_by_group(rows, labels, scope.groups)
        if by_group
        else matrix.sections_by_region(rows)
    )
    counters = {str(s): 0 for s in matrix.SEVERITIES}
    for row in rows:
        for severity, code in SEVERITY_CODES.items():
            counters[severity] += row.codes.count("f" + code)
    viewable = None if access.sees_all_clusters(user) else scope.groups
    return Grid(
        cases=[enabled_cases[i] for i in keep],
        sections=sections,
        counters=counters,
        options=matrix.options_of(access.clusters_of_groups(viewable), scope.groups),
        unscheduled_cases=len(case_ids) - len(keep),
    )


def row_title(row: GridRow) -> str:
    also = _("also in %(groups)s") % {"groups": ", ".join(row.also_in)} if row.also_in else ""
    parts = (row.display_name, row.environment, row.region, also)
    return " · ".join(part for part in parts if part)


def section_title(title: str) -> str:
    """The selectors' placeholder section titles, in the page's language."""
    return {NO_REGION: _("(no region)"), NO_GROUP: _("(no group)")}.get(title, title)


def _resident_json(resident: ResidentMatrix | None) -> dict[str, list[list[Any]]]:
    """The resident columns [[probe_id, name, alert_case_id]] and their cells, one list
    per target [probe_id, cluster_id, state, availability, p99_ms, alert_state]: a
    probe runs in some clusters only, so a flat list, not a string per row."""
    if resident is None:
        return {"columns": [], "cells": []}
    return {
        "columns": [[c.probe_id, c.name, c.alert_case_id] for c in resident.columns],
        "cells": [
            [
                c.probe_id,
                c.cluster_id,
                c.state,
                None if c.availability is None else round(c.availability, 3),
                None if c.p99_ms is None else round(c.p99_ms, 1),
                c.alert_state,
            ]
            for c in resident.cells.values()
        ],
    }


def grid_json(grid: Grid, resident: ResidentMatrix | None = None) -> dict[str, Any]:
    """The grid as the browser reads it (static/dashboard/grid.js): lists, not objects,
    so 10,000 rows stay a few megabytes before gzip. Resident probes are columns after
    the cases (`resident`, from selectors.resident.resident_matrix)."""
    sections = []
    for title, rows in grid.sections:
        out = []
        for row in rows:
            since = timezone.localtime(row.unreachable_since) if row.unreachable_since else None
            out.append(
                [
                    row.cluster_id,
                    row.name,
                    row_title(row),
                    row.codes,
                    row.runs,
                    [since.isoformat(), f"{since:%m-%d %H:%M}", row.unreachable_error]
                    if since
                    else None,
                ]
            )
        sections.append([section_title(title), out])
    return {
        "cases": grid.cases,
        "sections": sections,
        "counters": grid.counters,
        "rows": grid.row_count,
        "unscheduled_cases": grid.unscheduled_cases,
        "resident": _resident_json(resident),
    }


def grid_slice(grid: Grid, start: int, stop: int) -> list[tuple[str, list[GridRow], int]]:
    """Rows `start`..`stop` (counted across sections): (section title, its rows here,
    all its rows)."""
    out, index = [], 0
    for title, rows in grid.sections:
        low, high = max(start - index, 0), min(stop - index, len(rows))
        if low < high:
            out.append((title, rows[low:high], len(rows)))
        index += len(rows)
    return out
