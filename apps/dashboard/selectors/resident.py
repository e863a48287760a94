"""Resident probes on the dashboards: the probe page (charts per cluster) and the overview list."""

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
OVERVIEW_ROWS = 500


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


def resident_overview(*, user: Any, now: datetime | None = None) -> list[TargetLine]:
    """Every (enabled probe, visible cluster) that has a target row, worst first; a few queries."""
    now = now or timezone.now()
    targets = list(_visible(user).order_by("probe__name", "cluster__name")[:OVERVIEW_ROWS])
    lines = _lines(targets, now)
    lines.sort(key=lambda line: (line.alert_state == AlertState.OK, line.state != "down"))
    return lines


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
