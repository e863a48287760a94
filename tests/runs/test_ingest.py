"""Report storage: the grouped writer under concurrency, the portable path, retention."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.crypto import hash_token
from apps.runs import cleanup, partitions
from apps.runs.models import ProbeRun, RunState
from apps.runs.reporting import store
from apps.runs.reporting.protocols import Report
from tests.runs.helpers import running_runs


def running_pairs(count: int) -> list[tuple[int, str]]:
    """(run id, its token) of `count` running runs, each with a token of its own."""
    runs = running_runs(count, token=token_of)
    return [(run.pk, token_of(i)) for i, run in enumerate(runs)]


def token_of(i: int) -> str:
    return f"token-{i}-" + "x" * 20


@pytest.mark.django_db(transaction=True)
def test_grouped_writer_stores_each_run_once_under_concurrency(live_server, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_REPORT_BATCHING = True
    runs = running_pairs(30)
    # Every run reported twice at once, plus one report with a wrong token each.
    attempts = [
        attempt
        for run_id, token in runs
        for attempt in (
            (run_id, token, True),
            (run_id, token, False),
            (run_id, "wrong-token", True),
        )
    ]
    results: dict[int, list[int]] = {run_id: [] for run_id, _ in runs}
    lock = threading.Lock()

    def post(run_id: int, token: str, ok: bool, barrier: threading.Barrier) -> None:
        body = {"ok": ok, "errors": [] if ok else ["x"]}
        request = urllib.request.Request(
            f"{live_server.url}/api/v1/runs/{run_id}/report",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        with lock:
            results[run_id].append(status)

    # Waves of 12 simultaneous requests: the test server's listen backlog is small.
    for start in range(0, len(attempts), 12):
        wave = attempts[start : start + 12]
        barrier = threading.Barrier(len(wave))
        threads = [threading.Thread(target=post, args=(*a, barrier)) for a in wave]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    for run_id, statuses in results.items():
        assert sorted(statuses) == [200, 401, 409], (run_id, statuses)
    assert ProbeRun.objects.filter(state__in=[RunState.SUCCEEDED, RunState.FAILED]).count() == 30
    # The stored result is the one that got the 200 (ok and state agree).
    for run in ProbeRun.objects.all():
        assert run.ok is (run.state == RunState.SUCCEEDED)
        assert run.duration_ms is not None and run.finished_at is not None


@pytest.mark.django_db
def test_portable_path_applies_the_same_conditions() -> None:
    (run_id, token), (late_id, late_token) = running_pairs(2)
    ProbeRun.objects.filter(pk=late_id).update(deadline=timezone.now() - timedelta(hours=1))
    now = timezone.now()

    def pending(rid: int, tok: str) -> store.Pending:
        return store.Pending(
            run_id=rid, token_hash=hash_token(tok), report=Report(ok=True), now=now
        )

    assert store._store_orm(pending(run_id, "wrong")) is None
    assert store._store_orm(pending(late_id, late_token)) is None
    assert store._store_orm(pending(run_id, token)) is not None
    assert store._store_orm(pending(run_id, token)) is None  # the first result stays
    assert ProbeRun.objects.get(pk=run_id).state == RunState.SUCCEEDED
    assert ProbeRun.objects.get(pk=late_id).state == RunState.RUNNING


@pytest.mark.django_db
def test_finished_runs_past_retention_are_purged_in_batches(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The row-wise purge of a table that is not partitioned (SQLite); a partitioned
    # one drops whole partitions instead (tests/runs/test_partitions.py).
    monkeypatch.setattr(partitions, "is_partitioned", lambda: False)
    settings.KUBEPROBE_RUN_RETENTION_DAYS = 30
    runs = running_pairs(7)
    old = timezone.now() - timedelta(days=31)
    ids = [r for r, _ in runs]
    ProbeRun.objects.filter(pk__in=ids[:5]).update(state=RunState.SUCCEEDED, finished_at=old)
    ProbeRun.objects.filter(pk=ids[5]).update(state=RunState.FAILED, finished_at=timezone.now())
    assert cleanup.runs_purge(batch=2) == 5
    assert (
        sorted(ProbeRun.objects.values_list("pk", flat=True)) == ids[5:]
    )  # recent and active stay
    assert connection.vendor == "postgresql"
