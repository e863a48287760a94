"""Cleanup keeps the newest failures and retries failed cleanups later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.runs import cleanup, dispatch, finishing
from apps.runs.models import ProbeRun, RunState
from tests.factories import ClusterFactory, make_kubeconfig
from tests.kube import LocalKube
from tests.runs.helpers import kube_cluster, make_case, make_run, pod_names
from tests.runs.helpers import running_runs as running
from tests.utils import wait_for

TOKEN = "tok-" + "y" * 30


@pytest.mark.django_db
def test_kept_failures_make_way_for_newer_ones(kube: LocalKube, kube_ns: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_KEEP_FAILED_PODS = 1
    cluster = kube_cluster(kube, namespace=kube_ns)
    case = make_case()
    first = make_run(case, cluster, key="keep-1")
    dispatch.run_dispatch(run_id=first.pk)
    finishing.run_finish(run=ProbeRun.objects.get(pk=first.pk), state=RunState.FAILED, errors=["x"])
    assert cleanup.runs_cleanup() == 0  # the newest failure is kept
    second = make_run(case, cluster, key="keep-2")
    dispatch.run_dispatch(run_id=second.pk)
    finishing.run_finish(
        run=ProbeRun.objects.get(pk=second.pk), state=RunState.FAILED, errors=["y"]
    )
    recheck = timezone.now() + cleanup.KEEP_RECHECK + timedelta(seconds=1)
    assert cleanup.runs_cleanup(now=recheck) == 1  # the older one goes at its recheck
    newest = ProbeRun.objects.get(pk=second.pk).pod_name
    wait_for(lambda: pod_names(kube, kube_ns) == {newest}, timeout=30, what="the older pod to go")
    # The orphan sweep leaves the kept one alone.
    assert cleanup.cluster_sweep_orphans(cluster=cluster) == 0
    assert pod_names(kube, kube_ns) == {newest}


@pytest.mark.django_db
def test_failed_cleanups_are_retried_later_not_at_the_head_of_the_queue() -> None:
    cluster = ClusterFactory(
        kubeconfig=make_kubeconfig(server="https://127.0.0.1:1"), api_timeout_seconds=1
    )
    [run] = running(cluster=cluster)
    ProbeRun.objects.filter(pk=run.pk).update(
        state=RunState.SUCCEEDED, finished_at=timezone.now(), pod_name="kp-x-1"
    )
    assert cleanup.runs_cleanup() == 0
    failed = ProbeRun.objects.get(pk=run.pk)
    assert failed.keep_until > timezone.now() + timedelta(minutes=4)
    assert (
        f"Kubernetes API of cluster '{cluster.name}' is unreachable"
        in (failed.diagnostics["cleanup_error"])
    )
