"""Schedule fan-out: a tick's runs planned and stored by INSERT … SELECT, woken in batches.

A tick of a binding over 10,000 clusters × 20 cases is 200,000 runs. Building
them as model instances and publishing one broker message per run took minutes
and most of a gigabyte; here the database expands cases × clusters itself,
skips pairs whose previous run is still active, and inserts the rest with a
few statements (`ON CONFLICT DO NOTHING`: the idempotency key's unique index
is per partition of the runs table, see docs/scale.md), so Python never
holds the rows. Runs are handed to dispatch by being committed as `pending`:
dispatch workers claim them from the table in batches
(apps/runs/dispatch_batch.py), and the tick only publishes a few wake-up
messages, not one per run.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, QuerySet
from django.utils import timezone

from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.runs import partitions
from apps.runs.models import ACTIVE_STATES, ProbeRun, RunState
from apps.runs.services import CreateResult, redispatch_window, runs_create

# Columns the statement fills from the pair; every other column gets its model default.
_FROM_PAIR = {"case_id": "p.case_id", "cluster_id": "p.cluster_id", "executor": "p.executor"}


def _param(field: Field[Any, Any], value: Any) -> tuple[str, Any]:
    """A typed placeholder: Postgres infers nothing from INSERT … SELECT's select list."""
    value = field.get_db_prep_save(value, connection)
    if connection.vendor == "postgresql":
        return f"CAST(%s AS {field.db_type(connection)})", value
    return "%s", value


def _columns(
    *, key: str, trigger: str, binding_id: int | None, redispatch_after: timedelta
) -> tuple[list[str], list[str], list[Any]]:
    now = timezone.now()  # created and queued now, whatever tick (slot) this is
    explicit = {
        "binding_id": binding_id,
        "trigger": trigger,
        "state": RunState.PENDING,
        "created_at": now,
        "enqueued_at": now,
        "redispatch_after": redispatch_after,
    }
    names, exprs, params = [], [], []
    for field in ProbeRun._meta.concrete_fields:
        if field.primary_key:
            continue
        column = str(field.column)
        names.append(connection.ops.quote_name(column))
        if column in _FROM_PAIR:
            exprs.append(_FROM_PAIR[column])
        elif column == "idempotency_key":
            # key:case:cluster, the same key runs_create gives each run.
            exprs.append(
                "CAST(%s AS TEXT) || CAST(p.case_id AS TEXT) || ':' || CAST(p.cluster_id AS TEXT)"
            )
            params.append(f"{key}:")
        else:
            value = explicit[column] if column in explicit else field.get_default()
            expr, value = _param(field, value)
            exprs.append(expr)
            params.append(value)
    return names, exprs, params


def _subquery(queryset: QuerySet[Any], *fields: str) -> tuple[str, list[Any]]:
    sql, params = queryset.order_by().values(*fields).query.sql_with_params()
    return sql, list(params)


def _earlier_partition_guard(table: str, key: str) -> tuple[str, list[Any]]:
    """ON CONFLICT sees the idempotency key's unique index of one partition only
    (apps/runs/partitions.py): a tick delivered again after a new partition opened
    would store its runs twice. So on a partitioned table a pair is also passed over
    when the previous partition holds its key; ids bound the look-up to two partitions."""
    if not partitions.is_partitioned():
        return "", []
    with connection.cursor() as cursor:
        floor = max(0, (partitions.sequence_value(cursor) // partitions.STRIDE - 1))
    sql = (
        f" AND NOT EXISTS (SELECT 1 FROM {table} d WHERE d.id >= %s AND d.idempotency_key ="  # noqa: S608
        " (CAST(%s AS TEXT) || CAST(p.case_id AS TEXT) || ':' || CAST(p.cluster_id AS TEXT)))"
    )
    return sql, [floor * partitions.STRIDE, f"{key}:"]


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: list[Any]
    slices: int


def _plan(
    *,
    cases: QuerySet[Case],
    clusters: QuerySet[Cluster],
    trigger: str,
    key: str,
    binding_id: int | None,
    redispatch_after: timedelta,
    slices: int,
) -> _Plan:
    """One statement per slice of the clusters (cluster id modulo `slices`): it returns
    the pairs it skipped (previous run of another request still active) and the ids it created."""
    names, exprs, params = _columns(
        key=key, trigger=trigger, binding_id=binding_id, redispatch_after=redispatch_after
    )
    cases_sql, cases_params = _subquery(cases, "id")
    clusters_sql, clusters_params = _subquery(clusters, "id", "executor")
    table = connection.ops.quote_name(ProbeRun._meta.db_table)
    active = ", ".join(["%s"] * len(ACTIVE_STATES))
    guard_sql, guard = _earlier_partition_guard(table, key)
    # The run this request already stored for a pair (a resumed tick) is not "another
    # active run": ON CONFLICT passes over it without counting it as skipped.
    sql = (
        "WITH p AS ("  # noqa: S608 (names and placeholders only; values are parameters)
        f"SELECT c.id AS case_id, k.id AS cluster_id, k.executor, EXISTS (SELECT 1 FROM {table} r"
        " WHERE r.case_id = c.id AND r.cluster_id = k.id"
        f" AND r.state IN ({active}) AND r.idempotency_key IS DISTINCT FROM"
        " (CAST(%s AS TEXT) || CAST(c.id AS TEXT) || ':' || CAST(k.id AS TEXT))) AS busy"
        f" FROM ({cases_sql}) c CROSS JOIN ({clusters_sql}) k WHERE k.id %% %s = %s),"
        f" ins AS (INSERT INTO {table} ({', '.join(names)})"
        f" SELECT {', '.join(exprs)}"
        f" FROM p WHERE NOT p.busy{guard_sql} ORDER BY p.case_id, p.cluster_id"
        " ON CONFLICT DO NOTHING RETURNING id)"
        " SELECT (SELECT count(*) FROM p WHERE p.busy), (SELECT array_agg(id) FROM ins)"
    )
    head = [*(str(state) for state in ACTIVE_STATES), f"{key}:", *cases_params, *clusters_params]
    return _Plan(sql=sql, params=[head, params, guard], slices=slices)


def _store_slice(plan: _Plan, index: int) -> CreateResult:
    """Insert one slice in a transaction of its own (or a savepoint of the caller's)."""
    head, columns, guard = plan.params
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(plan.sql, [*head, plan.slices, index, *columns, *guard])
        skipped, ids = cursor.fetchone()
    return CreateResult(created=list(ids or []), skipped=int(skipped))


def _wake_slice(plan: _Plan, part: CreateResult) -> None:
    """Wake dispatch for a committed slice: its share of the tick's claimer chains
    (a chain that caught up with the inserts has ended; this starts it again)."""
    share = math.ceil(settings.KUBEPROBE_DISPATCH_WAKE_MAX / plan.slices)
    dispatch_wake(runs=len(part.created), limit=share)


def _in_threads(plan: _Plan, workers: int) -> list[CreateResult]:
    def work(index: int) -> CreateResult:
        try:
            return _store_slice(plan, index)
        finally:
            connection.close()  # this thread's own connection

    parts = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fanout") as pool:
        # Published from this thread, as each slice commits: its runs are claimable now.
        for future in as_completed([pool.submit(work, i) for i in range(plan.slices)]):
            parts.append(future.result())
            _wake_slice(plan, parts[-1])
    return parts


def runs_fan_out(
    *,
    cases: QuerySet[Case],
    clusters: QuerySet[Cluster],
    trigger: str,
    key: str,
    binding_id: int | None = None,
    redispatch_after: timedelta | None = None,
) -> CreateResult:
    """Create a pending run for every case × cluster, in slices; wake dispatch as each commits.

    Same rules as runs_create: each run's idempotency key is `key:case:cluster`
    (a repeated or resumed request creates nothing twice), and a pair whose
    previous run is still active is skipped and counted, not stacked. Runs
    are inserted case by case within a slice, so consecutive ids (the order
    dispatch claims them in) spread over clusters instead of queueing one
    cluster's runs behind its QPS limit.

    On Postgres the clusters are cut into slices of about
    KUBEPROBE_FANOUT_SLICE_RUNS runs, each one INSERT … SELECT committed on
    its own, KUBEPROBE_FANOUT_CONNECTIONS at a time: Postgres inserts with one
    core per statement, and index upkeep, not Python, is the cost. Slices
    commit separately, so a caller that may die midway must be able to run
    the same request again (binding_fire_schedule keeps the tick open until
    this returns). Inside a caller's transaction the slices run one after
    another in it. Other databases (the quick start's SQLite) take runs_create.
    """
    window = redispatch_after or redispatch_window(None)
    if connection.vendor != "postgresql":
        pairs = [(c, k) for k in clusters.order_by("pk") for c in cases.order_by("pk")]
        return runs_create(
            pairs=pairs, trigger=trigger, key=key, binding_id=binding_id, redispatch_after=window
        )
    runs = cases.order_by().count() * clusters.order_by().count()
    slices = max(1, min(64, math.ceil(runs / settings.KUBEPROBE_FANOUT_SLICE_RUNS)))
    plan = _plan(
        cases=cases,
        clusters=clusters,
        trigger=trigger,
        key=key,
        binding_id=binding_id,
        redispatch_after=window,
        slices=slices,
    )
    workers = min(slices, settings.KUBEPROBE_FANOUT_CONNECTIONS)
    if connection.in_atomic_block or workers <= 1:
        parts = []
        for index in range(slices):
            part = _store_slice(plan, index)
            transaction.on_commit(lambda part=part: _wake_slice(plan, part))  # type: ignore[misc]
            parts.append(part)
    else:
        parts = _in_threads(plan, workers)
    return CreateResult(
        created=[run_id for part in parts for run_id in part.created],
        skipped=sum(part.skipped for part in parts),
    )


def wake_count(runs: int) -> int:
    """How many claimers to start for `runs` new pending runs.

    One per batch, up to KUBEPROBE_DISPATCH_WAKE_MAX: each claimer that finds a
    full batch passes the baton on (tasks.dispatch_pending), so that many
    chains drain the queue in parallel however large the tick.
    """
    if runs <= 0:
        return 0
    batches = math.ceil(runs / settings.KUBEPROBE_DISPATCH_BATCH)
    return min(batches, settings.KUBEPROBE_DISPATCH_WAKE_MAX)


def dispatch_wake(*, runs: int, countdown: float | None = None, limit: int | None = None) -> int:
    """Publish the wake-up messages for `runs` claimable runs (at most `limit`). Returns how many."""
    from apps.runs.tasks import dispatch_pending

    count = min(wake_count(runs), limit if limit is not None else runs)
    for _ in range(count):
        dispatch_pending.apply_async(countdown=countdown)
    return count
