"""The leader/follower group commit with real threads on Postgres."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.crypto import hash_token
from apps.runs.models import ProbeRun, RunState
from apps.runs.partitions import STRIDE
from apps.runs.reporting import store
from apps.runs.reporting.protocols import Report
from tests.runs.helpers import running_runs

TOKEN = "group-" + "z" * 30


def running_ids(count: int) -> list[int]:
    return [run.pk for run in running_runs(count, token=TOKEN)]


def pending(run_id: int, ok: bool = True, token: str = TOKEN) -> store.Pending:
    report = Report(ok=True) if ok else Report(ok=False, errors=["boom"])
    return store.Pending(
        run_id=run_id, token_hash=hash_token(token), report=report, now=timezone.now()
    )


class _SignallingCondition(threading.Condition):
    """Tells the test when the leader starts waiting for announced reports."""

    def __init__(self) -> None:
        super().__init__()
        self.leader_waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.leader_waiting.set()
        return super().wait(timeout)


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> Iterator[store._GroupCommit]:
    fresh = store._GroupCommit()
    fresh.cond = _SignallingCondition()
    monkeypatch.setattr(store, "_group", fresh)
    # Long enough that only an arrival or a withdrawal can end a leader's wait.
    monkeypatch.setattr(store, "COLLECT_SECONDS", 60.0)
    yield fresh


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The run ids of each UPDATE statement, in order."""
    seen: list[list[int]] = []
    real = store._store_rows

    def spy(items: list[store.Pending]) -> dict[int, tuple[int, int]]:
        seen.append([item.run_id for item in items])
        return real(items)

    monkeypatch.setattr(store, "_store_rows", spy)
    return seen


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = target()
        except Exception as exc:  # surfaced by the test's assertions
            out["error"] = exc
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def store_announced(item: store.Pending) -> tuple[int, int] | None:
    with store.arriving():
        return store.store(item)


@pytest.mark.django_db(transaction=True)
def test_the_leader_waits_for_an_announced_report_and_stores_both_at_once(
    group: store._GroupCommit, statements: list[list[int]]
) -> None:
    first, second = running_ids(2)
    with store.arriving():  # this thread's report is on its way
        thread, out = in_thread(lambda: store_announced(pending(first)))
        assert group.cond.leader_waiting.wait(10)  # type: ignore[attr-defined]
        mine = store.store(pending(second, ok=False))
    thread.join(10)
    assert not thread.is_alive()
    assert "error" not in out and out["result"] is not None and mine is not None
    assert statements == [[first, second]]
    assert ProbeRun.objects.get(pk=first).state == RunState.SUCCEEDED
    assert ProbeRun.objects.get(pk=second).state == RunState.FAILED
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_report_rejected_before_storing_releases_the_waiting_leader(
    group: store._GroupCommit, statements: list[list[int]]
) -> None:
    [run_id] = running_ids(1)
    with store.arriving():  # announced, then rejected (e.g. a 400): never stored
        thread, out = in_thread(lambda: store_announced(pending(run_id)))
        assert group.cond.leader_waiting.wait(10)  # type: ignore[attr-defined]
    thread.join(10)  # far below the 60 s bound: the withdrawal woke the leader
    assert not thread.is_alive()
    assert out.get("result") is not None
    assert statements == [[run_id]]
    assert group.arriving == 0 and not group.leading and not group.queue
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_are_each_stored_once_and_leadership_is_handed_on(
    monkeypatch: pytest.MonkeyPatch, statements: list[list[int]]
) -> None:
    monkeypatch.setattr(store, "_group", store._GroupCommit())
    runs = running_ids(24)
    # Every run reported twice at once (one must lose), plus a wrong token each.
    attempts = [
        (run_id, ok, token)
        for run_id in runs
        for ok, token in ((True, TOKEN), (False, TOKEN), (True, "wrong"))
    ]
    barrier = threading.Barrier(len(attempts))
    results: dict[tuple[int, bool, str], Any] = {}

    def report(attempt: tuple[int, bool, str]) -> None:
        run_id, ok, token = attempt
        barrier.wait()
        try:
            results[attempt] = store_announced(pending(run_id, ok, token))
        finally:
            connection.close()

    threads = [threading.Thread(target=report, args=(a,)) for a in attempts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(results) == len(attempts)
    for run_id in runs:
        accepted = [ok for (rid, ok, _), stored in results.items() if rid == run_id and stored]
        assert len(accepted) == 1, run_id  # one winner; the wrong token never stores
        run = ProbeRun.objects.get(pk=run_id)
        assert run.ok is accepted[0]  # the stored result is the one that was accepted
        assert run.state == (RunState.SUCCEEDED if accepted[0] else RunState.FAILED)
    # Grouped: fewer statements than reports, and never one run twice in one.
    assert len(statements) < len(attempts)
    assert all(len(ids) == len(set(ids)) for ids in statements)
    assert not store._group.leading and not store._group.queue
    assert store._group.arriving == 0
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_statement_is_prepared_again_after_the_session_dropped_it() -> None:
    first, second = running_ids(2)
    assert store._store_rows([pending(first)]) != {}
    with connection.cursor() as cursor:  # as a pooler resetting the session would
        cursor.execute("DEALLOCATE ALL")
    assert store._store_rows([pending(second)]) != {}
    assert ProbeRun.objects.filter(state=RunState.SUCCEEDED).count() == 2
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_statement_is_planned_once_not_on_every_execution() -> None:
    ids = running_ids(12)
    for start in range(0, 12, 2):  # past Postgres' five custom plans before it may switch
        assert len(store._store_rows([pending(i) for i in ids[start : start + 2]])) == 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s",
            [store._statement(connection.connection.pgconn, ids[0] // STRIDE).decode()],
        )
        generic, custom = cursor.fetchone()
        cursor.execute("DISCARD ALL")  # the session setting goes too: it is set again
    assert (generic, custom) == (6, 0)
    assert len(store._store_rows([pending(ids[0])])) == 0  # stored already; still answers
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)
    connection.close()
