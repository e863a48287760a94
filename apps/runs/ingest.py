"""Storing reports: one conditional UPDATE per report, grouped under load.

A report is stored by an UPDATE that only matches the run if the token hash
matches, the run is still active and its deadline (plus grace) has not passed;
whoever matches first wins, so a result is never overwritten.

Under load, each server process hands its reports to one writer thread that
stores everything waiting in a single multi-row UPDATE ("group commit"): one
round trip and one WAL flush for many reports. The request still waits for
its row to be committed before answering 200, so an accepted report is a
stored report. Inside an open transaction (tests, management commands) and on
databases other than Postgres, the request stores its own row directly.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Q

from apps.runs.models import ACTIVE_STATES, ProbeRun
from apps.runs.reports import Report

logger = logging.getLogger(__name__)

MAX_BATCH = 200
# Django wraps its own cursors' errors; the prepared statement raises psycopg's.
DB_ERRORS = (DatabaseError, psycopg.Error)
WAIT_SECONDS = 30.0


@dataclass
class Pending:
    run_id: int
    token_hash: str
    report: Report
    now: datetime
    done: threading.Event = field(default_factory=threading.Event)
    stored: tuple[int, int] | None = None  # (case_id, cluster_id) once stored
    error: Exception | None = None


_ACTIVE_SQL = ", ".join(f"'{state}'" for state in ACTIVE_STATES)
# The batch travels as one JSON parameter: one dumps() in C instead of
# quoting eight parameters per report in Python. The id array steers the
# planner to primary-key lookups (it cannot count a JSON recordset's rows).
_UPDATE_SQL = f"""
UPDATE runs_proberun AS r
SET state = v.state, ok = v.ok, errors = v.errors, steps = v.steps, metrics = v.metrics,
    finished_at = v.finished_at,
    duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM (v.finished_at
        - COALESCE(r.dispatched_at, r.created_at))) * 1000)::bigint)
FROM jsonb_to_recordset(%s::jsonb) AS v(
    id bigint, token_hash text, state text, ok boolean, errors jsonb, steps jsonb,
    metrics jsonb, finished_at timestamptz)
WHERE r.id = ANY(%s) AND r.id = v.id
  AND r.token_hash = v.token_hash AND r.token_hash <> ''
  AND r.state IN ({_ACTIVE_SQL})
  AND r.deadline IS NOT NULL
  AND r.deadline + make_interval(secs => %s) >= v.finished_at
RETURNING r.id, r.case_id, r.cluster_id
"""  # noqa: S608 (only constants are formatted in)


def _store_rows(items: list[Pending]) -> dict[int, tuple[int, int]]:
    """One UPDATE for many reports (distinct runs); returns what it stored."""
    rows = [
        {
            "id": item.run_id,
            "token_hash": item.token_hash,
            "state": "succeeded" if item.report.ok else "failed",
            "ok": item.report.ok,
            "errors": item.report.errors,
            "steps": item.report.steps,
            "metrics": item.report.metrics,
            "finished_at": item.now.isoformat(),
        }
        for item in items
    ]
    params = [
        json.dumps(rows),
        [item.run_id for item in items],
        settings.KUBEPROBE_REPORT_GRACE_SECONDS,
    ]
    connection.ensure_connection()
    # Server-side binding and a prepared statement: no quoting in Python and no
    # planning per batch (Django's own cursors bind parameters client-side).
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_UPDATE_SQL, params, prepare=True)
        return {run_id: (case_id, cluster_id) for run_id, case_id, cluster_id in cursor.fetchall()}


def _store_orm(item: Pending) -> tuple[int, int] | None:
    """The portable path (SQLite trials): read, then the same conditional update."""
    from datetime import timedelta

    run = (
        ProbeRun.objects.filter(pk=item.run_id)
        .order_by()
        .only("case_id", "cluster_id", "dispatched_at", "created_at")
        .first()
    )
    if run is None:
        return None
    started = run.dispatched_at or run.created_at
    grace = timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS)
    report = item.report
    updated = ProbeRun.objects.filter(
        Q(pk=item.run_id, token_hash=item.token_hash, state__in=ACTIVE_STATES)
        & ~Q(token_hash="")
        & Q(deadline__gte=item.now - grace)
    ).update(
        state="succeeded" if report.ok else "failed",
        ok=report.ok,
        errors=report.errors,
        steps=report.steps,
        metrics=report.metrics,
        finished_at=item.now,
        duration_ms=max(0, int((item.now - started).total_seconds() * 1000)),
    )
    return (run.case_id, run.cluster_id) if updated else None


class _Writer:
    """One per process: stores queued reports in batches on its own connection."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: deque[Pending] = deque()
        self.pid = 0

    def submit(self, item: Pending) -> tuple[int, int] | None:
        with self.cond:
            if self.pid != os.getpid():  # first use in this (possibly forked) process
                self.pid = os.getpid()
                self.queue.clear()
                threading.Thread(target=self._run, name="report-writer", daemon=True).start()
            self.queue.append(item)
            self.cond.notify()
        if not item.done.wait(WAIT_SECONDS):
            raise TimeoutError("the report writer did not answer in time")
        if item.error is not None:
            raise item.error
        return item.stored

    def _take(self) -> list[Pending]:
        # The connection follows CONN_MAX_AGE: closed after each batch when it
        # is 0, otherwise once the writer has been idle that long.
        max_age = settings.DATABASES["default"].get("CONN_MAX_AGE") or 0
        with self.cond:
            while not self.queue:
                if not self.cond.wait(timeout=max(1.0, max_age)):
                    connection.close()
            batch: list[Pending] = []
            later: list[Pending] = []
            ids: set[int] = set()
            while self.queue and len(batch) < MAX_BATCH:
                item = self.queue.popleft()
                # Two reports for one run go to separate statements: the second must lose.
                (later if item.run_id in ids else batch).append(item)
                ids.add(item.run_id)
            self.queue.extendleft(reversed(later))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            try:
                self._flush(batch)
            finally:
                if not settings.DATABASES["default"].get("CONN_MAX_AGE"):
                    connection.close()
                for item in batch:
                    item.done.set()

    def _flush(self, batch: list[Pending]) -> None:
        # No health check per batch (it costs a round trip): a dead connection
        # shows up as an error here, and the fallback below reconnects.
        try:
            stored = _store_rows(batch)
        except DB_ERRORS:
            # A dead connection, or one report the database refuses: never let
            # it fail the others. Reconnect and store them one by one.
            connection.close()
            for item in batch:
                try:
                    item.stored = _store_rows([item]).get(item.run_id)
                except DB_ERRORS as exc:
                    logger.warning(
                        "storing the report of run %s failed: %s", item.run_id, type(exc).__name__
                    )
                    connection.close()
                    item.error = exc
            return
        for item in batch:
            item.stored = stored.get(item.run_id)


_writer = _Writer()


def store(item: Pending) -> tuple[int, int] | None:
    """Store one report if the run accepts it; (case_id, cluster_id) when stored."""
    if connection.vendor != "postgresql":
        return _store_orm(item)
    if connection.in_atomic_block or not settings.KUBEPROBE_REPORT_BATCHING:
        # The writer's connection could not see this transaction's rows.
        return _store_rows([item]).get(item.run_id)
    return _writer.submit(item)
