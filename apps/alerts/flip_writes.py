"""Flips of a batch, written together.

Judging one pair writes its flip and timeline line at once and reads the alert's
recent flips (is it flapping? was its firing notified?) with a query each. The
post-run pipeline's batch (apps/alerts/batch.py) judges hundreds of pairs in one
transaction: while ``deferred()`` is open, ``_flip`` (apps/alerts/services.py)
queues its rows here instead, the history it reads comes from one query for the
batch, and leaving the block writes every row with two INSERTs and schedules
one delivery. What the batch reads and writes is what the single path does;
only the number of statements changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction

from apps.alerts.models import AlertFlip, AlertTimeline, FlipEvent

# The window _flapping counts transitions in.
FLAP_WINDOW = timedelta(hours=1)


@dataclass
class FlipHistory:
    recent_transitions: int  # firing and resolved flips within FLAP_WINDOW
    last_firing_notified: bool  # the newest firing flip had notify set (False: none)


@dataclass
class PendingFlips:
    history: dict[int, FlipHistory] = field(default_factory=dict)
    flips: list[AlertFlip] = field(default_factory=list)
    timelines: list[AlertTimeline] = field(default_factory=list)


_pending: ContextVar[PendingFlips | None] = ContextVar("pending_flips", default=None)


def pending() -> PendingFlips | None:
    """The open batch's queue, or None outside one."""
    return _pending.get()


def flip_history_many(*, alert_ids: list[int], now: datetime) -> dict[int, FlipHistory]:
    """What _flapping and _was_notified read, for many alerts in one statement (each
    alert's flips found in the flip_alert_recent index)."""
    if not alert_ids:
        return {}
    table = connection.ops.quote_name(AlertFlip._meta.db_table)
    sql = (
        "SELECT a.id, (SELECT count(*) FROM "  # noqa: S608 (the table name only)
        f"{table} f WHERE f.alert_id = a.id AND f.event IN (%s, %s) AND f.created_at >= %s),"
        f" (SELECT f.notify FROM {table} f WHERE f.alert_id = a.id AND f.event = %s"
        " ORDER BY f.created_at DESC, f.id DESC LIMIT 1)"
        " FROM unnest(%s::bigint[]) AS a(id)"
    )
    params: list[Any] = [
        FlipEvent.FIRING.value,
        FlipEvent.RESOLVED.value,
        now - FLAP_WINDOW,
        FlipEvent.FIRING.value,
        sorted(alert_ids),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {
            alert_id: FlipHistory(int(count), bool(notified))
            for alert_id, count, notified in cursor.fetchall()
        }


@contextmanager
def deferred(
    *, history: dict[int, FlipHistory], schedule: Callable[[], None]
) -> Iterator[PendingFlips]:
    """Queue the flips made inside; write them on the way out (inside the caller's
    transaction) and have ``schedule`` run once it commits, if there were any."""
    queue = PendingFlips(history=history)
    token = _pending.set(queue)
    try:
        yield queue
    finally:
        _pending.reset(token)
    if queue.flips:
        AlertFlip.objects.bulk_create(queue.flips)
        AlertTimeline.objects.bulk_create(queue.timelines)
        transaction.on_commit(schedule)
