"""The report statement updates the run's partition, not the partitioned table.

A generic plan on the partitioned table locks every partition at each
execution before it prunes them (Postgres 15), so its cost grew with the
partitions retention keeps (bench/runs_10m.py, docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.core.crypto import hash_token
from apps.runs import partitions
from apps.runs.models import ProbeRun, RunState
from apps.runs.reporting import store
from apps.runs.reporting.protocols import Report
from tests.runs.helpers import running_runs

TOKEN = "parts-" + "q" * 30
FAR = 900  # a partition number no other test opens


def _sql(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return list(cur.fetchall()) if cur.description else []


def _pending(run_id: int) -> store.Pending:
    return store.Pending(
        run_id=run_id, token_hash=hash_token(TOKEN), report=Report(ok=True), now=timezone.now()
    )


def _move_to(run: ProbeRun, number: int, offset: int = 1) -> int:
    """Move a run into partition `number` (an UPDATE of the key moves the row)."""
    new_id = number * partitions.STRIDE + offset
    _sql("UPDATE runs_proberun SET id = %s WHERE id = %s", [new_id, run.pk])
    return new_id


def _locked_partitions() -> set[str]:
    rows = _sql(
        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relkind = 'r'"
        " AND c.relname LIKE %s",
        [partitions.TABLE + "_p%"],
    )
    return {name for (name,) in rows}


@pytest.fixture
def far_partition() -> Iterator[int]:
    """Partition FAR, committed (the tests need their own transactions), then dropped."""
    with connection.cursor() as cur:
        partitions._create(cur, FAR)
    yield FAR
    name = partitions.partition_name(FAR)
    if _sql("SELECT to_regclass(%s)", [name])[0][0] is not None:
        _sql(f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {name}")
        _sql(f"DROP TABLE {name}")
    connection.close()  # its prepared statements go with the session


@pytest.mark.django_db(transaction=True)
def test_a_report_locks_only_its_runs_partition(far_partition: int) -> None:
    old, moved = running_runs(2, token=TOKEN)
    far_id = _move_to(moved, far_partition)
    assert {0, 1, far_partition} <= partitions._existing(connection.cursor())
    with transaction.atomic():  # the locks last until it ends
        assert set(store._store_rows([_pending(far_id)])) == {far_id}
        assert _locked_partitions() == {partitions.partition_name(far_partition)}
    with transaction.atomic():
        assert set(store._store_rows([_pending(old.pk)])) == {old.pk}
        assert _locked_partitions() == {partitions.partition_name(0)}
    assert ProbeRun.objects.get(pk=far_id).state == RunState.SUCCEEDED


@pytest.mark.django_db
def test_a_batch_over_two_partitions_stores_every_run_once() -> None:
    first, second, third = running_runs(3, token=TOKEN)
    with connection.cursor() as cur:
        partitions._create(cur, FAR)
    far_id = _move_to(second, FAR)
    stored = store._store_rows([_pending(first.pk), _pending(far_id), _pending(third.pk)])
    assert set(stored) == {first.pk, far_id, third.pk}
    assert store._store_rows([_pending(far_id), _pending(first.pk)]) == {}  # the first wins
    assert ProbeRun.objects.filter(state=RunState.SUCCEEDED).count() == 3


@pytest.mark.django_db
def test_a_run_id_in_no_partition_is_not_stored_and_not_remembered() -> None:
    (run,) = running_runs(1, token=TOKEN)
    pgconn = connection.connection.pgconn if connection.connection else None
    before = dict(store._prepared.get(pgconn, {})) if pgconn else {}
    for number in (FAR + 1, FAR + 2, FAR + 3):
        assert store._store_rows([_pending(number * partitions.STRIDE + 7)]) == {}
    statements = store._prepared[connection.connection.pgconn]
    assert set(statements) - set(before) <= {store._PARENT, 0}  # not one per bogus partition
    assert store._store_rows([_pending(run.pk)]) == {run.pk: (run.case_id, run.cluster_id)}


@pytest.mark.django_db(transaction=True)
def test_a_statement_whose_partition_was_dropped_falls_back_to_the_table(
    far_partition: int,
) -> None:
    kept, gone = running_runs(2, token=TOKEN)
    gone_id = _move_to(gone, far_partition)
    _move_to(kept, far_partition, offset=2)
    assert store._store_rows([_pending(gone_id)]) == {gone_id: (gone.case_id, gone.cluster_id)}
    # Retention drops the partition after a statement naming it was prepared.
    name = partitions.partition_name(far_partition)
    _sql(f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {name}")
    _sql(f"DROP TABLE {name}")
    assert store._store_rows([_pending(far_partition * partitions.STRIDE + 2)]) == {}
    statements = store._prepared[connection.connection.pgconn]
    assert far_partition not in statements and store._PARENT in statements
    (other,) = running_runs(1, token=TOKEN)
    assert set(store._store_rows([_pending(other.pk)])) == {other.pk}


@pytest.mark.django_db(transaction=True)
def test_a_refused_report_in_one_partition_keeps_the_other_partitions_results(
    far_partition: int,
) -> None:
    near, far = running_runs(2, token=TOKEN)
    far_id = _move_to(far, far_partition)
    bogus = store.Pending(
        run_id=2**63 + 5, token_hash="x", report=Report(ok=True), now=timezone.now()
    )  # out of bigint's range: the database refuses its statement
    batch = [_pending(near.pk), bogus, _pending(far_id)]
    store._flush(batch)
    assert batch[0].stored == (near.case_id, near.cluster_id)
    assert batch[2].stored == (far.case_id, far.cluster_id)
    assert batch[1].error is not None and batch[1].stored is None


@pytest.mark.django_db(transaction=True)
def test_a_report_stored_first_in_an_atomic_block_rolls_back_with_it() -> None:
    (run,) = running_runs(1, token=TOKEN)
    connection.close()  # a fresh session: the block's first statement is the report's
    with pytest.raises(RuntimeError), transaction.atomic():
        assert store.store(_pending(run.pk)) == (run.case_id, run.cluster_id)
        raise RuntimeError("the caller fails after storing")
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING
