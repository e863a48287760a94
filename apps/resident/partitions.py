# ruff: noqa: S608 (table names are module constants; values are parameters)
"""Daily partitions of the sample tables (Postgres): created ahead, dropped for retention.

Each table (apps/resident/storage.py) is natively partitioned by day
(``<table>_pYYYYMMDD``) with a default partition as a safety net. On SQLite (the
trial default) they are plain tables and retention deletes rows.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection, transaction

WINDOW = "resident_window"
BATCH = "resident_batch"
MINUTE = "resident_minute"
# table → its partition key column
PARTITIONED = {WINDOW: "start", BATCH: "first_start", MINUTE: "minute"}
PARTITION_RE = re.compile(r"_p(\d{8})$")


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _dt(value: datetime) -> Any:
    """A datetime as the backend's raw cursor wants it (SQLite: naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


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
