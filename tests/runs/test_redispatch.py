"""Lost dispatches are sent again after max(2 × the binding's period, 15 s), once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from apps.clusters.models import Executor
from apps.runs import reaping
from apps.runs.models import ProbeRun
from apps.scheduling.models import Binding
from apps.scheduling.services import binding_fire_now, binding_fire_schedule
from tests.factories import BindingFactory, CaseFactory, ClusterFactory
from tests.runs.helpers import make_case, make_run

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 10, 0, 7, tzinfo=UTC)  # not on a cron minute: a real tick's offset
EPSILON = timedelta(milliseconds=1)


def scheduled(name: str, **schedule: Any) -> Binding:
    binding = BindingFactory(name=name, **{"interval_seconds": None, **schedule})
    binding.clusters.set([ClusterFactory(name=f"{name}-c", executor=Executor.LOCAL, kubeconfig="")])
    binding.cases.set([CaseFactory(name=f"{name}-case")])
    return binding


def claimed_at(clock: time_machine.Traveller, when: datetime) -> list[int]:
    clock.move_to(when)
    return reaping.runs_claim_stuck_pending()


@pytest.mark.parametrize(
    ("schedule", "window"),
    [
        ({"interval_seconds": 30}, timedelta(seconds=60)),  # 2 × period
        ({"interval_seconds": 5}, timedelta(seconds=15)),  # the floor
        ({"cron": "*/5 * * * *"}, timedelta(minutes=10)),  # 2 × the cron's period
    ],
    ids=["interval-30s", "interval-5s", "cron-5min"],
)
def test_a_scheduled_run_is_sent_again_after_twice_its_period(
    schedule: dict[str, Any], window: timedelta
) -> None:
    binding = scheduled("b", **schedule)
    with time_machine.travel(T0, tick=False) as clock:
        [run_id] = binding_fire_schedule(binding_id=binding.pk).created
        assert ProbeRun.objects.get(pk=run_id).redispatch_after == window
        assert claimed_at(clock, T0 + window) == []
        assert claimed_at(clock, T0 + window + EPSILON) == [run_id]
        # Claimed once: the next reaper pass finds it taken, until another window passed.
        assert claimed_at(clock, T0 + window + 2 * EPSILON) == []
        assert claimed_at(clock, T0 + 2 * window + EPSILON) == []
        assert claimed_at(clock, T0 + 2 * window + 2 * EPSILON) == [run_id]


def test_runs_without_a_schedule_use_the_floor_setting(settings: Any) -> None:
    settings.KUBEPROBE_REDISPATCH_MIN_SECONDS = 20
    events_only = scheduled("manual-only")
    with time_machine.travel(T0, tick=False) as clock:
        by_hand = make_run(make_case(), ClusterFactory())
        [of_binding] = binding_fire_now(binding=events_only).created
        assert claimed_at(clock, T0 + timedelta(seconds=20)) == []
        assert claimed_at(clock, T0 + timedelta(seconds=20) + EPSILON) == sorted(
            [by_hand.pk, of_binding]
        )


def test_manual_runs_of_a_scheduled_binding_follow_its_period() -> None:
    binding = scheduled("hourly", interval_seconds=3600)
    with time_machine.travel(T0, tick=False) as clock:
        [run_id] = binding_fire_now(binding=binding).created
        assert claimed_at(clock, T0 + timedelta(hours=2)) == []
        assert claimed_at(clock, T0 + timedelta(hours=2) + EPSILON) == [run_id]


def test_never_while_its_own_retry_waits_in_the_queue() -> None:
    with time_machine.travel(T0, tick=False) as clock:
        run = make_run(make_case(), ClusterFactory())  # 15 s window
        # A dispatch attempt failed at T0 + 5 s and queued its retry for 60 s later.
        clock.move_to(T0 + timedelta(seconds=5))
        reaping.run_requeued(run_id=run.pk, due=T0 + timedelta(seconds=65))
        assert claimed_at(clock, T0 + timedelta(seconds=65)) == []  # still waiting
        assert claimed_at(clock, T0 + timedelta(seconds=80)) == []  # delivered; its window
        assert claimed_at(clock, T0 + timedelta(seconds=80) + EPSILON) == [run.pk]


def test_one_query_claims_many_runs_of_many_bindings(
    django_assert_max_num_queries: Any,
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        ids = []
        for i, seconds in enumerate([5, 10, 20, 30, 40, 60]):
            binding = scheduled(f"b{i}", interval_seconds=seconds)
            ids += binding_fire_schedule(binding_id=binding.pk).created
        ids += [make_run(make_case(), ClusterFactory()).pk for _ in range(5)]
        clock.move_to(T0 + timedelta(minutes=3))
        # SAVEPOINT, SELECT … FOR UPDATE SKIP LOCKED, UPDATE, RELEASE: no query per run.
        with django_assert_max_num_queries(4):
            assert reaping.runs_claim_stuck_pending() == sorted(ids)
