# ruff: noqa: S608 (table and column names are module constants; values are parameters)
"""Sample storage: time-partitioned tables written and read with SQL, no ORM per row.

Three tables (created by migration 0002):

* ``resident_window``: one row per aggregated window a runner sent;
* ``resident_batch``: one row per batch id, whose primary key makes a retried
  batch a no-op (INSERT … ON CONFLICT DO NOTHING, no read-then-write race);
* ``resident_minute``: per-minute rollups (sums and maxima, so that any
  coarser step is exact to compute from them), upserted with each batch.

On Postgres a batch is one statement (batch id, windows, rollups and the
target's state together). Each table is natively partitioned by day
(``<table>_pYYYYMMDD``) with a default partition as a safety net;
``partitions_ensure`` (apps/resident/partitions.py) creates days ahead
(moving any rows the default partition caught for that day) and
``partitions_drop`` enforces retention by dropping whole days. On SQLite (the
trial default) they are plain tables and retention deletes rows.

A batch's rows are partitioned by the time of its first window, which a retry
carries unchanged, so the retry meets its own key in the same partition.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

# The partition housekeeping lives in partitions.py; importable from here as before.
from apps.resident.partitions import (  # noqa: F401
    BATCH,
    MINUTE,
    PARTITIONED,
    WINDOW,
    partitions_drop,
    partitions_ensure,
)


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

PROBE = "resident_residentprobe"


class ProbeChanged(Exception):
    """The probe was deleted, disabled or its token rotated: the batch was not stored."""


def batch_store(
    *,
    probe_id: int,
    cluster_id: int,
    batch_id: str,
    windows: Sequence[Window],
    dropped: int,
    now: datetime,
    token_hash: str | None = None,
) -> bool:
    """Store one batch atomically; False if its id was stored before (nothing written).

    With `token_hash`, the batch is stored only if the probe is still enabled and
    still has that token, checked in the same statement (ingestion trusts a cached
    token lookup this way); else nothing is written and ProbeChanged is raised.
    """
    first = windows[0].start
    if _postgres():
        return _store_postgres(probe_id, cluster_id, batch_id, windows, dropped, now, token_hash)
    with transaction.atomic(), connection.cursor() as cur:
        if token_hash is not None:
            cur.execute(
                f"SELECT 1 FROM {PROBE} WHERE id = %s AND enabled AND token_hash = %s",
                [probe_id, token_hash],
            )
            if cur.fetchone() is None:
                raise ProbeChanged
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


# One statement per batch (one round trip, atomic without BEGIN/COMMIT): the probe
# check (p) gates the batch id row, which gates the rest through its RETURNING, so a
# retry (or a concurrent copy, which waits on the id's key) writes nothing. The windows travel as one JSON document that
# Postgres unpacks (dumping ten typed arrays in Python cost more than the insert), and
# the per-minute rollups are summed from the same rows by the database.
_STORE_SQL = f"""
WITH p AS (
    SELECT 1 WHERE %(token)s::text IS NULL OR EXISTS (SELECT 1 FROM {PROBE}
        WHERE id = %(probe)s AND enabled AND token_hash = %(token)s::text)
), b AS (
    INSERT INTO {BATCH} (probe_id, batch_id, first_start, received_at)
    SELECT %(probe)s, %(batch)s, %(first)s, %(now)s WHERE EXISTS (SELECT 1 FROM p)
    ON CONFLICT DO NOTHING RETURNING 1
), r AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
        s timestamptz, e timestamptz, c int, f int, p50 float8, p99 float8, mx float8,
        up bool, err jsonb)
    WHERE EXISTS (SELECT 1 FROM b)
), w AS (
    INSERT INTO {WINDOW} (probe_id, cluster_id, start, "end", count, failures,
        p50_ms, p99_ms, max_ms, up, errors)
    SELECT %(probe)s, %(cluster)s, s, e, c, f, p50, p99, mx, up, err FROM r
), m AS (
    INSERT INTO {MINUTE} AS o (probe_id, cluster_id, minute, count, failures, p50_sum,
        p99_sum, max_ms)
    SELECT %(probe)s, %(cluster)s, date_trunc('minute', s), sum(c), sum(f),
        sum(COALESCE(p50, 0) * c), sum(COALESCE(p99, 0) * c), max(COALESCE(mx, 0))
    FROM r GROUP BY 3 ORDER BY 3
    ON CONFLICT (probe_id, cluster_id, minute) DO UPDATE SET
        count = o.count + excluded.count, failures = o.failures + excluded.failures,
        p50_sum = o.p50_sum + excluded.p50_sum, p99_sum = o.p99_sum + excluded.p99_sum,
        max_ms = GREATEST(o.max_ms, excluded.max_ms)
), t AS (
    INSERT INTO resident_residenttarget AS o (probe_id, cluster_id, last_sample_at,
        last_report_at, samples_dropped, state, applied_hash, applied_namespace,
        apply_error, config_status)
    SELECT %(probe)s, %(cluster)s, %(last)s, %(now)s, %(dropped)s, %(state)s, '', '', '',
        '{{}}'::jsonb
    WHERE EXISTS (SELECT 1 FROM b)
    ON CONFLICT (probe_id, cluster_id) DO UPDATE SET
        last_sample_at = GREATEST(o.last_sample_at, excluded.last_sample_at),
        state = CASE WHEN o.last_sample_at IS NULL OR excluded.last_sample_at > o.last_sample_at
            THEN excluded.state ELSE o.state END,
        last_report_at = excluded.last_report_at,
        samples_dropped = excluded.samples_dropped
)
SELECT (SELECT count(*) FROM b), EXISTS (SELECT 1 FROM p)
"""


def _store_postgres(
    probe_id: int,
    cluster_id: int,
    batch_id: str,
    windows: Sequence[Window],
    dropped: int,
    now: datetime,
    token_hash: str | None,
) -> bool:
    rows = [
        {
            "s": w.start.isoformat(),
            "e": w.end.isoformat(),
            "c": w.count,
            "f": w.failures,
            "p50": w.p50_ms,
            "p99": w.p99_ms,
            "mx": w.max_ms,
            "up": w.up,
            "err": w.errors or None,
        }
        for w in windows
    ]
    newest = max(windows, key=lambda w: w.end)
    with connection.cursor() as cur:
        cur.execute(
            _STORE_SQL,
            {
                "probe": probe_id,
                "cluster": cluster_id,
                "batch": batch_id,
                "first": windows[0].start,
                "now": now,
                "rows": json.dumps(rows),
                "last": newest.end,
                "dropped": dropped,
                "state": "up" if newest.up else "down",
                "token": token_hash,
            },
        )
        stored, probe_ok = cur.fetchone()
    if not probe_ok:
        raise ProbeChanged
    return bool(stored)


def _insert_windows(cur: Any, probe_id: int, cluster_id: int, windows: Sequence[Window]) -> None:
    errors = [json.dumps(w.errors) if w.errors else None for w in windows]
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
    cur.execute(
        f"INSERT INTO {MINUTE} (probe_id, cluster_id, minute, count, failures, p50_sum, "
        f"p99_sum, max_ms) VALUES {values} "
        "ON CONFLICT (probe_id, cluster_id, minute) DO UPDATE SET "
        f"count = {MINUTE}.count + excluded.count, "
        f"failures = {MINUTE}.failures + excluded.failures, "
        f"p50_sum = {MINUTE}.p50_sum + excluded.p50_sum, "
        f"p99_sum = {MINUTE}.p99_sum + excluded.p99_sum, "
        f"max_ms = MAX({MINUTE}.max_ms, excluded.max_ms)",
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
