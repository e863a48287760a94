"""An unreachable cluster starves no one: its circuit breaker ends its runs at
once, and cleanup and the orphan sweep spend at most their budget on it while
healthy clusters (the real local control plane) are served in the same pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.clusters.models import Cluster
from apps.runs import cleanup, dispatch, finishing
from apps.runs.models import ProbeRun, RunState
from tests.clusters.unreachable import DroppingServer, SilentServer
from tests.factories import ClusterFactory
from tests.kube import LocalKube
from tests.runs.helpers import kube_cluster, make_case, make_run, pod_names
from tests.utils import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _breaker_settings(settings: Any) -> None:
    settings.KUBEPROBE_BREAKER_FAILURES = 3
    settings.KUBEPROBE_BREAKER_PROBE_SECONDS = 30
    settings.KUBEPROBE_CLEANUP_BUDGET_SECONDS = 2


@pytest.fixture
def dropping() -> Iterator[DroppingServer]:
    with DroppingServer() as server:
        yield server


def fresh(cluster: Cluster) -> Cluster:
    return Cluster.objects.get(pk=cluster.pk)


def finished_runs(cluster: Cluster, count: int) -> list[ProbeRun]:
    """Succeeded runs whose pods (never created: the cluster is not there) await cleanup."""
    case = make_case()
    runs = [make_run(case, cluster) for _ in range(count)]
    for run in runs:
        ProbeRun.objects.filter(pk=run.pk).update(
            state=RunState.SUCCEEDED,
            ok=True,
            finished_at=timezone.now() - timedelta(minutes=1),
            pod_name=f"kp-gone-{run.pk}",
        )
    return runs


def launched_and_finished(cluster: Cluster, count: int) -> list[ProbeRun]:
    """Runs with real pods on the local control plane, finished (succeeded)."""
    case = make_case()
    runs = []
    for _ in range(count):
        run = make_run(case, cluster)
        assert dispatch.run_dispatch(run_id=run.pk) == "launched"
        run = ProbeRun.objects.get(pk=run.pk)
        assert finishing.run_finish(run=run, state=RunState.SUCCEEDED)
        runs.append(run)
    return runs


def test_an_open_breaker_ends_runs_at_once_and_the_api_coming_back_closes_it(
    kube: LocalKube, kube_ns: str, dropping: DroppingServer
) -> None:
    cluster = ClusterFactory(kubeconfig=dropping.kubeconfig(), namespace=kube_ns)
    case = make_case()
    for _ in range(3):  # each dispatch tries the API server and fails
        run = make_run(case, cluster)
        assert dispatch.run_dispatch(run_id=run.pk) == "error"
        assert "is unreachable" in ProbeRun.objects.get(pk=run.pk).reason
    row = fresh(cluster)
    assert row.breaker_open_since is not None and row.breaker_failures == 3
    sent = dropping.connections

    run = make_run(case, cluster)
    started = time.monotonic()
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    assert time.monotonic() - started < 0.5  # no worker slot held for a timeout
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert run.reason.startswith("cluster unreachable since ")
    assert row.breaker_last_error in run.reason
    assert dropping.connections == sent  # the API was not called

    # The cluster is repaired (here: pointed at the real control plane); the next
    # attempt, due at breaker_next_probe_at, is let through and closes it.
    row.kubeconfig = kube.kubeconfig()
    row.save()
    Cluster.objects.filter(pk=cluster.pk).update(
        breaker_next_probe_at=timezone.now() - timedelta(seconds=1)
    )
    run = make_run(case, cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    assert pod_names(kube, kube_ns) == {ProbeRun.objects.get(pk=run.pk).pod_name}
    row = fresh(cluster)
    assert (row.breaker_open_since, row.breaker_failures, row.breaker_last_error) == (None, 0, "")


def test_cleanup_spends_its_budget_on_a_silent_cluster_and_still_cleans_the_healthy_one(
    kube: LocalKube, kube_ns: str
) -> None:
    healthy = kube_cluster(kube, namespace=kube_ns)
    done = launched_and_finished(healthy, 2)
    with SilentServer() as silent:
        stuck = ClusterFactory(kubeconfig=silent.kubeconfig(), api_timeout_seconds=10)
        waiting = finished_runs(stuck, 20)
        # The silent cluster's runs finished first: the pass meets them first.
        started = time.monotonic()
        assert cleanup.runs_cleanup() == 2
        elapsed = time.monotonic() - started
        assert elapsed < 2 + 1.5, f"the pass took {elapsed:.1f}s with a 2s budget"
        wait_for(lambda: pod_names(kube, kube_ns) == set(), timeout=30, what="healthy pods to go")
        assert all(ProbeRun.objects.get(pk=r.pk).cleaned_at for r in done)
        rows = ProbeRun.objects.filter(pk__in=[r.pk for r in waiting])
        assert not rows.filter(cleaned_at__isnull=False).exists()
        # Each waits for a later pass instead of being tried again right away.
        assert not rows.filter(keep_until__isnull=True).exists()
        started = time.monotonic()
        assert cleanup.runs_cleanup() == 0
        assert time.monotonic() - started < 0.5
    # A timeout cut short by the budget proves nothing: it is not counted.
    assert fresh(stuck).breaker_failures == 0


def test_cleanup_skips_a_cluster_once_its_breaker_opens(dropping: DroppingServer) -> None:
    stuck = ClusterFactory(kubeconfig=dropping.kubeconfig())
    waiting = finished_runs(stuck, 20)
    started = time.monotonic()
    assert cleanup.runs_cleanup() == 0
    assert time.monotonic() - started < 2
    assert fresh(stuck).breaker_open
    rows = ProbeRun.objects.filter(pk__in=[r.pk for r in waiting])
    tried = rows.filter(diagnostics__has_key="cleanup_error")
    assert tried.count() == 3  # the failures that opened the breaker
    assert dropping.connections == 3
    assert not rows.filter(keep_until__lt=timezone.now() + timedelta(minutes=4)).exists()
    # The next pass finds nothing due on that cluster.
    assert cleanup.runs_cleanup() == 0
    assert dropping.connections == 3


def test_the_orphan_sweep_skips_an_open_breaker_and_keeps_to_its_budget(
    dropping: DroppingServer,
) -> None:
    with SilentServer() as silent:
        slow = ClusterFactory(kubeconfig=silent.kubeconfig(), api_timeout_seconds=10)
        started = time.monotonic()
        assert cleanup.cluster_sweep_orphans(cluster=slow) == 0
        assert time.monotonic() - started < 2 + 1.5
    broken = ClusterFactory(
        kubeconfig=dropping.kubeconfig(),
        breaker_failures=3,
        breaker_open_since=timezone.now(),
        breaker_next_probe_at=timezone.now() + timedelta(seconds=30),
        breaker_last_error="Connection reset by peer",
    )
    assert cleanup.cluster_sweep_orphans(cluster=broken) == 0
    assert dropping.connections == 0
