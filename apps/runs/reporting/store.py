"""Storing reports: one conditional UPDATE per report, grouped under load.

A report is stored by an UPDATE that only matches the run if the token hash
matches, the run is still active and its deadline (plus grace) has not passed;
whoever matches first wins, so a result is never overwritten.

Under load, the reports of one server process are grouped into a single
multi-row UPDATE ("group commit"): one round trip, one WAL flush and one
statement's overhead in Python and Postgres for many reports. The request
threads take turns as the leader that stores a batch (see _GroupCommit); the
request still waits for its row to be committed before answering 200, so an
accepted report is a stored report. Inside an open transaction (tests,
management commands) and on databases other than Postgres, the request
stores its own row directly.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Q
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus
from psycopg.pq.abc import PGconn, PGresult

from apps.runs import partitions
from apps.runs.models import ACTIVE_STATES, ProbeRun
from apps.runs.reporting.protocols import Report

logger = logging.getLogger(__name__)

MAX_BATCH = 200
# Django wraps its own cursors' errors; the prepared statement raises psycopg's.
DB_ERRORS = (DatabaseError, psycopg.Error)
WAIT_SECONDS = 30.0
# How long a leader waits at most for announced reports to join its batch.
COLLECT_SECONDS = 0.005


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)  # compared by identity: two reports may carry the same values
class Pending:
    run_id: int
    token_hash: str
    report: Report
    now: datetime
    # Released once the report is stored, or to make its thread the next
    # leader: a bare lock is the cheapest way to park a thread and wake it.
    done: threading.Lock = field(default_factory=_held_lock)
    stored: tuple[int, int] | None = None  # (case_id, cluster_id) once stored
    error: Exception | None = None
    lead: bool = False  # woken to lead the next batch


_ACTIVE_SQL = ", ".join(f"'{state}'" for state in ACTIVE_STATES)
# The batch travels as one JSON parameter: one dumps() in C instead of
# quoting eight parameters per report in Python. The id array steers the
# planner to primary-key lookups (it cannot count a JSON recordset's rows).
_UPDATE_SQL = f"""
UPDATE {{table}} AS r
SET state = v.state, ok = v.ok, errors = v.errors, steps = v.steps, metrics = v.metrics,
    finished_at = v.finished_at,
    -- as ProbeRun.duration_ms_at
    duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM (v.finished_at
        - COALESCE(r.dispatched_at, r.created_at))) * 1000)::bigint)
FROM jsonb_to_recordset($1::jsonb) AS v(
    id bigint, token_hash text, state text, ok boolean, errors jsonb, steps jsonb,
    metrics jsonb, finished_at timestamptz)
WHERE r.id = ANY($2::bigint[]) AND r.id = v.id
  AND r.token_hash = v.token_hash AND r.token_hash <> ''
  AND r.state IN ({_ACTIVE_SQL})
  AND r.deadline IS NOT NULL
  AND r.deadline + make_interval(secs => $3::float8) >= v.finished_at
RETURNING r.id, r.case_id, r.cluster_id
"""  # noqa: S608 (only constants are formatted in)


def _params(items: list[Pending]) -> list[bytes | None]:
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
    return [
        json.dumps(rows).encode(),
        ("{" + ",".join(str(item.run_id) for item in items) + "}").encode(),
        str(settings.KUBEPROBE_REPORT_GRACE_SECONDS).encode(),
    ]


def _partition_number(run_id: int) -> int:
    # Partition 0 also holds everything below its range (partitions.py).
    return max(0, run_id // partitions.STRIDE)


def _by_partition(items: list[Pending]) -> dict[int, list[Pending]]:
    groups: dict[int, list[Pending]] = {}
    for item in items:
        groups.setdefault(_partition_number(item.run_id), []).append(item)
    return groups


def _store_rows(items: list[Pending]) -> dict[int, tuple[int, int]]:
    """One UPDATE per partition for many reports (distinct runs); returns what it stored.

    A batch's runs are nearly always in one partition: one statement. _flush
    calls it per partition, so one that fails leaves the others' results.
    """
    connection.ensure_connection()
    # Statements prepared once per connection, executed through libpq
    # directly: psycopg's cursor machinery costs more Python time than the
    # rest of a batch, and libpq waits for the answer without holding the GIL.
    pgconn = connection.connection.pgconn
    if not connection.get_autocommit() and pgconn.transaction_status == TransactionStatus.IDLE:
        # In an atomic block psycopg sends BEGIN before its own next statement
        # only: without this one the UPDATE would commit on its own.
        _check(pgconn, pgconn.exec_(b"BEGIN"))
    stored: dict[int, tuple[int, int]] = {}
    for number, group in _by_partition(items).items():
        params = _params(group)
        name = _statement(pgconn, number)
        result = pgconn.exec_prepared(name, params)
        sqlstate = result.error_field(DiagnosticField.SQLSTATE)
        if sqlstate == b"26000":  # the session dropped its statements (DISCARD ALL)
            _prepared.pop(pgconn, None)
            result = pgconn.exec_prepared(_statement(pgconn, number), params)
        elif sqlstate == b"42P01" and pgconn.transaction_status == TransactionStatus.IDLE:
            # The partition was dropped since (retention): its runs are gone too,
            # the parent table says so.
            _forget(pgconn, name)
            result = pgconn.exec_prepared(_statement(pgconn, number), params)
        _check(pgconn, result)
        value = result.get_value
        stored.update(
            (int(value(i, 0) or 0), (int(value(i, 1) or 0), int(value(i, 2) or 0)))
            for i in range(result.ntuples)
        )
    return stored


_STATEMENT = b"kubeprobe_store_reports"
# Per connection: the statement prepared for each partition number seen.
_prepared: weakref.WeakKeyDictionary[PGconn, dict[int, bytes]] = weakref.WeakKeyDictionary()
_PARENT = -1  # the key of the statement on the partitioned table itself


def _statement(pgconn: PGconn, number: int) -> bytes:
    """The prepared statement updating partition `number`, prepared on first use.

    It names the partition itself, not the partitioned table: the generic plan
    of an UPDATE on the partitioned table locks every partition at each
    execution before it prunes them (Postgres 15), a cost that grows
    with the partitions kept (31 at the default retention) and, past 16 locks
    a statement, moves them out of Postgres' per-backend fast path. When the
    partition does not exist (no such run, or an unpartitioned table) the
    statement updates the parent table, which finds the run if it is anywhere.
    """
    statements = _prepared.setdefault(pgconn, {})
    name = statements.get(number)
    if name is not None:
        return name
    if not statements:  # the first statement of this session
        _session_setup(pgconn)
    table = partitions.partition_name(number)
    result = pgconn.exec_params(b"SELECT to_regclass($1) IS NOT NULL", [table.encode()])
    _check(pgconn, result)
    if result.get_value(0, 0) != b"t":
        # Not remembered under `number`: ids naming no run must not grow the cache.
        number, table = _PARENT, partitions.TABLE
        if number in statements:
            return statements[number]
    name = _STATEMENT + b"_" + table.encode()
    _check(pgconn, pgconn.prepare(name, _UPDATE_SQL.format(table=table).encode()))
    statements[number] = name
    return name


def _forget(pgconn: PGconn, name: bytes) -> None:
    """Deallocate a statement whose table is gone; the next use prepares anew."""
    _check(pgconn, pgconn.exec_(b"DEALLOCATE " + name))
    statements = _prepared.get(pgconn, {})
    for number in [n for n, known in statements.items() if known == name]:
        del statements[number]


def _session_setup(pgconn: PGconn) -> None:
    # Left to itself Postgres plans this statement anew on every execution
    # (a custom plan always looks cheaper for the id array), which costs about
    # a third of its CPU per report. The generic plan is the primary-key
    # lookup. The setting is per session, and no other statement on Django's
    # connection is prepared (client-side binding, Django's default), so it
    # only changes these.
    if not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
        _check(pgconn, pgconn.exec_(b"SET plan_cache_mode = force_generic_plan"))


def _check(pgconn: PGconn, result: PGresult) -> None:
    """Raise psycopg's error for a failed libpq result (as a cursor would)."""
    if result.status in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK):
        return
    message = (result.error_message or pgconn.error_message).decode(errors="replace").strip()
    sqlstate = result.error_field(DiagnosticField.SQLSTATE)
    error: type[psycopg.Error] = psycopg.OperationalError  # no SQLSTATE: the connection broke
    if sqlstate:
        try:
            error = psycopg.errors.lookup(sqlstate.decode())
        except KeyError:
            error = psycopg.DatabaseError
    raise error(message or "the database did not answer")


def _store_orm(item: Pending) -> tuple[int, int] | None:
    """The portable path (SQLite trials): read, then the same conditional update."""
    run = (
        ProbeRun.objects.filter(pk=item.run_id)
        .order_by()
        .only("case_id", "cluster_id", "dispatched_at", "created_at")
        .first()
    )
    if run is None:
        return None
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
        duration_ms=run.duration_ms_at(item.now),
    )
    return (run.case_id, run.cluster_id) if updated else None


def _flush(batch: list[Pending]) -> None:
    """Store a batch on this thread's connection; each item gets `stored` or `error`."""
    for group in _by_partition(batch).values():
        _flush_one(group)


def _flush_one(batch: list[Pending]) -> None:
    """Store the reports of one partition (one statement, see _flush)."""
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


class _GroupCommit:
    """Leader/follower group commit, one per process.

    A report that finds nobody leading becomes the leader: it waits (briefly)
    until the reports other request threads are validating have joined the
    queue, then stores the whole queue in one statement on its own
    connection and wakes the followers. Reports that arrive meanwhile queue
    up; when the flush is done the oldest of them is woken to lead the next
    one. No thread of its own: the request threads take turns, so a report
    costs no extra hand-off, and the batch is as large as the concurrency.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.cond = threading.Condition()
        self.queue: deque[Pending] = deque()
        self.leading = False  # a thread is collecting or flushing a batch
        self.arriving = 0  # announced reports not queued yet

    def announce(self) -> None:
        """A report is on its way in this process: a collecting leader waits for it."""
        with self.cond:
            self.arriving += 1

    def withdraw(self) -> None:
        """An announced report will not be queued (rejected before storing)."""
        with self.cond:
            self.arriving -= 1
            if self.arriving == 0:
                self.cond.notify()

    def submit(self, item: Pending, announced: bool = False) -> tuple[int, int] | None:
        with self.cond:
            if announced:
                self.arriving -= 1
            self.queue.append(item)
            if self.leading:
                if self.arriving == 0:
                    self.cond.notify()  # the collecting leader need not wait longer
                lead = False
            else:
                self.leading = lead = True
        while not lead:
            if item.done.acquire(timeout=WAIT_SECONDS):
                if not item.lead:
                    return self._result(item)
                lead = True
                continue
            with self.cond:
                if not item.lead:
                    if item in self.queue:  # never stored: safe to answer 503
                        self.queue.remove(item)
                    raise TimeoutError("the report was not stored in time")
            item.done.acquire()  # promoted as the wait ran out: take that wake-up
            lead = True
        self._lead()
        return self._result(item)

    @staticmethod
    def _result(item: Pending) -> tuple[int, int] | None:
        if item.error is not None:
            raise item.error
        return item.stored

    def _lead(self) -> None:
        with self.cond:
            # Validation takes microseconds; the bound only matters if a thread stalls.
            deadline = time.monotonic() + COLLECT_SECONDS
            while self.arriving > 0 and len(self.queue) < MAX_BATCH:
                left = deadline - time.monotonic()
                if left <= 0 or not self.cond.wait(left):
                    break
            batch = self._take()
        try:
            _flush(batch)
        except BaseException as exc:  # never leave followers waiting on a failed leader
            for item in batch:
                if item.stored is None and item.error is None:
                    item.error = exc if isinstance(exc, Exception) else RuntimeError("aborted")
            raise
        finally:
            with self.cond:
                if self.queue:
                    nxt = self.queue[0]
                    nxt.lead = True
                    nxt.done.release()
                else:
                    self.leading = False
            for item in batch:
                item.lead = False
                item.done.release()

    def _take(self) -> list[Pending]:
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


_group = _GroupCommit()
# A forked child (gunicorn --preload) inherits the state but none of the threads.
os.register_at_fork(after_in_child=_group._reset)


def _batched() -> bool:
    # Inside an open transaction (tests, management commands) another thread's
    # connection could not see this transaction's rows: store directly.
    conn = connections[DEFAULT_DB_ALIAS]  # one lookup of the thread's connection
    return (
        settings.KUBEPROBE_REPORT_BATCHING
        and conn.vendor == "postgresql"
        and not conn.in_atomic_block
    )


def store(item: Pending) -> tuple[int, int] | None:
    """Store one report if the run accepts it; (case_id, cluster_id) when stored."""
    announced = getattr(_local, "announced", False)
    _local.announced = False
    if _batched():
        return _group.submit(item, announced=announced)
    if announced:
        _group.withdraw()
    if connection.vendor != "postgresql":
        return _store_orm(item)
    return _store_rows([item]).get(item.run_id)


_local = threading.local()


@contextmanager
def arriving() -> Iterator[None]:
    """Announce a report to this process's group commit while it is being handled.

    A leader collecting a batch waits (briefly) for announced reports, so the
    earlier a report is announced, the fuller the batches under load.
    accept.run_report announces each report before validating it. Ends when
    the report is queued, or on leaving the block.
    """
    if getattr(_local, "announced", False) or not _batched():
        yield
        return
    _group.announce()
    _local.announced = True
    try:
        yield
    finally:
        if _local.announced:  # rejected before it was queued
            _local.announced = False
            _group.withdraw()
