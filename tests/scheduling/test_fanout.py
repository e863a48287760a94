"""A schedule tick plans and stores its runs in one statement and wakes dispatch in batches:
no run twice when the tick is delivered twice, none lost when the worker dies mid-tick."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from apps.clusters.models import Executor
from apps.runs import fanout
from apps.runs.models import ProbeRun, RunState, Trigger
from apps.scheduling.models import Binding
from apps.scheduling.services import binding_fire_schedule
from tests.factories import BindingFactory, CaseFactory, ClusterFactory, ClusterGroupFactory
from tests.runs.test_loop import database_url

ROOT = Path(__file__).resolve().parents[2]
TICK = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)


def make_binding(clusters: int = 6, cases: int = 3, name: str = "fan") -> Binding:
    group = ClusterGroupFactory(name=f"{name}-group", selector={"fleet": name})
    for i in range(clusters):
        ClusterFactory(
            name=f"{name}-{i}", executor=Executor.LOCAL, kubeconfig="", labels={"fleet": name}
        )
    ClusterFactory(name=f"{name}-off", enabled=False, labels={"fleet": name})  # not targeted
    binding = BindingFactory(name=name, interval_seconds=60)
    binding.groups.set([group])
    binding.cases.set([CaseFactory(name=f"{name}-case-{i}") for i in range(cases)])
    binding.cases.add(CaseFactory(name=f"{name}-disabled", enabled=False))  # not run
    return binding


def keys_of(binding: Binding) -> list[str]:
    return list(ProbeRun.objects.filter(binding=binding).values_list("idempotency_key", flat=True))


@pytest.fixture
def wakes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The dispatch wake-ups published, instead of sending them to the broker."""
    from apps.runs.tasks import dispatch_pending

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(dispatch_pending, "apply_async", lambda **kw: sent.append(kw))
    return sent


@pytest.mark.django_db
def test_a_tick_stores_every_pair_once_spread_over_clusters_and_wakes_dispatch_after_commit(
    wakes: list[dict[str, Any]], settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.KUBEPROBE_DISPATCH_BATCH = 4
    settings.KUBEPROBE_DISPATCH_WAKE_MAX = 3
    binding = make_binding(clusters=6, cases=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = binding_fire_schedule(binding_id=binding.pk, now=TICK)
        assert wakes == []  # nothing is claimable before the tick commits
    for callback in callbacks:
        callback()
    runs = list(ProbeRun.objects.filter(binding=binding).order_by("pk"))
    assert len(result.created) == len(runs) == 18 and result.skipped == 0
    assert sorted(result.created) == [r.pk for r in runs]
    assert {r.state for r in runs} == {RunState.PENDING}
    assert {r.trigger for r in runs} == {Trigger.SCHEDULE}
    assert {r.executor for r in runs} == {Executor.LOCAL}
    assert {r.redispatch_after for r in runs} == {timedelta(seconds=120)}  # 2 × the period
    assert all(
        r.idempotency_key == f"schedule:{binding.pk}:{TICK.isoformat()}:{r.case_id}:{r.cluster_id}"
        for r in runs
    )
    # Case by case: the first batch a claimer takes holds six different clusters.
    assert len({r.cluster_id for r in runs[:6]}) == 6
    assert [r.case_id for r in runs] == sorted(r.case_id for r in runs)
    # 18 runs in batches of 4 would be 5 claimers; the cap is 3 chains.
    assert len(wakes) == 3


@pytest.mark.django_db
def test_pairs_still_active_are_skipped_and_counted(wakes: list[dict[str, Any]]) -> None:
    binding = make_binding(clusters=4, cases=2)
    first = binding_fire_schedule(binding_id=binding.pk, now=TICK)
    done = ProbeRun.objects.filter(pk__in=first.created[:5])
    done.update(state=RunState.SUCCEEDED, finished_at=TICK)
    second = binding_fire_schedule(binding_id=binding.pk, now=TICK + timedelta(seconds=60))
    assert len(second.created) == 5 and second.skipped == 3
    assert Binding.objects.get(pk=binding.pk).skipped_count == 3
    # Never two active runs of one pair.
    active = ProbeRun.objects.filter(state=RunState.PENDING)
    assert active.count() == 8
    assert max(Counter(active.values_list("case_id", "cluster_id")).values()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_tick_delivered_twice_at_once_creates_each_run_once(wakes: list[dict[str, Any]]) -> None:
    binding = make_binding(clusters=20, cases=5)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def deliver() -> None:
        barrier.wait()
        try:
            results.append(len(binding_fire_schedule(binding_id=binding.pk, now=TICK).created))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [0, 100]
    keys = keys_of(binding)
    assert len(keys) == len(set(keys)) == 100
    # A later redelivery of the same tick (its retry carries the tick's time) adds nothing.
    assert binding_fire_schedule(binding_id=binding.pk, now=TICK).created == []
    assert len(keys_of(binding)) == 100


TICK_IN_A_PROCESS = """
import sys
import django
django.setup()
from apps.runs import fanout
from apps.scheduling import services
real = fanout._store_slice
stored = []

def store_then_hang(plan, index):
    if stored:  # mid-tick: one slice committed, the next never comes
        print(f"committed {len(stored[0].created)}", flush=True)
        sys.stdin.read()
    stored.append(real(plan, index))
    return stored[-1]

fanout._store_slice = store_then_hang
from django.utils.dateparse import parse_datetime
services.binding_fire_schedule(binding_id=int(sys.argv[1]), now=parse_datetime(sys.argv[2]))
"""


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_tick_leaves_the_tick_open_and_the_next_delivery_completes_it(
    wakes: list[dict[str, Any]],
) -> None:
    binding = make_binding(clusters=25, cases=4)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "kubeprobe_site.settings",
        "KUBEPROBE_FANOUT_SLICE_RUNS": "20",  # five slices of 5 clusters × 4 cases
        "KUBEPROBE_FANOUT_CONNECTIONS": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", TICK_IN_A_PROCESS, str(binding.pk), TICK.isoformat()],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stderr is not None
        line = worker.stdout.readline()
        assert line.strip() == "committed 20", line or worker.stderr.read()
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert len(keys_of(binding)) == 20  # the first slice is stored and claimable
    assert Binding.objects.get(pk=binding.pk).tick_open_at == TICK
    # The redelivered message runs a second later (its own clock): it finishes the open
    # tick under the tick's keys, and its own claim is refused (within half a period).
    redelivered = binding_fire_schedule(binding_id=binding.pk, now=TICK + timedelta(seconds=1))
    assert len(redelivered.created) == 80 and redelivered.skipped == 0
    keys = keys_of(binding)
    assert len(keys) == len(set(keys)) == 100
    assert all(key.startswith(f"schedule:{binding.pk}:{TICK.isoformat()}:") for key in keys)
    stored = Binding.objects.get(pk=binding.pk)
    assert stored.tick_open_at is None and stored.skipped_count == 0
    assert stored.last_fired_at == TICK


@pytest.mark.django_db(transaction=True)
def test_slices_on_parallel_connections_store_the_whole_tick(
    wakes: list[dict[str, Any]], settings: Any
) -> None:
    settings.KUBEPROBE_FANOUT_SLICE_RUNS = 7
    settings.KUBEPROBE_FANOUT_CONNECTIONS = 3
    settings.KUBEPROBE_DISPATCH_BATCH = 5
    binding = make_binding(clusters=13, cases=3)
    result = binding_fire_schedule(binding_id=binding.pk, now=TICK)
    keys = keys_of(binding)
    assert len(result.created) == len(keys) == len(set(keys)) == 39
    assert sorted(result.created) == sorted(ProbeRun.objects.values_list("pk", flat=True))
    # Six slices (cluster id modulo 6), each waking dispatch for its own runs as it committed.
    per_slice = Counter(cid % 6 for cid in ProbeRun.objects.values_list("cluster_id", flat=True))
    assert len(wakes) == sum(fanout.wake_count(n) for n in per_slice.values())
    assert Binding.objects.get(pk=binding.pk).tick_open_at is None


def test_wake_count_covers_every_batch_up_to_the_cap(settings: Any) -> None:
    settings.KUBEPROBE_DISPATCH_BATCH = 20
    settings.KUBEPROBE_DISPATCH_WAKE_MAX = 16
    assert [fanout.wake_count(n) for n in (0, 1, 20, 21, 319, 321, 200_000)] == [
        0,
        1,
        1,
        2,
        16,
        16,
        16,
    ]
