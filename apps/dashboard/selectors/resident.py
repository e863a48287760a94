"""Resident probes on the dashboards: the probe page (charts per cluster) and their columns
in the overview matrix (one per resident probe, a cell per cluster it runs in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.alerts.models import Alert, AlertState
from apps.dashboard import access
from apps.resident.models import ResidentProbe, ResidentTarget
from apps.resident.selectors import resident_recent, resident_series

PAGE_STEP = 10  # seconds per point on the probe page
PAGE_SPAN = timedelta(hours=1)
OVERVIEW_MINUTES = 5


@dataclass
class TargetLine:
    probe: str
    probe_id: int
    cluster: str
    cluster_id: int
    state: str  # up/down at the newest window, "" before any
    availability: float | None  # last OVERVIEW_MINUTES minutes
    p99_ms: float | None
    alert_state: str
    last_sample_at: datetime | None
    samples_dropped: int
    ready: str
    apply_error: str


@dataclass
class ResidentPage:
    probe: ResidentProbe
    lines: list[TargetLine]
    charts: dict[str, Any] = field(default_factory=dict)


def _lines(targets: list[ResidentTarget], now: datetime) -> list[TargetLine]:
    probe_ids = sorted({t.probe_id for t in targets})
    recent = resident_recent(minutes=OVERVIEW_MINUTES, probe_ids=probe_ids, now=now)
    subjects = {t.probe_id: t.probe.alert_case_id or 0 for t in targets}
    alerts = {
        (case_id, cluster_id): state
        for case_id, cluster_id, state in Alert.objects.filter(
            case_id__in=[c for c in subjects.values() if c]
        ).values_list("case_id", "cluster_id", "state")
    }
    lines = []
    for t in targets:
        numbers = recent.get((t.probe_id, t.cluster_id), {})
        lines.append(
            TargetLine(
                probe=t.probe.name,
                probe_id=t.probe_id,
                cluster=t.cluster.name,
                cluster_id=t.cluster_id,
                state=t.state,
                availability=numbers.get("availability"),
                p99_ms=numbers.get("p99_ms"),
                alert_state=alerts.get((subjects[t.probe_id], t.cluster_id), AlertState.OK),
                last_sample_at=t.last_sample_at,
                samples_dropped=t.samples_dropped,
                ready=t.ready,
                apply_error=t.apply_error,
            )
        )
    return lines


def _visible(user: Any) -> Any:
    targets = ResidentTarget.objects.select_related("probe", "cluster").filter(probe__enabled=True)
    visible = access.visible_cluster_ids(user)
    if visible is not None:
        targets = targets.filter(cluster_id__in=visible)
    return targets


def resident_page(*, user: Any, probe: ResidentProbe, now: datetime | None = None) -> ResidentPage:
    """Its clusters the user may see, with the last hour's availability and latency each."""
    now = now or timezone.now()
    targets = list(_visible(user).filter(probe=probe).order_by("cluster__name"))
    since = now - PAGE_SPAN
    clusters = []
    for target in targets:
        series = resident_series(
            probe=probe, cluster=target.cluster, since=since, until=now, step=PAGE_STEP
        )
        columns = series.columns()
        clusters.append(
            {
                "id": target.cluster_id,
                "name": target.cluster.name,
                "t": columns["t"],
                "availability": columns["availability"],
                "p50": columns["p50_ms"],
                "p99": columns["p99_ms"],
                "count": columns["count"],
            }
        )
    return ResidentPage(
        probe=probe,
        lines=_lines(targets, now),
        charts={"step": PAGE_STEP, "span": int(PAGE_SPAN.total_seconds()), "clusters": clusters},
    )


# ------------------------------------------------------------------ overview matrix

# No sample for this long: the cell is stale (grey), whatever the newest window said.
STALE_AFTER = timedelta(minutes=OVERVIEW_MINUTES)
CELL_STATES = ("firing", "stale", "nodata", "down", "up")  # the first that applies wins


@dataclass(slots=True)
class ResidentCell:
    probe_id: int
    cluster_id: int
    state: str  # one of CELL_STATES
    availability: float | None  # % over the last OVERVIEW_MINUTES minutes
    p99_ms: float | None
    alert_state: str
    severity: str
    last_sample_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "probe_id": self.probe_id,
            "cluster_id": self.cluster_id,
            "state": self.state,
            "availability": self.availability,
            "p99_ms": self.p99_ms,
            "alert_state": self.alert_state,
            "severity": self.severity,
            "last_sample_at": self.last_sample_at.isoformat() if self.last_sample_at else None,
        }


@dataclass(frozen=True)
class ResidentColumn:
    probe_id: int
    name: str
    alert_case_id: int | None  # its alerts' case: live cell pushes of that case concern it


@dataclass
class ResidentMatrix:
    columns: list[ResidentColumn]
    cells: dict[tuple[int, int], ResidentCell]  # (probe id, cluster id)


def _cell_state(
    state: str, last_sample_at: datetime | None, alert_state: str, now: datetime
) -> str:
    if alert_state == AlertState.FIRING:
        return "firing"
    if last_sample_at is None:
        return "nodata"
    if now - last_sample_at > STALE_AFTER:
        return "stale"
    return "down" if state == "down" else "up"


def resident_matrix(
    *, user: Any, cluster_ids: set[int] | None = None, now: datetime | None = None
) -> ResidentMatrix:
    """The overview's resident columns: each enabled probe with a target among the user's
    clusters (among `cluster_ids`, the matrix's rows, when given), and a cell per target.

    A cell is firing (a resident alert rule fires: red), stale (no sample for
    STALE_AFTER: grey), nodata (never reported: grey), down or up (the newest window),
    with the availability and p99 of the last OVERVIEW_MINUTES minutes. Three queries.
    """
    now = now or timezone.now()
    rows = ResidentTarget.objects.filter(probe__enabled=True).order_by()
    visible = access.visible_cluster_ids(user)
    if visible is not None:
        rows = rows.filter(cluster_id__in=visible)
    targets = [
        row
        for row in rows.values_list(
            "probe_id", "cluster_id", "state", "last_sample_at", "probe__name", "probe__alert_case"
        )
        if cluster_ids is None or row[1] in cluster_ids
    ]
    probes = {row[0]: (row[4], row[5]) for row in targets}
    recent = resident_recent(minutes=OVERVIEW_MINUTES, probe_ids=sorted(probes), now=now)
    subjects = {case_id: pk for pk, (_, case_id) in probes.items() if case_id}
    alerts = {
        (subjects[case_id], cluster_id): (state, severity)
        for case_id, cluster_id, state, severity in Alert.objects.filter(
            case_id__in=list(subjects)
        ).values_list("case_id", "cluster_id", "state", "severity")
    }
    cells = {}
    for probe_id, cluster_id, state, last_sample_at, _, _ in targets:
        alert_state, severity = alerts.get((probe_id, cluster_id), (AlertState.OK, ""))
        numbers = recent.get((probe_id, cluster_id), {})
        cells[probe_id, cluster_id] = ResidentCell(
            probe_id=probe_id,
            cluster_id=cluster_id,
            state=_cell_state(state, last_sample_at, alert_state, now),
            availability=numbers.get("availability"),
            p99_ms=numbers.get("p99_ms"),
            alert_state=str(alert_state),
            severity=str(severity),
            last_sample_at=last_sample_at,
        )
    columns = [
        ResidentColumn(probe_id=pk, name=name, alert_case_id=case_id)
        for pk, (name, case_id) in sorted(probes.items(), key=lambda item: item[1][0])
    ]
    return ResidentMatrix(columns=columns, cells=cells)
