"""A beat tick that meets a database outage is retried, keeping its own slot, once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import OperationalError

from apps.clusters.models import Executor
from apps.runs.models import ProbeRun, Trigger
from apps.scheduling import tasks
from apps.scheduling.models import Binding
from apps.scheduling.services import binding_fire_schedule
from apps.scheduling.tasks import fire_binding
from tests.factories import BindingFactory, CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db

TICK = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
LOST = "server closed the connection unexpectedly"


@pytest.fixture
def binding() -> Binding:
    binding = BindingFactory(name="every-minute", interval_seconds=60)
    binding.clusters.set(
        [ClusterFactory(name=n, executor=Executor.LOCAL, kubeconfig="") for n in ("a", "b")]
    )
    binding.cases.set([CaseFactory(name="etcd")])
    return binding


@pytest.fixture
def countdowns(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, dict[str, Any]]]:
    """The countdown and kwargs of every retry the task asks for (eager retries run at once)."""
    seen: list[tuple[float, dict[str, Any]]] = []
    real = fire_binding.retry

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((kwargs["countdown"], kwargs["kwargs"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(fire_binding, "retry", spy)
    return seen


def failing(
    monkeypatch: pytest.MonkeyPatch,
    clock: time_machine.Traveller,
    times: int,
    after_commit: bool = False,
) -> list[datetime]:
    """The tick's service fails `times` times (each a while later); records the `now` it got."""
    calls: list[datetime] = []
    real: Callable[..., Any] = binding_fire_schedule

    def service(*, binding_id: int, now: datetime) -> Any:
        calls.append(now)
        if len(calls) > times:
            return real(binding_id=binding_id, now=now)
        if after_commit:  # the work committed, but its answer was lost
            real(binding_id=binding_id, now=now)
        clock.shift(timedelta(seconds=40))  # the retry comes later than the tick
        raise OperationalError(LOST)

    monkeypatch.setattr(tasks, "binding_fire_schedule", service)
    return calls


def keys() -> list[str]:
    return sorted(ProbeRun.objects.values_list("idempotency_key", flat=True))


def test_a_retried_tick_creates_its_runs_once_in_the_original_slot(
    binding: Binding, monkeypatch: pytest.MonkeyPatch, countdowns: list[Any]
) -> None:
    with time_machine.travel(TICK, tick=False) as clock:
        calls = failing(monkeypatch, clock, times=2)
        fire_binding.apply(kwargs={"binding_id": binding.pk})
    # Two failures, two retries with backoff, each carrying the tick's own time.
    assert [c for c, _ in countdowns] == [1, 2]
    assert [kw["tick_at"] for _, kw in countdowns] == [TICK.isoformat()] * 2
    assert calls == [TICK, TICK, TICK]
    runs = ProbeRun.objects.all()
    assert len(runs) == 2
    assert {r.trigger for r in runs} == {Trigger.SCHEDULE}
    assert all(k.startswith(f"schedule:{binding.pk}:{TICK.isoformat()}:") for k in keys())
    # Created by the retry, 80 s after the tick, yet in the tick's slot.
    assert {r.created_at for r in runs} == {TICK + timedelta(seconds=80)}
    binding.refresh_from_db()
    assert binding.last_fired_at == TICK


def test_a_tick_whose_commit_went_through_is_not_repeated(
    binding: Binding, monkeypatch: pytest.MonkeyPatch, countdowns: list[Any]
) -> None:
    with time_machine.travel(TICK, tick=False) as clock:
        failing(monkeypatch, clock, times=1, after_commit=True)
        fire_binding.apply(kwargs={"binding_id": binding.pk})
    assert [c for c, _ in countdowns] == [1]
    assert len(keys()) == 2  # the retry found its slot taken: no second round
    assert all(TICK.isoformat() in k for k in keys())


def test_a_retry_after_a_later_tick_adds_nothing(
    binding: Binding, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The next tick got through first; the late retry of the earlier one is dropped.
    later = binding_fire_schedule(binding_id=binding.pk, now=TICK + timedelta(seconds=60))
    assert len(later.created) == 2
    fire_binding.apply(kwargs={"binding_id": binding.pk, "tick_at": TICK.isoformat()})
    assert len(keys()) == 2


def test_a_long_outage_gives_up_within_the_budget(
    binding: Binding, monkeypatch: pytest.MonkeyPatch, countdowns: list[Any], settings: Any
) -> None:
    settings.KUBEPROBE_DB_RETRY_SECONDS = 120
    with time_machine.travel(TICK, tick=False) as clock:
        calls = failing(monkeypatch, clock, times=100)
        result = fire_binding.apply(kwargs={"binding_id": binding.pk})
    assert [c for c, _ in countdowns] == [1, 2, 4, 8, 16, 30, 30]  # 91 s of waiting
    assert len(calls) == 8
    assert isinstance(result.result, OperationalError)
    assert ProbeRun.objects.count() == 0


def test_other_errors_are_not_retried(
    binding: Binding, monkeypatch: pytest.MonkeyPatch, countdowns: list[Any]
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(tasks, "binding_fire_schedule", broken)
    result = fire_binding.apply(kwargs={"binding_id": binding.pk})
    assert isinstance(result.result, ValueError)
    assert countdowns == []
