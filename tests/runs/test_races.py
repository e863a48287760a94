"""Duplicate ticks and racing workers: every run is created, dispatched and finished once.

Each racer is a thread with its own database connection, started together
at a barrier, as two Celery workers would run the same message.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.clusters.models import Executor
from apps.runs import dispatch, reaping
from apps.runs.models import ProbeRun, RunState
from apps.scheduling.services import binding_fire_schedule
from tests.factories import BindingFactory, CaseFactory, ClusterFactory
from tests.kube import LocalKube
from tests.kubeproxy import FaultProxy
from tests.runs.helpers import env_of, kube_cluster, make_case, make_run, pod_names, pod_of

pytestmark = pytest.mark.django_db(transaction=True)


def race(*calls: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # reported to the test, not swallowed
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def post_report(base: str, run_id: int, token: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"{base}/api/v1/runs/{run_id}/report",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_duplicate_beat_ticks_racing_create_each_run_once() -> None:
    clusters = [ClusterFactory(executor=Executor.LOCAL, kubeconfig="") for _ in range(20)]
    cases = [CaseFactory() for _ in range(5)]
    binding = BindingFactory(interval_seconds=30)
    binding.clusters.set(clusters)
    binding.cases.set(cases)
    now = timezone.now()
    results = race(*[lambda: binding_fire_schedule(binding_id=binding.pk, now=now)] * 4)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert ProbeRun.objects.count() == 100
    assert ProbeRun.objects.values("case", "cluster").distinct().count() == 100
    # Every racer may learn the ids, but they are the same 100 runs.
    assert {i for r in results for i in r.created} == set(
        ProbeRun.objects.values_list("pk", flat=True)
    )


def test_two_workers_dispatching_the_same_run_launch_one_pod(
    kube: LocalKube, kube_ns: str, fault_proxy: FaultProxy
) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns, kubeconfig=fault_proxy.kubeconfig())
    run = make_run(make_case(), cluster)
    results = race(
        lambda: dispatch.run_dispatch(run_id=run.pk), lambda: dispatch.run_dispatch(run_id=run.pk)
    )
    assert sorted(results) == ["claimed elsewhere", "launched"] or sorted(results) == [
        "launched",
        "not pending",
    ]
    assert [r for r in fault_proxy.requests if r[0] == "POST"] == [
        ("POST", f"/api/v1/namespaces/{kube_ns}/pods", 201)
    ]
    assert pod_names(kube, kube_ns) == {ProbeRun.objects.get(pk=run.pk).pod_name}
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING


def test_racing_reports_store_the_first_and_refuse_the_second(
    kube: LocalKube, kube_ns: str, live_server
) -> None:  # type: ignore[no-untyped-def]
    run = make_run(make_case(), kube_cluster(kube, namespace=kube_ns))
    dispatch.run_dispatch(run_id=run.pk)
    token = env_of(pod_of(kube, run))["KUBEPROBE_TOKEN"]

    def report(ok: bool) -> int:
        body = {"ok": ok, "errors": [] if ok else ["boom"]}
        return post_report(live_server.url, run.pk, token, body)

    results = race(lambda: report(True), lambda: report(False))
    assert sorted(results) == [200, 409]
    finished = ProbeRun.objects.get(pk=run.pk)
    winner_ok = results[0] == 200
    assert finished.ok is winner_ok
    assert finished.state == (RunState.SUCCEEDED if winner_ok else RunState.FAILED)


def test_reaper_and_report_racing_finish_the_run_once(
    kube: LocalKube, kube_ns: str, live_server, settings
) -> None:  # type: ignore[no-untyped-def]
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(timeout=1), cluster)
    dispatch.run_dispatch(run_id=run.pk)
    token = env_of(pod_of(kube, run))["KUBEPROBE_TOKEN"]
    # Past its deadline but within the grace: a report is still taken, and a
    # reaper that thinks it is later closes the run as timed out.
    ProbeRun.objects.filter(pk=run.pk).update(
        deadline=timezone.now() - timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS - 5)
    )
    later = timezone.now() + timedelta(seconds=5)
    report, *reaped = race(
        lambda: post_report(live_server.url, run.pk, token, {"ok": True}),
        lambda: reaping.runs_reap_cluster(cluster_id=cluster.pk, now=later).timed_out,
        lambda: reaping.runs_reap_cluster(cluster_id=cluster.pk, now=later).timed_out,
    )
    finished = ProbeRun.objects.get(pk=run.pk)
    if report == 200:
        assert sorted(reaped) == [0, 0] and finished.state == RunState.SUCCEEDED
    else:
        assert report == 409 and sorted(reaped) == [0, 1], (report, reaped)
        assert finished.state == RunState.TIMED_OUT
