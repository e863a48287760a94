"""The runs table partitioned by id ranges per time window (apps/runs/partitions.py, Postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.alerts.models import Alert, AlertFlip
from apps.diagnosis.models import RunDiagnosis
from apps.runs import partitions
from apps.runs.cleanup import runs_purge
from apps.runs.models import ProbeRun, RunPartition
from apps.runs.partitions import STRIDE, partition_name
from apps.runs.services import runs_create
from tests.factories import CaseFactory, ClusterFactory, ProbeRunFactory

pytestmark = pytest.mark.django_db


def _sql(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return list(cur.fetchall()) if cur.description else []


def _partition_of(run_id: int) -> str:
    return str(
        _sql("SELECT tableoid::regclass::text FROM runs_proberun WHERE id = %s", [run_id])[0][0]
    )


@pytest.fixture
def sequence() -> Iterator[None]:
    """Sequences are not transactional: put the id sequence back after the test's
    rolled-back partitions, or later tests would get ids no partition holds."""
    (value,) = _sql(f"SELECT last_value FROM {partitions.SEQUENCE}")[0]  # noqa: S608
    yield
    _sql("SELECT setval(%s, %s)", [partitions.SEQUENCE, value])


def test_the_runs_table_is_partitioned_by_id_with_one_partition_ahead() -> None:
    assert partitions.is_partitioned()
    ((strategy, key),) = _sql(
        "SELECT p.partstrat, pg_get_partkeydef(p.partrelid) FROM pg_partitioned_table p"
        " WHERE p.partrelid = 'runs_proberun'::regclass"
    )
    assert (strategy, key) == ("r", "RANGE (id)")
    run = ProbeRunFactory()
    assert _partition_of(run.pk) == partition_name(0)
    assert partitions._existing(connection.cursor()) >= {0, 1}


def test_a_report_update_by_id_reads_one_partition(sequence: None) -> None:
    partitions.partitions_maintain(now=timezone.now() + timedelta(days=2))  # opens a 3rd
    run = ProbeRunFactory()
    assert run.pk >= STRIDE
    # The grouped report statement's shape (reporting/store.py): id = ANY($array).
    plan = "\n".join(
        row[0]
        for row in _sql(
            "EXPLAIN UPDATE runs_proberun SET state = 'succeeded' WHERE id = ANY(%s::bigint[])",
            [[run.pk]],
        )
    )
    scanned = {
        name for name in partitions._existing(connection.cursor()) if partition_name(name) in plan
    }
    assert scanned == {run.pk // STRIDE}, plan


def test_opening_a_window_moves_new_runs_into_the_next_partition(sequence: None) -> None:
    before = ProbeRunFactory()
    now = timezone.now()
    first = partitions.partitions_maintain(now=now)  # no window opened yet: opens one
    assert first.opened == before.pk // STRIDE + 1
    inside = ProbeRunFactory()
    assert inside.pk == first.opened * STRIDE
    assert _partition_of(inside.pk) == partition_name(first.opened)
    # Within the window nothing moves; the partition after it exists already.
    again = partitions.partitions_maintain(now=now + timedelta(hours=23))
    assert again.opened is None
    assert first.opened + 1 in partitions._existing(connection.cursor())
    later = partitions.partitions_maintain(now=now + timedelta(hours=24))
    assert later.opened == first.opened + 1
    assert RunPartition.objects.get(number=later.opened).opened_at == now + timedelta(hours=24)
    assert ProbeRunFactory().pk == later.opened * STRIDE


def test_a_window_that_overflows_its_ids_lands_in_the_partition_created_ahead(
    sequence: None,
) -> None:
    partitions.partitions_maintain()
    (value,) = _sql(f"SELECT last_value FROM {partitions.SEQUENCE}")[0]  # noqa: S608
    boundary = (value // STRIDE + 1) * STRIDE
    _sql("SELECT setval(%s, %s)", [partitions.SEQUENCE, boundary - 2])
    last, over = ProbeRunFactory(), ProbeRunFactory()
    assert (last.pk, over.pk) == (boundary - 1, boundary)
    assert _partition_of(last.pk) != _partition_of(over.pk) == partition_name(boundary // STRIDE)
    # The next maintenance keeps one partition ahead of the one the ids are in now.
    made = partitions.partitions_maintain(now=timezone.now() - timedelta(minutes=1))
    assert boundary // STRIDE + 1 in partitions._existing(connection.cursor()), made


def test_retention_drops_old_partitions_whole_and_keeps_what_points_at_them_consistent(
    sequence: None,
) -> None:
    case, cluster = CaseFactory(), ClusterFactory()
    now = timezone.now()
    old = [ProbeRunFactory(case=case, cluster=cluster, state="failed") for _ in range(3)]
    ProbeRun.objects.filter(pk__in=[r.pk for r in old]).update(
        created_at=now - timedelta(days=40), finished_at=now - timedelta(days=40)
    )
    alert = Alert.objects.create(case=case, cluster=cluster, latest_run=old[0])
    flip = AlertFlip.objects.create(
        alert=alert,
        event="firing",
        old_state="ok",
        new_state="firing",
        severity="critical",
        run=old[1],
    )
    RunDiagnosis.objects.create(run=old[2])
    old_partition = old[0].pk // STRIDE
    partitions.partitions_maintain(now=now)
    kept = ProbeRunFactory(case=case, cluster=cluster)
    assert kept.pk // STRIDE > old_partition

    # A test's inserts leave deferred FK checks pending, which ALTER TABLE refuses to
    # run under; the beat task starts a transaction of its own.
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    assert runs_purge(now=now) == 3
    assert old_partition not in partitions._existing(connection.cursor())
    assert not ProbeRun.objects.filter(pk__in=[r.pk for r in old]).exists()
    assert ProbeRun.objects.filter(pk=kept.pk).exists()
    alert.refresh_from_db()
    flip.refresh_from_db()
    assert (alert.latest_run_id, flip.run_id) == (None, None)  # SET_NULL, as Django would
    assert not RunDiagnosis.objects.exists()  # CASCADE
    # The current partition is never dropped, even when all its runs are old.
    ProbeRun.objects.filter(pk=kept.pk).update(
        created_at=now - timedelta(days=40), finished_at=now - timedelta(days=40)
    )
    assert runs_purge(now=now) == 0


def test_a_partition_with_a_recent_or_unfinished_run_is_kept(sequence: None) -> None:
    now = timezone.now()
    old = ProbeRunFactory(state="succeeded")
    active = ProbeRunFactory(state="running")
    ProbeRun.objects.filter(pk__in=[old.pk, active.pk]).update(
        created_at=now - timedelta(days=40), finished_at=None
    )
    ProbeRun.objects.filter(pk=old.pk).update(finished_at=now - timedelta(days=40))
    partitions.partitions_maintain(now=now)
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # see above
    assert runs_purge(now=now) == 0
    assert ProbeRun.objects.filter(pk=old.pk).exists()
    ProbeRun.objects.filter(pk=active.pk).update(
        state="timed_out",
        finished_at=now - timedelta(days=1),  # finished late: kept
    )
    assert runs_purge(now=now) == 0
    ProbeRun.objects.filter(pk=active.pk).update(finished_at=now - timedelta(days=31))
    assert runs_purge(now=now) == 2


def test_idempotency_keys_still_dedupe_within_a_partition() -> None:
    case, cluster = CaseFactory(), ClusterFactory()
    first = runs_create(pairs=[(case, cluster)], trigger="schedule", key="tick-1")
    again = runs_create(pairs=[(case, cluster)], trigger="schedule", key="tick-1")
    assert len(first.created) == 1 and (again.created, again.duplicates) == ([], 1)
    assert ProbeRun.objects.filter(idempotency_key__startswith="tick-1:").count() == 1
    # A racing twin that skipped the pre-check is stopped by the partition's unique index.
    _sql(
        "INSERT INTO runs_proberun (case_id, cluster_id, trigger, state, idempotency_key,"
        " token_hash, executor, pod_name, created_at, enqueued_at, redispatch_after,"
        " dispatch_attempts, errors, steps, metrics, reason, log_tail, diagnostics,"
        " root_cause, root_cause_component, root_cause_source, root_cause_summary)"
        " SELECT case_id, cluster_id, trigger, state, idempotency_key, token_hash, executor,"
        " pod_name, created_at, enqueued_at, redispatch_after, dispatch_attempts, errors, steps,"
        " metrics, reason, log_tail, diagnostics, root_cause, root_cause_component,"
        " root_cause_source, root_cause_summary FROM runs_proberun WHERE id = %s"
        " ON CONFLICT DO NOTHING",
        [first.created[0]],
    )
    assert ProbeRun.objects.filter(idempotency_key__startswith="tick-1:").count() == 1


def test_a_fan_out_repeated_after_a_new_window_opened_stores_nothing_twice(
    sequence: None,
) -> None:
    """The unique index is per partition; fan-out also looks in the previous one."""
    from apps.catalog.models import Case
    from apps.clusters.models import Cluster
    from apps.runs.fanout import runs_fan_out

    cases = [CaseFactory() for _ in range(2)]
    clusters = [ClusterFactory() for _ in range(3)]
    request = {
        "cases": Case.objects.filter(pk__in=[c.pk for c in cases]),
        "clusters": Cluster.objects.filter(pk__in=[k.pk for k in clusters]),
        "trigger": "schedule",
        "key": "tick-boundary",
    }
    first = runs_fan_out(**request)
    assert len(first.created) == 6
    ProbeRun.objects.filter(pk__in=first.created).update(
        state="succeeded", finished_at=timezone.now()
    )
    opened = partitions.partitions_maintain(now=timezone.now() + timedelta(days=2)).opened
    assert opened is not None and ProbeRunFactory().pk >= opened * STRIDE  # new ids, new partition
    again = runs_fan_out(**request)
    assert again.created == [] and again.skipped == 0
    assert ProbeRun.objects.filter(idempotency_key__startswith="tick-boundary:").count() == 6


class _Editor:
    connection = connection


def test_migrating_an_existing_table_with_rows_keeps_rows_ids_indexes_and_references() -> None:
    """Migration 0009 on a plain runs table as Django made it before (identity id,
    unique idempotency key, partial indexes, foreign keys both ways), in a scratch
    schema that shadows the real table."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("apps.runs.migrations.0009_partition_runs")
    template = ProbeRunFactory()  # the real table's row, copied three times below
    _sql("CREATE SCHEMA mig_old")
    _sql("SET LOCAL search_path TO mig_old, public")
    _sql(
        "CREATE TABLE mig_old.runs_proberun (LIKE public.runs_proberun"
        " INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    for statement in (
        "ALTER TABLE runs_proberun ALTER id DROP DEFAULT",
        "ALTER TABLE runs_proberun ALTER id ADD GENERATED BY DEFAULT AS IDENTITY",
        "ALTER TABLE runs_proberun ADD CONSTRAINT runs_proberun_pkey PRIMARY KEY (id)",
        "ALTER TABLE runs_proberun ADD CONSTRAINT run_idempotency_key_uniq"
        " UNIQUE (idempotency_key)",
        "CREATE INDEX run_recent ON runs_proberun (created_at DESC, id DESC)",
        "CREATE INDEX run_finished ON runs_proberun (finished_at, id)"
        " WHERE finished_at IS NOT NULL",
        "ALTER TABLE runs_proberun ADD CONSTRAINT runs_case_fk FOREIGN KEY (case_id)"
        " REFERENCES catalog_case (id) DEFERRABLE INITIALLY DEFERRED",
        "CREATE TABLE ref (id serial PRIMARY KEY, run_id bigint REFERENCES runs_proberun (id)"
        " DEFERRABLE INITIALLY DEFERRED)",
    ):
        _sql(statement)
    columns = [
        c
        for (c,) in _sql(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'runs_proberun'::regclass"
            " AND attnum > 0 AND NOT attisdropped AND attname <> 'id'"
        )
    ]
    names = ", ".join(columns)
    for key in ("a", "b", "c"):
        _sql(
            f"INSERT INTO mig_old.runs_proberun ({names}) SELECT"  # noqa: S608 (column names)
            f" {names.replace('idempotency_key', '%s')} FROM public.runs_proberun WHERE id = %s",
            [key, template.pk],
        )
    _sql("INSERT INTO ref (run_id) VALUES (2)")
    _sql("SET CONSTRAINTS ALL IMMEDIATE")

    migration.partition(apps, _Editor())

    assert _sql(
        "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'runs_proberun'::regclass"
    ) == [(1,)]
    assert _sql(
        "SELECT id, idempotency_key, tableoid::regclass::text FROM runs_proberun ORDER BY id"
    ) == [
        (1, "a", "runs_proberun_p00000"),
        (2, "b", "runs_proberun_p00000"),
        (3, "c", "runs_proberun_p00000"),
    ]
    copy = f"INSERT INTO runs_proberun ({names}) SELECT {names.replace('idempotency_key', '%s')}"
    _sql(f"{copy} FROM runs_proberun WHERE id = 1", ["d"])
    assert _sql("SELECT max(id) FROM runs_proberun") == [(4,)]  # numbering continues
    indexes = {
        name
        for (name,) in _sql(
            "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
            " WHERE x.indrelid = 'runs_proberun'::regclass"
        )
    }
    assert indexes == {"runs_proberun_pkey", "run_recent", "run_finished"}
    attached = _sql(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent"
        " WHERE c.relname IN ('run_recent', 'run_finished', 'runs_proberun_pkey')"
        " AND c.relnamespace = 'mig_old'::regnamespace"
    )
    assert attached == [(6,)]  # each adopted on p00000 and built on p00001
    (referenced,) = _sql(
        "SELECT confrelid::regclass::text FROM pg_constraint WHERE conrelid = 'ref'::regclass"
        " AND contype = 'f' AND conparentid = 0"  # not its per-partition pieces
    )
    assert referenced == ("runs_proberun",)
    with (
        pytest.raises(Exception, match="violates foreign key"),
        connection.cursor() as cur,
        transaction.atomic(),
    ):
        cur.execute("INSERT INTO ref (run_id) VALUES (999)")
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with (
        pytest.raises(Exception, match="duplicate key"),
        connection.cursor() as cur,
        transaction.atomic(),
    ):
        # The partition keeps the old table's unique idempotency key.
        cur.execute(f"{copy.replace('%s', 'idempotency_key')} FROM runs_proberun WHERE id = 1")
    _sql("RESET search_path")
