# ruff: noqa: S608 (table and column names are module constants; values are parameters)
"""Sample storage: time-partitioned tables written and read with SQL, no ORM per row.

Three tables (created by migration 0002):

* ``resident_window``: one row per aggregated window a runner sent;
* ``resident_batch``: one row per batch id, whose primary key makes a retried
  batch a no-op (INSERT … ON CONFLICT DO NOTHING, no read-then-write race);
* ``resident_minute``: per-minute rollups (sums and maxima, so that any
  coarser step is exact to compute from them), upserted with each batch.

On Postgres each is natively partitioned by day (``<table>_pYYYYMMDD``) with a
default partition as a safety net; ``partitions_ensure`` creates days ahead
(moving any rows the default partition caught for that day) and
``partitions_drop`` enforces retention by dropping whole days. On SQLite (the
trial default) they are plain tables and retention deletes rows.

A batch's rows are partitioned by the time of its first window, which a retry
carries unchanged, so the retry meets its own key in the same partition.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction

WINDOW = "resident_window"
BATCH = "resident_batch"
MINUTE = "resident_minute"
# table → its partition key column
PARTITIONED = {WINDOW: "start", BATCH: "first_start", MINUTE: "minute"}
PARTITION_RE = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    count: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    up: bool
    errors: list[dict[str, Any]]


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _dt(value: datetime) -> Any:
    """A datetime as the backend's raw cursor wants it (SQLite: naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _epoch(column: str) -> str:
    if _postgres():
        return f"extract(epoch from {column})::bigint"
    return f"CAST(strftime('%%s', {column}) AS INTEGER)"


# ------------------------------------------------------------------ writing


def batch_store(
    *,
    probe_id: int,
    cluster_id: int,
    batch_id: str,
    windows: Sequence[Window],
    dropped: int,
    now: datetime,
) -> bool:
    """Store one batch in one transaction; False if its id was stored before (nothing written)."""
    first = windows[0].start
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {BATCH} (probe_id, batch_id, first_start, received_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            [probe_id, batch_id, _dt(first), _dt(now)],
        )
        if cur.fetchone() is None:
            return False
        _insert_windows(cur, probe_id, cluster_id, windows)
        _upsert_minutes(cur, probe_id, cluster_id, windows)
        newest = max(windows, key=lambda w: w.end)
        _upsert_target(cur, probe_id, cluster_id, newest, dropped, now)
    return True


def _insert_windows(cur: Any, probe_id: int, cluster_id: int, windows: Sequence[Window]) -> None:
    errors = [json.dumps(w.errors) if w.errors else None for w in windows]
    if _postgres():
        # One statement whatever the batch size: the columns travel as arrays.
        cur.execute(
            f'INSERT INTO {WINDOW} (probe_id, cluster_id, start, "end", count, failures, '
            "p50_ms, p99_ms, max_ms, up, errors) "
            "SELECT %s, %s, s, e, c, f, p50, p99, mx, up, err::jsonb FROM unnest("
            "%s::timestamptz[], %s::timestamptz[], %s::int[], %s::int[], %s::real[], "
            "%s::real[], %s::real[], %s::bool[], %s::text[]) AS t(s, e, c, f, p50, p99, mx, up, err)",
            [
                probe_id,
                cluster_id,
                [w.start for w in windows],
                [w.end for w in windows],
                [w.count for w in windows],
                [w.failures for w in windows],
                [w.p50_ms for w in windows],
                [w.p99_ms for w in windows],
                [w.max_ms for w in windows],
                [w.up for w in windows],
                errors,
            ],
        )
        return
    cur.executemany(
        f'INSERT INTO {WINDOW} (probe_id, cluster_id, start, "end", count, failures, '
        "p50_ms, p99_ms, max_ms, up, errors) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                probe_id,
                cluster_id,
                _dt(w.start),
                _dt(w.end),
                w.count,
                w.failures,
                w.p50_ms,
                w.p99_ms,
                w.max_ms,
                w.up,
                err,
            )
            for w, err in zip(windows, errors, strict=True)
        ],
    )


def minute_sums(windows: Iterable[Window]) -> dict[datetime, list[float]]:
    """Per minute of window start: [count, failures, Σ p50·count, Σ p99·count, max]."""
    sums: dict[datetime, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0.0])
    for w in windows:
        row = sums[w.start.replace(second=0, microsecond=0)]
        row[0] += w.count
        row[1] += w.failures
        row[2] += (w.p50_ms or 0.0) * w.count
        row[3] += (w.p99_ms or 0.0) * w.count
        row[4] = max(row[4], w.max_ms or 0.0)
    return sums


def _upsert_minutes(cur: Any, probe_id: int, cluster_id: int, windows: Sequence[Window]) -> None:
    sums = minute_sums(windows)
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(sums))
    params: list[Any] = []
    for minute, (count, failures, p50_sum, p99_sum, max_ms) in sorted(sums.items()):
        params += [probe_id, cluster_id, _dt(minute), count, failures, p50_sum, p99_sum, max_ms]
    greatest = "GREATEST" if _postgres() else "MAX"
    cur.execute(
        f"INSERT INTO {MINUTE} (probe_id, cluster_id, minute, count, failures, p50_sum, "
        f"p99_sum, max_ms) VALUES {values} "
        "ON CONFLICT (probe_id, cluster_id, minute) DO UPDATE SET "
        f"count = {MINUTE}.count + excluded.count, "
        f"failures = {MINUTE}.failures + excluded.failures, "
        f"p50_sum = {MINUTE}.p50_sum + excluded.p50_sum, "
        f"p99_sum = {MINUTE}.p99_sum + excluded.p99_sum, "
        f"max_ms = {greatest}({MINUTE}.max_ms, excluded.max_ms)",
        params,
    )


def _upsert_target(
    cur: Any, probe_id: int, cluster_id: int, newest: Window, dropped: int, now: datetime
) -> None:
    # An older batch (a late retry) moves the report time and drop count, not the state.
    table = "resident_residenttarget"
    newer = f"({table}.last_sample_at IS NULL OR excluded.last_sample_at > {table}.last_sample_at)"
    cur.execute(
        f"INSERT INTO {table} (probe_id, cluster_id, last_sample_at, last_report_at, "
        "samples_dropped, state, applied_hash, applied_namespace, apply_error, config_status) "
        "VALUES (%s, %s, %s, %s, %s, %s, '', '', '', %s) "
        "ON CONFLICT (probe_id, cluster_id) DO UPDATE SET "
        f"last_sample_at = CASE WHEN {newer} THEN excluded.last_sample_at "
        f"ELSE {table}.last_sample_at END, "
        f"state = CASE WHEN {newer} THEN excluded.state ELSE {table}.state END, "
        "last_report_at = excluded.last_report_at, "
        "samples_dropped = excluded.samples_dropped",
        [
            probe_id,
            cluster_id,
            _dt(newest.end),
            _dt(now),
            dropped,
            "up" if newest.up else "down",
            "{}",
        ],
    )


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Row:
    """Sums over some time: a window or a minute; latencies as count-weighted sums."""

    epoch: int
    count: int
    failures: int
    p50_sum: float
    p99_sum: float
    max_ms: float | None


def rows_read(
    *,
    probe_id: int,
    cluster_id: int | None,
    since: datetime,
    until: datetime,
    rollup: bool,
) -> list[Row]:
    """Windows (or minutes) of one probe, of one cluster or all, with since <= time < until."""
    if rollup:
        table, column = MINUTE, "minute"
        fields = "count, failures, p50_sum, p99_sum, max_ms"
    else:
        table, column = WINDOW, "start"
        fields = "count, failures, COALESCE(p50_ms, 0) * count, COALESCE(p99_ms, 0) * count, max_ms"
    where = f"probe_id = %s AND {column} >= %s AND {column} < %s"
    params: list[Any] = [probe_id, _dt(since), _dt(until)]
    if cluster_id is not None:
        where += " AND cluster_id = %s"
        params.append(cluster_id)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {_epoch(column)}, {fields} FROM {table} WHERE {where} ORDER BY {column}",
            params,
        )
        return [Row(int(e), int(c), int(f), float(a), float(b), m) for e, c, f, a, b, m in cur]


def series_columns(
    *,
    probe_id: int,
    cluster_id: int | None,
    first: int,
    until: datetime,
    step: int,
    rollup: bool,
) -> str | None:
    """Postgres only (else None): the whole series computed by the database, as the JSON
    text of its columns (t, availability, p50_ms, p99_ms, max_ms, count).

    Buckets are [first + k·step, …) up to `until` (unix seconds, first aligned to
    the step), empty ones null with count 0; one statement answering one JSON
    document, so no Python loop runs per point.
    """
    if not _postgres():
        return None
    if rollup:
        table, column = MINUTE, "minute"
        sums = "sum(count) n, sum(failures) f, sum(p50_sum) a, sum(p99_sum) c, max(max_ms) m"
    else:
        table, column = WINDOW, "start"
        sums = (
            "sum(count) n, sum(failures) f, sum(COALESCE(p50_ms, 0) * count) a, "
            "sum(COALESCE(p99_ms, 0) * count) c, max(max_ms) m"
        )
    where = f"probe_id = %(probe)s AND {column} >= to_timestamp(%(first)s) AND {column} < %(until)s"
    if cluster_id is not None:
        where += " AND cluster_id = %(cluster)s"
    last = until.timestamp()
    sql = f"""
WITH agg AS (
    SELECT (floor(extract(epoch from {column}) / %(step)s) * %(step)s)::bigint AS b, {sums}
    FROM {table} WHERE {where} GROUP BY 1
), filled AS (
    SELECT g.b, agg.n, agg.f, agg.a, agg.c, agg.m
    FROM generate_series(%(first)s::bigint, %(last)s::bigint, %(step)s::bigint) AS g(b)
    LEFT JOIN agg ON agg.b = g.b
    WHERE g.b < %(last_f)s
)
SELECT json_build_object(
    't', COALESCE(json_agg(b ORDER BY b), '[]'),
    'availability', COALESCE(json_agg(CASE WHEN n > 0 THEN round(100 * (1 - f::numeric / n), 3) END ORDER BY b), '[]'),
    'p50_ms', COALESCE(json_agg(CASE WHEN n > 0 THEN round((a / n)::numeric, 3) END ORDER BY b), '[]'),
    'p99_ms', COALESCE(json_agg(CASE WHEN n > 0 THEN round((c / n)::numeric, 3) END ORDER BY b), '[]'),
    'max_ms', COALESCE(json_agg(CASE WHEN n > 0 THEN m END ORDER BY b), '[]'),
    'count', COALESCE(json_agg(COALESCE(n, 0) ORDER BY b), '[]')
)::text FROM filled
"""
    params = {
        "probe": probe_id,
        "cluster": cluster_id,
        "first": first,
        "until": until,
        "step": step,
        "last": int(last),
        "last_f": last,
    }
    with connection.cursor() as cur:
        cur.execute(sql, params)
        text: str = cur.fetchone()[0]
    return text


def totals_since(
    *, since: datetime, probe_ids: Sequence[int] | None = None
) -> dict[tuple[int, int], Row]:
    """Sums per (probe, cluster) of the windows that started at or after `since`."""
    where = "start >= %s"
    params: list[Any] = [_dt(since)]
    if probe_ids is not None:
        if not probe_ids:
            return {}
        where += f" AND probe_id IN ({', '.join(['%s'] * len(probe_ids))})"
        params += list(probe_ids)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT probe_id, cluster_id, SUM(count), SUM(failures), "
            "SUM(COALESCE(p50_ms, 0) * count), SUM(COALESCE(p99_ms, 0) * count), MAX(max_ms) "
            f"FROM {WINDOW} WHERE {where} GROUP BY probe_id, cluster_id",
            params,
        )
        return {
            (p, c): Row(0, int(n or 0), int(f or 0), float(a or 0), float(b or 0), m)
            for p, c, n, f, a, b, m in cur
        }


def errors_recent(*, probe_id: int, cluster_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The newest windows' error summaries (for the dashboard)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {_epoch('start')}, errors FROM {WINDOW} WHERE probe_id = %s AND "
            "cluster_id = %s AND errors IS NOT NULL ORDER BY start DESC LIMIT %s",
            [probe_id, cluster_id, limit],
        )
        out = []
        for epoch, errors in cur:
            for item in errors if isinstance(errors, list) else json.loads(errors):
                out.append({"t": int(epoch), **item})
        return out


# ------------------------------------------------------------------ partitions


def _day_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _existing_partitions(cur: Any, table: str) -> set[str]:
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
        [table],
    )
    return {name for (name,) in cur}


def partitions_ensure(*, days_ahead: int = 3, today: date | None = None) -> list[str]:
    """Create the daily partitions from today to `days_ahead` days on; returns those created.

    Rows the default partition caught for such a day (samples from the future, a
    housekeeping outage) are moved into the new partition before it is attached.
    """
    if not _postgres():
        return []
    today = today or datetime.now(UTC).date()
    created = []
    with connection.cursor() as cur:
        for table, column in PARTITIONED.items():
            existing = _existing_partitions(cur, table)
            for offset in range(days_ahead + 1):
                day = today + timedelta(days=offset)
                name = _day_name(table, day)
                if name in existing:
                    continue
                lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
                hi = lo + timedelta(days=1)
                with transaction.atomic():
                    cur.execute(
                        f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                    )
                    cur.execute(
                        f"WITH moved AS (DELETE FROM {table}_default WHERE {column} >= %s "
                        f"AND {column} < %s RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                        [lo, hi],
                    )
                    cur.execute(
                        f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
                        [lo, hi],
                    )
                created.append(name)
    return created


def partitions_drop(
    *, keep_days: int, rollup_keep_days: int, today: date | None = None
) -> list[str]:
    """Drop (Postgres) or delete (SQLite) what is older than the retention; returns what went."""
    today = today or datetime.now(UTC).date()
    keep = {WINDOW: keep_days, BATCH: keep_days, MINUTE: rollup_keep_days}
    dropped = []
    with connection.cursor() as cur:
        for table, column in PARTITIONED.items():
            oldest = today - timedelta(days=keep[table])
            if not _postgres():
                cutoff = datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC)
                cur.execute(f"DELETE FROM {table} WHERE {column} < %s", [_dt(cutoff)])
                if cur.rowcount:
                    dropped.append(f"{table}: {cur.rowcount} rows")
                continue
            for name in sorted(_existing_partitions(cur, table)):
                match = PARTITION_RE.search(name)
                if match and datetime.strptime(match.group(1), "%Y%m%d").date() < oldest:
                    cur.execute(f"DROP TABLE {name}")
                    dropped.append(name)
            # The default partition keeps only what no day holds: old strays go too.
            cutoff = datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC)
            cur.execute(f"DELETE FROM {table}_default WHERE {column} < %s", [cutoff])
    return dropped
