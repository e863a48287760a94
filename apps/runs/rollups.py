"""Hourly rollups of finished runs per (case, cluster): what the 24 h and 7 d statistics read.

A row of RunRollup sums up the finished runs of one pair created in one clock
hour: counts per outcome, duration count/sum/max and a duration histogram
(BOUNDS: about ten buckets a decade, so a percentile read from it is within
one bucket, ±13%, of the exact one).

Maintained incrementally from the database, like the alert sweep
(apps/alerts/judging.py): a watermark (RunWatermark "rollups") says how far
finished runs have been counted, in (finished_at, id) order. A pass locks it,
reads the next batch of runs finished before the settle horizon, adds them
with ONE ``INSERT … SELECT … ON CONFLICT DO UPDATE`` and moves the watermark,
in one transaction: a batch that fails rolls back both, a repeated pass finds
nothing to add, so each run is counted exactly once, whenever it finishes
(a run that finishes late is added to the hour it was created in).
``rollups_rebuild`` (the ``runs_rollup_backfill`` command) recomputes them
from the runs up to the watermark.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.runs.models import FINISHED_STATES, ProbeRun, RunRollup, RunState, RunWatermark

WATERMARK = "rollups"
BATCH = 2000
MAX_BATCHES = 20
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
# Histogram bucket i holds durations d with BOUNDS[i-1] <= d < BOUNDS[i] (ms);
# bucket 0 is below 1 ms, the last one 8,000 s and more.
BOUNDS: tuple[int, ...] = tuple(
    sorted({int(m * 10**e) for e in range(7) for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)})
)
_COUNTS = ("runs", "succeeded", "failed", "errored", "timed_out", "timed", "duration_sum")
_OUTCOME = {
    RunState.SUCCEEDED: "succeeded",
    RunState.FAILED: "failed",
    RunState.ERROR: "errored",
    RunState.TIMED_OUT: "timed_out",
}


def bucket(duration_ms: int) -> int:
    """The histogram bucket of a duration (Postgres: width_bucket over BOUNDS)."""
    return bisect.bisect_right(BOUNDS, duration_ms)


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# --- writing ---------------------------------------------------------------------------

_TABLE = RunRollup._meta.db_table
_RUNS = ProbeRun._meta.db_table
# Per (pair, hour, bucket) first, then per (pair, hour): the histogram as {bucket: count}.
_AGGREGATE_SQL = f"""
INSERT INTO {_TABLE} (case_id, cluster_id, hour, runs, succeeded, failed, errored, timed_out,
                      timed, duration_sum, duration_max, histogram)
SELECT case_id, cluster_id, hour, sum(n), sum(ok), sum(f), sum(e), sum(t), sum(timed),
       sum(dsum), max(dmax),
       coalesce(jsonb_object_agg(b::text, timed) FILTER (WHERE b IS NOT NULL), '{{}}'::jsonb)
FROM (
    SELECT case_id, cluster_id, date_trunc('hour', created_at AT TIME ZONE 'UTC')
               AT TIME ZONE 'UTC' AS hour,
           width_bucket(duration_ms, %(bounds)s::int[]) AS b,
           count(*) AS n,
           count(*) FILTER (WHERE state = 'succeeded') AS ok,
           count(*) FILTER (WHERE state = 'failed') AS f,
           count(*) FILTER (WHERE state = 'error') AS e,
           count(*) FILTER (WHERE state = 'timed_out') AS t,
           count(duration_ms) AS timed,
           coalesce(sum(duration_ms), 0) AS dsum,
           max(duration_ms) AS dmax
    FROM {_RUNS} WHERE state IN ('succeeded', 'failed', 'error', 'timed_out') AND __WHERE__
    GROUP BY 1, 2, 3, 4
) g
GROUP BY 1, 2, 3
ON CONFLICT (case_id, cluster_id, hour) DO UPDATE SET
    runs = {_TABLE}.runs + excluded.runs,
    succeeded = {_TABLE}.succeeded + excluded.succeeded,
    failed = {_TABLE}.failed + excluded.failed,
    errored = {_TABLE}.errored + excluded.errored,
    timed_out = {_TABLE}.timed_out + excluded.timed_out,
    timed = {_TABLE}.timed + excluded.timed,
    duration_sum = {_TABLE}.duration_sum + excluded.duration_sum,
    duration_max = GREATEST({_TABLE}.duration_max, excluded.duration_max),
    histogram = (
        SELECT coalesce(jsonb_object_agg(k, s), '{{}}'::jsonb) FROM (
            SELECT k, sum(v::bigint) AS s FROM (
                SELECT * FROM jsonb_each_text({_TABLE}.histogram)
                UNION ALL SELECT * FROM jsonb_each_text(excluded.histogram)
            ) u (k, v) GROUP BY k
        ) m
    )
"""  # noqa: S608 (table names only; values are parameters)


@dataclass
class _Sums:
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    errored: int = 0
    timed_out: int = 0
    timed: int = 0
    duration_sum: int = 0
    duration_max: int | None = None
    histogram: dict[str, int] = field(default_factory=dict)

    def add_run(self, state: str, duration: int | None) -> None:
        self.runs += 1
        outcome = _OUTCOME.get(RunState(state))
        if outcome:
            setattr(self, outcome, getattr(self, outcome) + 1)
        if duration is not None:
            self.timed += 1
            self.duration_sum += duration
            self.duration_max = max(self.duration_max or 0, duration)
            b = str(bucket(duration))
            self.histogram[b] = self.histogram.get(b, 0) + 1

    def add(self, other: _Sums) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.duration_max is not None:
            self.duration_max = max(self.duration_max or 0, other.duration_max)
        for b, n in other.histogram.items():
            self.histogram[b] = self.histogram.get(b, 0) + n


def _add_python(runs: QuerySet[ProbeRun]) -> None:
    """Elsewhere than Postgres (SQLite trials): sum up here, then merge row by row
    (the caller's transaction holds the watermark, so nobody writes in between)."""
    sums: dict[tuple[int, int, datetime], _Sums] = defaultdict(_Sums)
    for case_id, cluster_id, created, state, duration in runs.filter(
        state__in=FINISHED_STATES
    ).values_list("case_id", "cluster_id", "created_at", "state", "duration_ms"):
        sums[(case_id, cluster_id, hour_of(created))].add_run(state, duration)
    for (case_id, cluster_id, hour), delta in sums.items():
        row, _ = RunRollup.objects.get_or_create(case_id=case_id, cluster_id=cluster_id, hour=hour)
        total = _Sums(**{n: getattr(row, n) for n in (*_COUNTS, "duration_max", "histogram")})
        total.add(delta)
        for name, value in vars(total).items():
            setattr(row, name, value)
        row.save()


def _add(*, where: str, params: dict[str, Any], runs: QuerySet[ProbeRun]) -> None:
    """Add the finished runs selected by `where` (SQL over the runs table, Postgres)
    or `runs` (elsewhere) to the rollups."""
    if connection.vendor != "postgresql":
        _add_python(runs)
        return
    with connection.cursor() as cur:
        cur.execute(_AGGREGATE_SQL.replace("__WHERE__", where), {"bounds": list(BOUNDS), **params})


def _ensure_watermark(at: datetime = BEGINNING) -> None:
    RunWatermark.objects.bulk_create(
        [RunWatermark(name=WATERMARK, finished_at=at)], ignore_conflicts=True
    )


def _locked_watermark() -> RunWatermark | None:
    return RunWatermark.objects.select_for_update(skip_locked=True).filter(name=WATERMARK).first()


def _after(mark: RunWatermark, horizon: datetime) -> QuerySet[ProbeRun, Any]:
    """Finished runs after the watermark up to the horizon, in its order (the run_finished index)."""
    return (
        ProbeRun.objects.filter(
            finished_at__isnull=False,
            finished_at__gte=mark.finished_at,
            finished_at__lte=horizon,
        )
        .filter(Q(finished_at__gt=mark.finished_at) | Q(id__gt=mark.run_id))
        .order_by("finished_at", "id")
    )


def _horizon(now: datetime | None) -> datetime:
    # finished_at is stamped before the report's row commits (see apps/alerts/judging.py).
    return (now or timezone.now()) - timedelta(seconds=settings.KUBEPROBE_JUDGE_SETTLE_SECONDS)


def rollups_advance(
    *, now: datetime | None = None, batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> int:
    """Add the runs finished since the watermark to the rollups; returns how many.

    Bounded (max_batches transactions of `batch` runs); returns 0 at once when
    another pass holds the watermark.
    """
    horizon = _horizon(now)
    added = 0
    _ensure_watermark()
    for _ in range(max_batches):
        with transaction.atomic():
            mark = _locked_watermark()
            if mark is None:
                break
            # finished_at is not null here (the filter): typed as such.
            runs = cast(
                list[tuple[int, datetime]],
                list(_after(mark, horizon).values_list("id", "finished_at")[:batch]),
            )
            if not runs:
                break
            ids = [run_id for run_id, _ in runs]
            _add(
                where="id = ANY(%(ids)s)",
                params={"ids": ids},
                runs=ProbeRun.objects.filter(pk__in=ids),
            )
            mark.run_id, mark.finished_at = runs[-1]
            mark.moved_at = timezone.now()
            mark.save()
            added += len(runs)
        if len(runs) < batch:
            break
    return added


def rollups_rebuild(*, since: datetime | None = None, now: datetime | None = None) -> int:
    """Recompute the rollups of the hours from `since` (default: all) out of the runs
    the watermark has passed; a first rebuild puts the watermark at the settle horizon.
    Runs under the watermark's lock, so passes wait for it. Returns the rows written."""
    _ensure_watermark()
    with transaction.atomic():
        mark = RunWatermark.objects.select_for_update().get(name=WATERMARK)
        if mark.finished_at == BEGINNING and mark.run_id == 0:
            horizon = _horizon(now)
            last = ProbeRun.objects.filter(finished_at__lte=horizon).order_by("-finished_at", "-id")
            newest = cast(
                tuple[int, datetime] | None, last.values_list("id", "finished_at").first()
            )
            mark.run_id, mark.finished_at = newest or (0, horizon)
            mark.moved_at = timezone.now()
            mark.save()
        start = hour_of(since) if since is not None else BEGINNING
        RunRollup.objects.filter(hour__gte=start).delete()
        runs = ProbeRun.objects.filter(created_at__gte=start, finished_at__isnull=False).filter(
            Q(finished_at__lt=mark.finished_at)
            | Q(finished_at=mark.finished_at, id__lte=mark.run_id)
        )
        _add(
            where="created_at >= %(start)s AND finished_at IS NOT NULL"
            " AND (finished_at, id) <= (%(mark_at)s, %(mark_id)s)",
            params={"start": start, "mark_at": mark.finished_at, "mark_id": mark.run_id},
            runs=runs,
        )
        return RunRollup.objects.filter(hour__gte=start).count()


def rollups_purge(*, before: datetime) -> int:
    """Delete rollups of the hours before `before`."""
    deleted, _ = RunRollup.objects.filter(hour__lt=hour_of(before)).delete()
    return deleted


# --- reading ---------------------------------------------------------------------------


def histogram_percentile(
    histogram: dict[str, int], fraction: float, maximum: int | None
) -> float | None:
    """A percentile read from a histogram: the rank's bucket, interpolated linearly
    inside it (its top clamped to the largest duration seen)."""
    counts = sorted((int(b), n) for b, n in histogram.items() if n > 0)
    total = sum(n for _, n in counts)
    if not total:
        return None
    rank = fraction * (total - 1)
    seen = 0
    for b, n in counts:
        if rank < seen + n:
            low = float(BOUNDS[b - 1]) if b > 0 else 0.0
            high = float(BOUNDS[b]) if b < len(BOUNDS) else float(maximum or low)
            if maximum is not None:
                high = min(high, float(maximum))
                low = min(low, high)
            return low + (high - low) * (rank - seen + 0.5) / n
        seen += n
    return float(maximum) if maximum is not None else None


@dataclass
class RollupTotals:
    runs: int = 0
    succeeded: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None


def rollups_totals(
    *, rollups: QuerySet[RunRollup], key: str, since: dict[str, datetime]
) -> dict[int, dict[str, RollupTotals]]:
    """Per `key` (case_id or cluster_id) and window name: runs, successes and p50/p95
    of the rollup hours at or after the window's start (one query over the rows)."""
    oldest = min(since.values())
    sums: dict[int, dict[str, _Sums]] = defaultdict(lambda: {name: _Sums() for name in since})
    rows = rollups.filter(hour__gte=hour_of(oldest)).values_list(
        key, "hour", *_COUNTS, "duration_max", "histogram"
    )
    for row in rows.iterator(chunk_size=5000):
        group, hour = row[0], row[1]
        part = _Sums(*row[2:])
        for name, start in since.items():
            if hour >= start:
                sums[group][name].add(part)
    return {
        group: {
            name: RollupTotals(
                runs=s.runs,
                succeeded=s.succeeded,
                p50_ms=histogram_percentile(s.histogram, 0.5, s.duration_max),
                p95_ms=histogram_percentile(s.histogram, 0.95, s.duration_max),
            )
            for name, s in windows.items()
        }
        for group, windows in sums.items()
    }
