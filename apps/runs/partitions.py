"""The runs table partitioned by time on Postgres: ranges of ids, one per time window.

Postgres can only partition a table whose primary key and unique indexes
include the partition key, and report ingestion finds a run by its id alone
(apps/runs/reporting/store.py). So the partition key is the id: partition
``n`` holds ids ``[n × STRIDE, (n + 1) × STRIDE)`` (partition 0 everything
below STRIDE), and a window's partition is *opened* by moving the id
sequence to its first id. Each partition therefore holds the runs created
in one window (``KUBEPROBE_RUN_PARTITION_HOURS``), a report's UPDATE by id
touches one partition (pruning), the primary key stays ``(id)`` and the
foreign keys that point at runs keep working. Retention drops whole
partitions. See docs/scale.md for the trade-offs (idempotency keys are
unique per partition; ids have gaps).

Everything here is a no-op on other databases (SQLite trials keep one table
and the row-wise purge of apps/runs/cleanup.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import ForeignObjectRel
from django.utils import timezone

from apps.runs.models import ACTIVE_STATES, ProbeRun, RunPartition

logger = logging.getLogger(__name__)

TABLE = "runs_proberun"
SEQUENCE = "runs_proberun_id_seq"
# Ids per partition: far more runs than any window holds, and 900,000 windows
# before ids leave JavaScript's exact integers (2**53).
STRIDE = 10**10
# The sequence never jumps into a partition it is about to reach by itself.
JUMP_MARGIN = 10**6
# Serialises partition changes between beat's task and a migration or a manual call.
LOCK_KEY = 0x6B7052756E73  # "kpRuns"


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def partition_name(number: int) -> str:
    return f"{TABLE}_p{number:05d}"


def is_partitioned(cursor: Any = None) -> bool:
    """Whether the runs table is a partitioned table here (Postgres after migration 0009)."""
    if not _postgres():
        return False
    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c"
            " ON c.oid = p.partrelid WHERE c.relname = %s AND pg_table_is_visible(c.oid))",
            [TABLE],
        )
        return bool(cur.fetchone()[0])


def _create(cur: Any, number: int) -> None:
    """Create partition `number` with its own unique index on idempotency_key."""
    name = partition_name(number)
    low = "MINVALUE" if number == 0 else str(number * STRIDE)
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE}"
        f" FOR VALUES FROM ({low}) TO ({(number + 1) * STRIDE})"
    )
    # Unique per partition: Postgres cannot enforce it across partitions
    # without the id in it (docs/scale.md, "Idempotency keys").
    cur.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name}_idem ON {name} (idempotency_key)")


def _existing(cur: Any) -> set[int]:
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        [TABLE],
    )
    prefix = f"{TABLE}_p"
    return {int(name[len(prefix) :]) for (name,) in cur.fetchall() if name.startswith(prefix)}


def sequence_value(cur: Any) -> int:
    cur.execute(f"SELECT last_value FROM {SEQUENCE}")  # noqa: S608 (a constant name)
    return int(cur.fetchone()[0])


@dataclass
class Maintenance:
    created: list[int]
    opened: int | None


def partitions_maintain(*, now: datetime | None = None) -> Maintenance:
    """Keep the partition the sequence is in and the next one created (so an insert
    never lacks one, even when a window's ids overflow), and open a new window's
    partition once the current one is KUBEPROBE_RUN_PARTITION_HOURS old."""
    if not _postgres() or not is_partitioned():
        return Maintenance([], None)
    now = now or timezone.now()
    window = timedelta(hours=settings.KUBEPROBE_RUN_PARTITION_HOURS)
    created: list[int] = []
    opened: int | None = None
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        existing = _existing(cur)
        current = sequence_value(cur) // STRIDE
        last_open = RunPartition.objects.filter(opened_at__isnull=False).order_by("-number").first()
        if last_open is None or now - last_open.opened_at >= window:  # type: ignore[operator]
            value = sequence_value(cur)
            target = value // STRIDE + 1
            if target * STRIDE - value < JUMP_MARGIN:  # about to get there anyway
                target += 1
            for number in (target, target + 1):
                if number not in existing:
                    _create(cur, number)
                    existing.add(number)
                    created.append(number)
            # Sequences are not transactional: from here on every id is in `target`.
            cur.execute("SELECT setval(%s, %s, false)", [SEQUENCE, target * STRIDE])
            RunPartition.objects.update_or_create(number=target, defaults={"opened_at": now})
            opened = target
            current = target
        for number in (current, current + 1):
            if number not in existing:
                _create(cur, number)
                created.append(number)
            RunPartition.objects.get_or_create(number=number)
    if created or opened is not None:
        logger.info("runs partitions: created %s, opened %s", created, opened)
    return Maintenance(created, opened)


def _keeps_runs(cur: Any, name: str, cutoff: datetime) -> bool:
    """Whether partition `name` still has a run to keep: created or finished after
    the cutoff, or not finished. Three index probes."""
    active = ", ".join(["%s"] * len(ACTIVE_STATES))
    cur.execute(
        f"SELECT EXISTS (SELECT 1 FROM {name} WHERE created_at >= %s)"  # noqa: S608
        f" OR EXISTS (SELECT 1 FROM {name} WHERE finished_at >= %s)"
        f" OR EXISTS (SELECT 1 FROM {name} WHERE state IN ({active}))",
        [cutoff, cutoff, *[str(s) for s in ACTIVE_STATES]],
    )
    return bool(cur.fetchone()[0])


def _release_references(low: int, high: int) -> None:
    """What points at runs with ids in [low, high) goes the way its on_delete says:
    rows that cascade are deleted, SET_NULL references cleared (Django emulates
    on_delete; the database's foreign keys would refuse the detach otherwise)."""
    # include_hidden: related_name="+" references (an alert's latest run) count too.
    for rel in ProbeRun._meta.get_fields(include_hidden=True):
        if not isinstance(rel, ForeignObjectRel) or rel.many_to_many:
            continue
        column = rel.field.attname
        rows = rel.related_model._base_manager.filter(  # type: ignore[union-attr]
            **{f"{column}__gte": low, f"{column}__lt": high}
        )
        if rel.on_delete is models.CASCADE:
            rows.delete()
        elif rel.on_delete is models.SET_NULL:
            rows.update(**{rel.field.name: None})
        elif rel.on_delete is not models.DO_NOTHING and rows.exists():
            raise RuntimeError(f"{rel.related_model.__name__}.{rel.field.name} protects runs")


def partitions_drop(*, cutoff: datetime) -> int:
    """Drop every partition before the current one that holds no run to keep
    (see _keeps_runs); returns how many runs went with them."""
    if not _postgres() or not is_partitioned():
        return 0
    dropped = 0
    with connection.cursor() as cur:
        current = sequence_value(cur) // STRIDE
        candidates = sorted(n for n in _existing(cur) if n < current)
    for number in candidates:
        name = partition_name(number)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            if _keeps_runs(cur, name, cutoff):
                break  # newer partitions keep theirs too
            cur.execute(f"SELECT count(*) FROM {name}")  # noqa: S608
            count = int(cur.fetchone()[0])
            low = -(2**63) if number == 0 else number * STRIDE
            _release_references(low, (number + 1) * STRIDE)
            cur.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
            cur.execute(f"DROP TABLE {name}")
            RunPartition.objects.filter(number=number).delete()
            dropped += count
            logger.info("runs partition %s dropped (%d runs)", name, count)
    return dropped
