"""A dispatch that meets a database outage retries with backoff and launches once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from apps.runs import dispatch
from apps.runs.executors import TransientExecutorError
from apps.runs.executors.kubernetes import KubernetesExecutor
from apps.runs.models import ProbeRun, RunState
from apps.runs.tasks import dispatch_run
from tests.factories import ClusterFactory
from tests.kube import LocalKube
from tests.runs.helpers import kube_cluster, make_case, make_run, pod_names

pytestmark = pytest.mark.django_db

LOST = "terminating connection due to administrator command"


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, Any]]:
    """Each retry's countdown and the run's enqueued_at when it was asked for."""
    seen: list[tuple[float, Any]] = []
    real = dispatch_run.retry

    def spy(*args: Any, **kwargs: Any) -> Any:
        run_id = dispatch_run.request.args[0]
        seen.append((kwargs["countdown"], ProbeRun.objects.get(pk=run_id).enqueued_at))
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatch_run, "retry", spy)
    return seen


def test_a_database_error_before_the_claim_is_retried_and_launches_once(
    kube: LocalKube, kube_ns: str, monkeypatch: pytest.MonkeyPatch, retries: list[Any]
) -> None:
    run = make_run(make_case(), kube_cluster(kube, kube_ns))
    real = dispatch.run_dispatch
    calls: list[int] = []

    def flaky(*, run_id: int) -> str:
        calls.append(run_id)
        if len(calls) == 1:
            raise OperationalError(LOST)
        return real(run_id=run_id)

    monkeypatch.setattr(dispatch, "run_dispatch", flaky)
    before = timezone.now()
    dispatch_run.apply(args=(run.pk,))
    assert len(calls) == 2
    [(countdown, enqueued_at)] = retries
    assert countdown == 1
    # The reaper leaves the run to its own retry: due when that retry is delivered.
    assert enqueued_at >= before + timedelta(seconds=1)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING
    assert pod_names(kube, kube_ns) == {run.pod_name}


def test_a_database_error_after_the_launch_does_not_launch_twice(
    kube: LocalKube, kube_ns: str, monkeypatch: pytest.MonkeyPatch, retries: list[Any]
) -> None:
    run = make_run(make_case(), kube_cluster(kube, kube_ns))
    real = KubernetesExecutor.launch
    launches: list[str] = []

    def launch_then_lose_the_database(self: KubernetesExecutor, cluster: Any, spec: Any) -> str:
        launches.append(real(self, cluster, spec))
        raise OperationalError(LOST)  # the next write (pod name, running) fails

    monkeypatch.setattr(KubernetesExecutor, "launch", launch_then_lose_the_database)
    dispatch_run.apply(args=(run.pk,))
    assert len(launches) == 1  # the retry found the run claimed and launched nothing
    assert [c for c, _ in retries] == [1]
    run.refresh_from_db()
    assert run.state == RunState.DISPATCHED  # the reaper follows its pod from here
    assert pod_names(kube, kube_ns) == {run.pod_name}


def test_dispatch_gives_up_on_the_database_within_the_budget(
    monkeypatch: pytest.MonkeyPatch, retries: list[Any], settings: Any
) -> None:
    settings.KUBEPROBE_DB_RETRY_SECONDS = 20
    run = make_run(make_case(), ClusterFactory())

    def down(*, run_id: int) -> str:
        raise OperationalError(LOST)

    monkeypatch.setattr(dispatch, "run_dispatch", down)
    result = dispatch_run.apply(args=(run.pk,))
    assert [c for c, _ in retries] == [1, 2, 4, 8]  # 15 s; one more would pass 20
    assert isinstance(result.result, OperationalError)
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.PENDING  # the reaper's now


def test_transient_executor_errors_give_up_after_the_configured_retries(
    monkeypatch: pytest.MonkeyPatch, retries: list[Any], settings: Any
) -> None:
    # Celery's own default of 3 retries used to cut this short with a bare exception.
    settings.KUBEPROBE_DISPATCH_MAX_RETRIES = 5
    run = make_run(make_case(), ClusterFactory())

    def unreachable(*, run_id: int) -> str:
        raise TransientExecutorError("connection refused")

    monkeypatch.setattr(dispatch, "run_dispatch", unreachable)
    dispatch_run.apply(args=(run.pk,))
    assert [c for c, _ in retries] == [1, 2, 4, 8, 16]
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert run.reason == "dispatch failed 6 times, last: connection refused"
