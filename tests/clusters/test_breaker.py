"""The per-cluster circuit breaker (apps/clusters/breaker.py) through the
cluster's client: counted on real connection failures, not on HTTP answers,
one half-open attempt per interval, closed by the real API server answering."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from kubernetes.client.exceptions import ApiException

from apps.clusters.breaker import breaker_claim_probe
from apps.clusters.k8s import BreakerOpen, ClusterUnreachable, clear_client_cache, cluster_client
from apps.clusters.models import ApiStatus, Cluster, Executor
from apps.clusters.services import cluster_check_api
from tests.clusters.unreachable import DroppingServer
from tests.kube import LocalKube

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_clients(settings: object) -> Iterator[None]:
    settings.KUBEPROBE_BREAKER_FAILURES = 3  # type: ignore[attr-defined]
    settings.KUBEPROBE_BREAKER_PROBE_SECONDS = 30  # type: ignore[attr-defined]
    yield
    clear_client_cache()


@pytest.fixture
def dropping() -> Iterator[DroppingServer]:
    with DroppingServer() as server:
        yield server


def make_cluster(kubeconfig: str, name: str = "flaky") -> Cluster:
    return Cluster.objects.create(name=name, executor=Executor.KUBERNETES, kubeconfig=kubeconfig)


def fresh(cluster: Cluster) -> Cluster:
    return Cluster.objects.get(pk=cluster.pk)


def due_for_probe(cluster: Cluster) -> Cluster:
    """Move the next half-open attempt into the past (instead of waiting 30 s)."""
    Cluster.objects.filter(pk=cluster.pk).update(
        breaker_next_probe_at=timezone.now() - timedelta(seconds=1)
    )
    return fresh(cluster)


def test_three_dropped_connections_open_the_breaker_and_then_nothing_is_sent(
    dropping: DroppingServer,
) -> None:
    cluster = make_cluster(dropping.kubeconfig())
    for attempt in (1, 2):
        check = cluster_check_api(cluster=fresh(cluster))
        assert check.status == ApiStatus.UNREACHABLE
        row = fresh(cluster)
        assert (row.breaker_failures, row.breaker_open_since) == (attempt, None)
    cluster_check_api(cluster=fresh(cluster))
    row = fresh(cluster)
    assert row.breaker_failures == 3 and row.breaker_open_since is not None
    assert row.breaker_next_probe_at == row.breaker_open_since + timedelta(seconds=30)
    assert row.breaker_last_error  # the root cause, e.g. a reset or closed connection
    sent = dropping.connections
    assert sent >= 3

    started = time.monotonic()
    check = cluster_check_api(cluster=row)
    assert time.monotonic() - started < 0.5
    assert check.status == ApiStatus.UNREACHABLE
    assert check.error.startswith("cluster unreachable since ")
    assert row.breaker_last_error in check.error
    client = cluster_client(row)
    with pytest.raises(BreakerOpen):
        client.call(client.core.list_namespaced_pod, "default")
    assert dropping.connections == sent  # no connection attempt while open
    assert fresh(cluster).breaker_failures == 3  # refusing is not another failure


def test_http_errors_are_answers_and_reset_the_count(kube: LocalKube, kube_ns: str) -> None:
    # A service account without rights: 403 is the API server answering.
    cluster = make_cluster(kube.service_account_kubeconfig(kube_ns, "nobody"))
    Cluster.objects.filter(pk=cluster.pk).update(breaker_failures=2, breaker_last_error="earlier")
    client = cluster_client(fresh(cluster))
    with pytest.raises(ApiException) as denied:
        client.call(client.core.list_namespaced_pod, kube_ns)
    assert denied.value.status == 403
    row = fresh(cluster)
    assert (row.breaker_failures, row.breaker_open_since, row.breaker_last_error) == (0, None, "")


def test_a_failed_half_open_attempt_pushes_the_next_one(dropping: DroppingServer) -> None:
    cluster = make_cluster(dropping.kubeconfig())
    for _ in range(3):
        cluster_check_api(cluster=fresh(cluster))
    opened = fresh(cluster).breaker_open_since
    sent = dropping.connections
    row = due_for_probe(cluster)
    client = cluster_client(row)
    with pytest.raises(ClusterUnreachable) as failed:
        client.call(client.core.list_namespaced_pod, "default")
    assert not isinstance(failed.value, BreakerOpen)  # the attempt was made
    assert dropping.connections > sent
    row = fresh(cluster)
    assert row.breaker_open_since == opened  # still unreachable since the first time
    assert row.breaker_next_probe_at > timezone.now() + timedelta(seconds=25)
    with pytest.raises(BreakerOpen):  # and the next call waits for that
        client.call(client.core.list_namespaced_pod, "default")


def test_the_breaker_closes_when_the_api_server_answers_again(
    kube: LocalKube, dropping: DroppingServer
) -> None:
    cluster = make_cluster(dropping.kubeconfig())
    for _ in range(3):
        cluster_check_api(cluster=fresh(cluster))
    assert fresh(cluster).breaker_open
    # The operator fixes the kubeconfig (or the server comes back): still open
    # until the next probe time, then the one attempt closes it.
    cluster = fresh(cluster)
    cluster.kubeconfig = kube.kubeconfig()
    cluster.save()
    assert cluster_check_api(cluster=fresh(cluster)).error.startswith("cluster unreachable")
    check = cluster_check_api(cluster=due_for_probe(cluster))
    assert (check.status, check.error) == (ApiStatus.OK, "")
    row = fresh(cluster)
    assert (row.breaker_failures, row.breaker_open_since, row.breaker_next_probe_at) == (
        0,
        None,
        None,
    )


def test_an_operators_forced_check_goes_through_an_open_breaker(
    kube: LocalKube, dropping: DroppingServer
) -> None:
    cluster = make_cluster(dropping.kubeconfig())
    for _ in range(3):
        cluster_check_api(cluster=fresh(cluster))
    cluster = fresh(cluster)
    cluster.kubeconfig = kube.kubeconfig()
    cluster.save()
    check = cluster_check_api(cluster=fresh(cluster), force=True)
    assert check.status == ApiStatus.OK
    assert not fresh(cluster).breaker_open


@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_many_concurrent_callers_takes_the_half_open_attempt() -> None:
    cluster = Cluster.objects.create(
        name="racy",
        executor=Executor.LOCAL,
        breaker_failures=3,
        breaker_open_since=timezone.now() - timedelta(minutes=5),
        breaker_next_probe_at=timezone.now() - timedelta(seconds=1),
        breaker_last_error="Connection refused",
    )
    callers = 8
    barrier = threading.Barrier(callers)
    won: list[bool] = []

    def attempt() -> None:
        try:
            barrier.wait(timeout=10)
            won.append(breaker_claim_probe(cluster.pk))
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=attempt) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(won) == [False] * (callers - 1) + [True]
    assert fresh(cluster).breaker_next_probe_at > timezone.now() + timedelta(seconds=25)
