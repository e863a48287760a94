"""Finished runs reach alert evaluation in bulk, off the report's request thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from apps.alerts.models import Alert
from apps.postrun.tasks import process_finished_runs
from apps.runs.reporting import handoff
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory
from tests.utils import wait_for


def test_a_burst_of_finished_runs_becomes_a_few_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[list[tuple[int, int]]] = []
    callers: set[str] = set()

    def record(pairs: list[tuple[int, int]]) -> None:
        callers.add(threading.current_thread().name)
        published.append(list(pairs))

    monkeypatch.setattr(process_finished_runs, "delay", record)
    for i in range(300):
        handoff.hand_off(i % 30, i)  # 300 pairs, some repeated cases
    handoff.hand_off(0, 0)  # a duplicate pair is judged once
    wait_for(lambda: sum(len(p) for p in published) >= 300, timeout=10)
    everything = [pair for batch in published for pair in batch]
    assert sorted(everything) == sorted({(i % 30, i) for i in range(300)})
    assert len(published) <= 10  # bulk, not one task per report
    assert all(len(batch) <= handoff.MAX_PAIRS_PER_TASK for batch in published)
    assert callers == {"post-run-handoff"}  # never the caller's thread


@pytest.mark.django_db(transaction=True)
def test_handed_off_pairs_are_judged(settings: Any) -> None:
    from kubeprobe_site.celery import app

    app.conf.task_always_eager = True
    try:
        case, cluster = CaseFactory(), ClusterFactory()
        run = add_run(case, cluster, False)
        handoff.hand_off(case.pk, cluster.pk)
        alert = wait_for(
            lambda: Alert.objects.filter(case=case, cluster=cluster, latest_run=run).first(),
            timeout=10,
        )
        assert alert.latest_state == "failed"
    finally:
        app.conf.task_always_eager = False
