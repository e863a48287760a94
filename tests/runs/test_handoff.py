"""Finished runs reach alert evaluation in bulk, off the report's request thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apps.alerts.models import Alert
from apps.postrun import pipeline
from apps.postrun.tasks import process_finished_runs
from apps.runs.reporting import handoff
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory
from tests.utils import wait_for


@pytest.fixture
def empty_set() -> Iterator[None]:
    handoff.pending_claim(limit=1_000_000)
    yield
    handoff.pending_claim(limit=1_000_000)


@pytest.mark.usefixtures("empty_set")
def test_a_burst_of_finished_runs_becomes_a_few_wake_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    woken: list[tuple[Any, ...]] = []
    callers: set[str] = set()

    def record(*args: Any) -> None:
        callers.add(threading.current_thread().name)
        woken.append(args)

    monkeypatch.setattr(process_finished_runs, "delay", record)
    for i in range(300):
        handoff.hand_off(i % 30, i)  # 300 pairs, some repeated cases
    handoff.hand_off(0, 0)  # a duplicate pair is judged once
    wait_for(lambda: handoff.pending_count() >= 300 and woken, timeout=10)
    assert all(args == () for args in woken)  # the pairs wait in Redis, not in the message
    assert len(woken) <= 10  # bulk, not one task per report
    assert callers == {"post-run-handoff"}  # never the caller's thread
    # Two workers claiming at once get disjoint batches, each at most `limit` pairs.
    first, second = handoff.pending_claim(limit=200), handoff.pending_claim(limit=200)
    assert (len(first), len(second)) == (200, 100) and not set(first) & set(second)
    assert sorted(first + second) == sorted({(i % 30, i) for i in range(300)})
    assert handoff.pending_claim() == []


@pytest.mark.usefixtures("empty_set")
def test_the_pairs_waiting_longest_are_claimed_first(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(handoff.time, "time", lambda: clock[0])
    handoff.pending_park([(9, 9), (5, 5)])
    clock[0] += 1
    handoff.pending_park([(1, 1), (9, 9)])  # (9, 9) waits already: it keeps its place
    clock[0] += 1
    handoff.pending_park([(2, 2)])
    assert handoff.pending_claim(limit=2) == [(5, 5), (9, 9)]
    assert handoff.pending_claim(limit=2) == [(1, 1), (2, 2)]


@pytest.mark.usefixtures("empty_set")
def test_without_a_redis_set_the_pairs_travel_in_the_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published: list[list[tuple[int, int]]] = []

    def no_set(pairs: list[tuple[int, int]]) -> None:
        raise ConnectionError("not a Redis broker")

    monkeypatch.setattr(handoff, "pending_park", no_set)
    monkeypatch.setattr(process_finished_runs, "delay", lambda pairs: published.append(pairs))
    for i in range(1200):
        handoff.hand_off(1, i)
    wait_for(lambda: sum(len(p) for p in published) >= 1200, timeout=10)
    assert all(len(batch) <= handoff.MAX_PAIRS_PER_TASK for batch in published)
    assert sorted(pair for batch in published for pair in batch) == [(1, i) for i in range(1200)]


@pytest.mark.django_db
@pytest.mark.usefixtures("empty_set")
def test_a_wake_up_judges_one_batch_and_wakes_another_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    judged: list[list[tuple[int, int]]] = []
    woken: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        pipeline, "finished_pairs_process", lambda pairs: judged.append(list(pairs)) or []
    )
    monkeypatch.setattr(process_finished_runs, "delay", lambda *args: woken.append(args))
    handoff.pending_park([(1, i) for i in range(handoff.MAX_PAIRS_PER_TASK + 20)])
    process_finished_runs()
    assert len(judged) == 1 and len(judged[0]) == handoff.MAX_PAIRS_PER_TASK
    assert woken == [()]  # 20 left: another worker (or this one, later) takes them
    process_finished_runs()
    assert len(judged[1]) == 20 and woken == [()]  # nothing left: no wake-up
    process_finished_runs()  # a wake-up that finds nothing judges nothing
    assert len(judged) == 2


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
