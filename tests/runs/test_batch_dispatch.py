"""Batch dispatch: workers claim pending runs from the table (SKIP LOCKED) and launch them."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.crypto import hash_token
from apps.runs import dispatch_batch
from apps.runs.executors import TransientExecutorError
from apps.runs.executors.kubernetes import KubernetesExecutor
from apps.runs.models import ProbeRun, RunState
from apps.runs.services import runs_create
from apps.runs.tasks import dispatch_pending
from apps.runs.tokens import run_token
from tests.factories import ClusterFactory
from tests.kube import LocalKube
from tests.runs.helpers import env_of, kube_cluster, make_case, pod_names


def pending_runs(case: Any, clusters: list[Any], key: str = "batch") -> list[int]:
    pairs = [(case, cluster) for cluster in clusters]
    return sorted(runs_create(pairs=pairs, trigger="manual", key=key).created)


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Messages the run loop would publish, recorded instead of sent."""
    from apps.runs.tasks import dispatch_run

    sent: dict[str, list[Any]] = {"dispatch_run": [], "baton": [], "wake": []}
    monkeypatch.setattr(dispatch_run, "delay", lambda *a: sent["dispatch_run"].append(a))
    monkeypatch.setattr(dispatch_pending, "delay", lambda: sent["baton"].append(1))
    monkeypatch.setattr(dispatch_pending, "apply_async", lambda **kw: sent["wake"].append(kw))
    return sent


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_take_disjoint_runs_and_leave_none_behind(
    no_broker: dict[str, list[Any]],
) -> None:
    case = make_case()
    created = pending_runs(case, [ClusterFactory() for _ in range(30)])
    claims: list[list[int]] = []
    barrier = threading.Barrier(3)

    def claimer() -> None:
        barrier.wait()
        try:
            mine: list[int] = []
            while batch := dispatch_batch.runs_claim_pending(limit=4):
                mine.extend(run.pk for run, _ in batch)
            claims.append(mine)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    taken = [run_id for claim in claims for run_id in claim]
    assert sorted(taken) == sorted(created)  # each run claimed exactly once
    assert set(ProbeRun.objects.values_list("state", flat=True)) == {RunState.DISPATCHED}


@pytest.mark.django_db
def test_a_claim_takes_due_runs_oldest_first_and_prepares_them(
    no_broker: dict[str, list[Any]],
) -> None:
    case = make_case(timeout=90)
    first, later, waiting = pending_runs(case, [ClusterFactory() for _ in range(3)])
    # A run given back after a passing failure waits until its retry is due.
    ProbeRun.objects.filter(pk=waiting).update(enqueued_at=timezone.now() + timedelta(seconds=30))
    claimed = dispatch_batch.runs_claim_pending(limit=10)
    assert [run.pk for run, _ in claimed] == [first, later]
    for run, spec in claimed:
        stored = ProbeRun.objects.get(pk=run.pk)
        assert stored.state == RunState.DISPATCHED and stored.dispatch_attempts == 1
        assert stored.token_hash == hash_token(run_token(run_id=run.pk))
        assert stored.pod_name == spec.name and spec.name.endswith(f"-{run.pk}")
        assert spec.env["KUBEPROBE_TOKEN"] == run_token(run_id=run.pk)
        assert stored.deadline is not None and stored.dispatched_at is not None
        assert stored.deadline - stored.dispatched_at == timedelta(seconds=90)
    assert ProbeRun.objects.get(pk=waiting).state == RunState.PENDING


@pytest.mark.django_db
def test_a_full_batch_passes_the_baton_and_launches_real_pods(
    kube: LocalKube, kube_ns: str, settings: Any, no_broker: dict[str, list[Any]]
) -> None:
    settings.KUBEPROBE_DISPATCH_BATCH = 3
    case = make_case()
    clusters = [kube_cluster(kube, namespace=kube_ns, api_qps=50) for _ in range(4)]
    created = pending_runs(case, clusters)
    assert dispatch_pending.apply().get() == 3
    assert no_broker["baton"] == [1]  # three claimed of three: someone takes the next batch
    assert dispatch_pending.apply().get() == 1
    assert no_broker["baton"] == [1]  # a short batch: the queue is drained
    runs = ProbeRun.objects.filter(pk__in=created)
    assert {r.state for r in runs} == {RunState.RUNNING}
    assert pod_names(kube, kube_ns) == {r.pod_name for r in runs}
    for run in runs:
        pod = kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/{run.pod_name}")
        assert hash_token(env_of(pod)["KUBEPROBE_TOKEN"]) == run.token_hash
        assert pod["metadata"]["labels"]["kubeprobe.io/run-id"] == str(run.pk)


@pytest.mark.django_db
def test_passing_failures_back_off_and_end_the_run_after_the_retry_limit(
    monkeypatch: pytest.MonkeyPatch, settings: Any, no_broker: dict[str, list[Any]]
) -> None:
    settings.KUBEPROBE_DISPATCH_MAX_RETRIES = 2
    calls: list[int] = []

    def throttled(self: Any, cluster: Any, spec: Any) -> str:
        calls.append(spec.run_id)
        raise TransientExecutorError("create pod: HTTP 429: slow down")

    monkeypatch.setattr(KubernetesExecutor, "launch", throttled)
    [run_id] = pending_runs(make_case(), [ClusterFactory()])
    waits = []
    for attempt in (1, 2, 3):
        assert dispatch_pending.apply().get() == 0
        run = ProbeRun.objects.get(pk=run_id)
        assert run.dispatch_attempts == attempt
        if attempt < 3:
            assert run.state == RunState.PENDING and run.token_hash == ""
            wait = (run.enqueued_at - timezone.now()).total_seconds()
            waits.append(round(wait))
            assert no_broker["wake"][-1]["countdown"] == 2 ** (attempt - 1)
            ProbeRun.objects.filter(pk=run_id).update(enqueued_at=timezone.now())  # due now
    assert waits == [1, 2]
    assert calls == [run_id] * 3
    assert run.state == RunState.ERROR
    assert run.reason == "dispatch failed 3 times, last: create pod: HTTP 429: slow down"


@pytest.mark.django_db
def test_a_disabled_cluster_ends_its_run_and_the_batch_goes_on(
    kube: LocalKube, kube_ns: str, no_broker: dict[str, list[Any]]
) -> None:
    case = make_case()
    off = kube_cluster(kube, namespace=kube_ns)
    on = kube_cluster(kube, namespace=kube_ns)
    off_run, on_run = pending_runs(case, [off, on])
    off.enabled = False
    off.save()
    assert dispatch_pending.apply().get() == 1
    assert ProbeRun.objects.get(pk=off_run).state == RunState.ERROR
    assert "is disabled" in ProbeRun.objects.get(pk=off_run).reason
    assert ProbeRun.objects.get(pk=on_run).state == RunState.RUNNING


@pytest.mark.django_db
def test_a_batch_announces_its_launched_runs_once_for_the_dashboards(
    kube: LocalKube,
    kube_ns: str,
    monkeypatch: pytest.MonkeyPatch,
    no_broker: dict[str, list[Any]],
) -> None:
    from apps.dashboard import push
    from apps.runs.signals import run_state_changed, runs_state_changed

    sent: list[list[tuple[str, dict[str, Any]]]] = []
    monkeypatch.setattr(push, "_send", sent.append)
    singles: list[Any] = []
    batches: list[dict[str, Any]] = []

    def on_single(**kwargs: Any) -> None:
        singles.append(kwargs)

    def on_batch(**kwargs: Any) -> None:
        batches.append(kwargs)

    run_state_changed.connect(on_single, weak=False)
    runs_state_changed.connect(on_batch, weak=False)
    try:
        case = make_case()
        clusters = [kube_cluster(kube, namespace=kube_ns) for _ in range(3)]
        created = pending_runs(case, clusters)
        assert dispatch_pending.apply().get() == 3
    finally:
        run_state_changed.disconnect(on_single)
        runs_state_changed.disconnect(on_batch)
    assert singles == []
    [batch] = batches
    assert batch["state"] == RunState.RUNNING
    assert sorted(batch["runs"]) == [
        (r, case.pk, c.pk) for r, c in zip(created, clusters, strict=True)
    ]
    # The dashboards pushed the whole batch in one round: 3 runs × (3 cell groups + the run's).
    [messages] = sent
    assert len(messages) == 12
    assert {group for group, _ in messages} >= {f"live.run.{r}" for r in created}
    assert {m["run_state"] for _, m in messages if m["type"] == "live.cell"} == {"running"}
