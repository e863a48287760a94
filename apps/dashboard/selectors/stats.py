"""Durations and success rates per window, and a case's step latency chart.

The last hour from the runs (percentile_cont on Postgres; computed in Python
on SQLite, for trials), 24 h and 7 d from the hourly rollups (apps/runs/rollups.py).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Q, QuerySet
from django.utils import timezone

from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.runs.models import FINISHED_STATES, ProbeRun, RunRollup, RunState
from apps.runs.rollups import hour_of, rollups_totals

WINDOWS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)))
CHART_RUNS = 500
CHART_SPAN = timedelta(hours=24)
CHART_BUCKETS = 24
CHART_MAX_STEPS = 12


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
    *,
    runs: QuerySet[ProbeRun],
    rollups: QuerySet[RunRollup],
    key: str,
    now: datetime | None = None,
) -> dict[int, dict[str, WindowStats]]:
    """Per `key` (case_id or cluster_id): runs, successes, p50/p95 duration for 1 h, 24 h, 7 d.

    Runs count by when they were created and only once finished. 1 h is exact,
    from `runs`; 24 h and 7 d are whole clock hours (the current one so far and
    the 23, or 167, before it) from `rollups` (the same pairs' RunRollup rows,
    apps/runs/rollups.py), whose percentiles are within one histogram bucket and
    whose newest runs lag by the settle time: their cost does not grow with the
    runs table.
    """
    now = now or timezone.now()
    out: dict[int, dict[str, WindowStats]] = defaultdict(_empty_stats)
    for group_id, stats in _raw_stats(runs=runs, key=key, now=now).items():
        out[group_id]["1h"] = stats
    current = hour_of(now)
    since = {name: current - span + timedelta(hours=1) for name, span in WINDOWS[1:]}
    for group_id, windows in rollups_totals(rollups=rollups, key=key, since=since).items():
        for name, t in windows.items():
            out[group_id][name] = WindowStats(t.runs, t.succeeded, t.p50_ms, t.p95_ms)
    return dict(out)


def _raw_stats(*, runs: QuerySet[ProbeRun], key: str, now: datetime) -> dict[int, WindowStats]:
    """The last hour's stats per `key`, aggregated from the runs (percentile_cont on
    Postgres; computed here elsewhere, for SQLite trials)."""
    since = now - WINDOWS[0][1]
    finished = runs.filter(created_at__gte=since, state__in=FINISHED_STATES).order_by()
    if connection.vendor == "postgresql":
        rows = finished.values(key).annotate(
            n=Count("pk"),
            ok=Count("pk", filter=Q(state=RunState.SUCCEEDED)),
            p50=PercentileCont("duration_ms", 0.5),
            p95=PercentileCont("duration_ms", 0.95),
        )
        return {r[key]: WindowStats(r["n"], r["ok"], r["p50"], r["p95"]) for r in rows}
    out: dict[int, WindowStats] = defaultdict(WindowStats)
    samples: dict[int, list[float]] = defaultdict(list)
    for group_id, state, duration in finished.values_list(key, "state", "duration_ms"):
        out[group_id].runs += 1
        out[group_id].succeeded += state == RunState.SUCCEEDED
        if duration is not None:
            samples[group_id].append(duration)
    for group_id, values in samples.items():
        out[group_id].p50_ms = percentile(values, 0.5)
        out[group_id].p95_ms = percentile(values, 0.95)
    return dict(out)


def _empty_stats() -> dict[str, WindowStats]:
    return {name: WindowStats() for name, _ in WINDOWS}


def step_latency_series(
    *, case: Case, clusters: QuerySet[Cluster], now: datetime | None = None
) -> dict[str, Any]:
    """p50/p95 duration per step over time, from the case's last runs (at most CHART_RUNS, 24 h).

    {"x": [unix seconds per bucket], "steps": [{"name", "p50": [...], "p95": [...],
    "failed": [...]}], "runs": n}. A failed step's duration is how long it took to fail (often
    a few ms): it is left out of p50/p95, where it would read as faster, and plotted apart
    as "failed" (the slowest failure of the bucket; None where none failed).
    """
    now = now or timezone.now()
    recent = ProbeRun.objects.filter(
        case=case,
        state__in=FINISHED_STATES,
        created_at__gte=now - CHART_SPAN,
        cluster_id__in=clusters.values("pk"),
    )
    runs = list(recent.order_by("-created_at").values_list("created_at", "steps")[:CHART_RUNS])
    if not runs:
        return {"x": [], "steps": [], "runs": 0}
    start = runs[-1][0].timestamp()
    end = runs[0][0].timestamp()
    width = max((end - start) / CHART_BUCKETS, 1.0)
    edges = [start + width * (i + 1) for i in range(CHART_BUCKETS - 1)]
    samples: dict[str, list[list[float]]] = {}
    failures: dict[str, list[list[float]]] = {}
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
                failures[name] = [[] for _ in range(CHART_BUCKETS)]
                order.append(name)
            (failures if step.get("ok") is False else samples)[name][bucket].append(float(duration))
    used = [i for i in range(CHART_BUCKETS) if any(samples[n][i] or failures[n][i] for n in order)]
    return {
        "x": [round(start + width * (i + 0.5)) for i in used],
        "steps": [
            {
                "name": name,
                "p50": [percentile(samples[name][i], 0.5) for i in used],
                "p95": [percentile(samples[name][i], 0.95) for i in used],
                "failed": [max(failures[name][i], default=None) for i in used],
            }
            for name in order
        ],
        "runs": len(runs),
    }
