"""The reaper closes overdue runs even when polling breaks, and spares runs being launched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.runs import reaping
from apps.runs.executors.kubernetes import KubernetesExecutor
from apps.runs.models import ProbeRun, RunState
from tests.factories import ClusterFactory
from tests.kube import LocalKube
from tests.runs.helpers import kube_cluster, make_case, make_run
from tests.runs.helpers import running_runs as running

TOKEN = "tok-" + "y" * 30


@pytest.mark.django_db
def test_overdue_runs_close_even_when_polling_breaks(monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    cluster = ClusterFactory()
    [run] = running(cluster=cluster)

    def broken_poll(self, cluster, runs):  # type: ignore[no-untyped-def]
        raise ValueError("proxy answered with an HTML page")

    monkeypatch.setattr(KubernetesExecutor, "poll", broken_poll)
    later = timezone.now() + timedelta(minutes=10)
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk, now=later).timed_out == 1
    closed = ProbeRun.objects.get(pk=run.pk)
    assert closed.state == RunState.TIMED_OUT and "proxy answered" in closed.reason


@pytest.mark.django_db
def test_a_run_still_being_launched_is_not_called_gone(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(), cluster)
    ProbeRun.objects.filter(pk=run.pk).update(
        state=RunState.DISPATCHED,
        dispatched_at=timezone.now() - timedelta(seconds=60),
        deadline=timezone.now() + timedelta(minutes=5),
        token_hash="h",
    )
    result = reaping.runs_reap_cluster(cluster_id=cluster.pk)  # no pod yet: its create is in flight
    assert (result.failed_early, result.timed_out) == (0, 0)
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.DISPATCHED
    # Once launched (the create answered), a pod that is gone does end the run.
    ProbeRun.objects.filter(pk=run.pk).update(state=RunState.RUNNING)
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk).failed_early == 1
    closed = ProbeRun.objects.get(pk=run.pk)
    assert closed.state == RunState.ERROR and closed.reason == "the pod is gone"
