"""Resident probe reads: series over time, the latest state per target, which clusters."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.clusters.models import Cluster
from apps.clusters.selectors import clusters_for_targets
from apps.resident import storage
from apps.resident.models import ResidentProbe, ResidentTarget

MAX_POINTS = 20_000
# Steps under a minute come from the raw windows, so only over short ranges.
MAX_RAW_RANGE = timedelta(hours=24)
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
STEP_RE = re.compile(r"^(\d+)(s|m|h|d)?$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class SeriesParamError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_time(value: str, name: str) -> datetime:
    """ISO 8601 (a zone, or UTC) or unix seconds."""
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        raise SeriesParamError(
            name, "Must be an ISO 8601 time (e.g. 2026-12-07T10:00:00Z) or unix seconds."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_step(value: str) -> int:
    match = STEP_RE.match(value.strip())
    if not match:
        raise SeriesParamError("step", "Must be seconds or a duration like 30s, 1m, 5m, 1h, 1d.")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds < 1:
        raise SeriesParamError("step", "Must be at least 1 second.")
    return seconds


def auto_step(span: timedelta, target_points: int = 1500) -> int:
    for step in NICE_STEPS:
        if span.total_seconds() / step <= target_points:
            return step
    return NICE_STEPS[-1]


@dataclass
class Series:
    """Columns for charts: bucket start (unix s), availability %, p50/p99 ms, sample count."""

    step: int
    source: str  # "rollup" (per-minute rows) or "raw" (windows)
    t: list[int] = field(default_factory=list)
    availability: list[float | None] = field(default_factory=list)
    p50_ms: list[float | None] = field(default_factory=list)
    p99_ms: list[float | None] = field(default_factory=list)
    max_ms: list[float | None] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    # Postgres: the columns above as JSON text, straight from the database (the lists
    # stay empty); columns() reads them either way.
    columns_json: str | None = None

    def columns(self) -> dict[str, Any]:
        if self.columns_json is not None:
            loaded: dict[str, Any] = json.loads(self.columns_json)
            return loaded
        names = ("t", "availability", "p50_ms", "p99_ms", "max_ms", "count")
        return {name: getattr(self, name) for name in names}


def _round(value: float) -> float:
    return round(value, 3)


def resident_series(
    *, probe: ResidentProbe, cluster: Cluster | None, since: datetime, until: datetime, step: int
) -> Series:
    """Per step: availability (1 - failures/count, in %), latency and sample count.

    Steps that are whole minutes are read from the per-minute rollups, others
    from the raw windows. p50 and p99 are the count-weighted means of the
    windows' own percentiles (an approximation: percentiles of a longer span
    cannot be rebuilt from those of its windows); max_ms is the exact maximum.
    The same sums are kept in both tables, so both sources give equal answers.
    """
    if until <= since:
        raise SeriesParamError("to", "Must be after from.")
    span = until - since
    if span.total_seconds() / step > MAX_POINTS:
        raise SeriesParamError(
            "step", f"Too fine for this range: at most {MAX_POINTS} points (use a larger step)."
        )
    rollup = step % 60 == 0
    if not rollup and span > MAX_RAW_RANGE:
        raise SeriesParamError(
            "step", "Steps under a minute (or not whole minutes) cover at most 24 hours."
        )
    first = math.floor(since.timestamp() / step) * step
    columns = storage.series_columns(
        probe_id=probe.pk,
        cluster_id=cluster.pk if cluster else None,
        first=first,
        until=until,
        step=step,
        rollup=rollup,
    )
    if columns is not None:  # Postgres computed it whole
        return Series(step=step, source="rollup" if rollup else "raw", columns_json=columns)
    rows = storage.rows_read(
        probe_id=probe.pk,
        cluster_id=cluster.pk if cluster else None,
        since=datetime.fromtimestamp(first, tz=UTC),
        until=until,
        rollup=rollup,
    )
    sums: dict[int, list[Any]] = {}
    for row in rows:
        bucket = row.epoch - row.epoch % step
        acc = sums.get(bucket)
        if acc is None:
            sums[bucket] = [row.count, row.failures, row.p50_sum, row.p99_sum, row.max_ms]
        else:
            acc[0] += row.count
            acc[1] += row.failures
            acc[2] += row.p50_sum
            acc[3] += row.p99_sum
            if row.max_ms is not None and (acc[4] is None or row.max_ms > acc[4]):
                acc[4] = row.max_ms
    series = Series(step=step, source="rollup" if rollup else "raw")
    end = until.timestamp()
    bucket = first
    while bucket < end:
        acc = sums.get(bucket)
        series.t.append(bucket)
        if acc and acc[0]:
            count, failures, p50_sum, p99_sum, top = acc
            series.availability.append(_round(100.0 * (1 - failures / count)))
            series.p50_ms.append(_round(p50_sum / count))
            series.p99_ms.append(_round(p99_sum / count))
            series.max_ms.append(top)
            series.count.append(count)
        else:
            series.availability.append(None)
            series.p50_ms.append(None)
            series.p99_ms.append(None)
            series.max_ms.append(None)
            series.count.append(0)
        bucket += step
    return series


def resident_series_params(params: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """from/to/step of a query string, with defaults: the last hour, about 1500 points."""
    now = now or timezone.now()
    until = parse_time(params["to"], "to") if params.get("to") else now
    since = parse_time(params["from"], "from") if params.get("from") else until - timedelta(hours=1)
    if until <= since:
        raise SeriesParamError("to", "Must be after from.")
    step = parse_step(params["step"]) if params.get("step") else auto_step(until - since)
    return {"since": since, "until": until, "step": step}


def resident_probe_clusters(*, probe: ResidentProbe) -> QuerySet[Cluster]:
    """The enabled clusters a probe targets (explicit and through groups)."""
    return clusters_for_targets(
        clusters=probe.clusters.all(), groups=probe.groups.all(), enabled_only=True
    )


def resident_targets(*, probe: ResidentProbe) -> list[ResidentTarget]:
    return list(
        ResidentTarget.objects.filter(probe=probe)
        .select_related("cluster")
        .order_by("cluster__name")
    )


def resident_recent(
    *, minutes: int = 5, probe_ids: list[int] | None = None, now: datetime | None = None
) -> dict[tuple[int, int], dict[str, Any]]:
    """Availability and p99 per (probe, cluster) over the last minutes (overview, pages)."""
    now = now or timezone.now()
    out = {}
    for key, row in storage.totals_since(
        since=now - timedelta(minutes=minutes), probe_ids=probe_ids
    ).items():
        out[key] = {
            "count": row.count,
            "availability": _round(100.0 * (1 - row.failures / row.count)) if row.count else None,
            "p99_ms": _round(row.p99_sum / row.count) if row.count else None,
            "max_ms": row.max_ms,
        }
    return out
