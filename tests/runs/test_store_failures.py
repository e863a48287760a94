"""The report write path survives a refused row and a killed connection."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.crypto import hash_token
from apps.runs.models import ProbeRun, RunState
from apps.runs.reporting import store
from apps.runs.reporting.protocols import Report
from tests.runs.helpers import running_runs as running

TOKEN = "tok-" + "y" * 30


@pytest.mark.django_db(transaction=True)
def test_one_report_the_database_refuses_does_not_fail_its_batch() -> None:
    good, other = running(2)
    now = timezone.now()
    batch = [
        store.Pending(
            run_id=good.pk, token_hash=hash_token(TOKEN), report=Report(ok=True), now=now
        ),
        store.Pending(
            run_id=2**63 + 5, token_hash="x", report=Report(ok=True), now=now
        ),  # out of range
        store.Pending(
            run_id=other.pk,
            token_hash=hash_token(TOKEN),
            report=Report(ok=False, errors=["e"]),
            now=now,
        ),
    ]
    store._flush(batch)
    assert batch[0].stored and batch[2].stored
    assert batch[1].error is not None and batch[1].stored is None
    assert ProbeRun.objects.get(pk=good.pk).state == RunState.SUCCEEDED
    assert ProbeRun.objects.get(pk=other.pk).state == RunState.FAILED


@pytest.mark.django_db(transaction=True)
def test_writer_recovers_from_a_killed_connection(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60
    first, second = running(2)
    item = store.Pending(
        run_id=first.pk, token_hash=hash_token(TOKEN), report=Report(ok=True), now=timezone.now()
    )
    store._flush([item])
    assert item.stored
    with connection.cursor() as cursor:  # kill the writer's backend (same thread here)
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    from psycopg import connect

    db = settings.DATABASES["default"]
    with connect(
        dbname=db["NAME"],
        user=db.get("USER") or "postgres",
        host=db.get("HOST") or "127.0.0.1",
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    item = store.Pending(
        run_id=second.pk, token_hash=hash_token(TOKEN), report=Report(ok=True), now=timezone.now()
    )
    store._flush([item])
    assert item.stored and item.error is None
    connection.close()
