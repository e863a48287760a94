"""Hard cases of the run loop: poisoned batches, lost answers, broken polls, cleanup ranks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.runs import cleanup, dispatch, finishing, ingest, reaping
from apps.runs.executors import TransientExecutorError
from apps.runs.executors.kubernetes import KubernetesExecutor
from apps.runs.models import ProbeRun, RunState
from apps.runs.reports import Report
from apps.runs.tokens import hash_token, run_token
from tests.factories import ClusterFactory, make_kubeconfig
from tests.kube import LocalKube
from tests.kubeproxy import FaultProxy
from tests.runs.helpers import env_of, kube_cluster, make_case, make_run, pod_names, pod_of
from tests.utils import wait_for

TOKEN = "tok-" + "y" * 30


def running(count: int = 1, cluster=None) -> list[ProbeRun]:  # type: ignore[no-untyped-def]
    case, cluster = make_case(), cluster or ClusterFactory()
    out = []
    for i in range(count):
        run = make_run(case, cluster, key=f"fix-{cluster.pk}-{i}")
        ProbeRun.objects.filter(pk=run.pk).update(
            state=RunState.RUNNING,
            token_hash=hash_token(TOKEN),
            dispatched_at=timezone.now(),
            deadline=timezone.now() + timedelta(minutes=5),
        )
        out.append(ProbeRun.objects.get(pk=run.pk))
    return out


def post(run_id: int, raw: bytes, url: str | None = None, **headers: str):  # type: ignore[no-untyped-def]
    return APIClient().generic(
        "POST",
        url or f"/api/v1/runs/{run_id}/report",
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        **headers,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"ok": false, "errors": ["nul \\u0000 inside"]}', "errors[0]"),
        (b'{"ok": false, "errors": ["lone \\ud800 surrogate"]}', "errors[0]"),
        (
            b'{"ok": true, "steps": [{"name": "a\\u0000", "ok": true, "duration_ms": 1}]}',
            "steps[0].name",
        ),
        (b'{"ok": true, "metrics": {"m": ' + b"9" * 400 + b"}}", "metrics.m"),
        (b"[" * 100000 + b"]" * 100000, "body"),
    ],
)
def test_bodies_the_database_cannot_hold_are_400(raw: bytes, field: str) -> None:
    [run] = running()
    response = post(run.pk, raw)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING


@pytest.mark.django_db
def test_run_ids_beyond_bigint_are_404() -> None:
    assert post(2**70, b'{"ok": true}').status_code == 404


@pytest.mark.django_db
def test_kuberhealthy_nul_is_400() -> None:
    [run] = running()
    ProbeRun.objects.filter(pk=run.pk).update(token_hash=hash_token("kh-uuid"))
    response = post(
        0,
        b'{"ok": false, "errors": ["a\\u0000b"]}',
        url="/api/v1/kuberhealthy/check",
        HTTP_KH_RUN_UUID="kh-uuid",
    )
    assert response.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_one_report_the_database_refuses_does_not_fail_its_batch() -> None:
    good, other = running(2)
    now = timezone.now()
    batch = [
        ingest.Pending(
            run_id=good.pk, token_hash=hash_token(TOKEN), report=Report(ok=True), now=now
        ),
        ingest.Pending(
            run_id=2**63 + 5, token_hash="x", report=Report(ok=True), now=now
        ),  # out of range
        ingest.Pending(
            run_id=other.pk,
            token_hash=hash_token(TOKEN),
            report=Report(ok=False, errors=["e"]),
            now=now,
        ),
    ]
    ingest._flush(batch)
    assert batch[0].stored and batch[2].stored
    assert batch[1].error is not None and batch[1].stored is None
    assert ProbeRun.objects.get(pk=good.pk).state == RunState.SUCCEEDED
    assert ProbeRun.objects.get(pk=other.pk).state == RunState.FAILED


@pytest.mark.django_db(transaction=True)
def test_writer_recovers_from_a_killed_connection(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60
    first, second = running(2)
    item = ingest.Pending(
        run_id=first.pk, token_hash=hash_token(TOKEN), report=Report(ok=True), now=timezone.now()
    )
    ingest._flush([item])
    assert item.stored
    with connection.cursor() as cursor:  # kill the writer's backend (same thread here)
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    from psycopg import connect

    db = settings.DATABASES["default"]
    with connect(
        dbname=db["NAME"],
        user=db.get("USER") or "postgres",
        host=db.get("HOST") or "127.0.0.1",
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    item = ingest.Pending(
        run_id=second.pk, token_hash=hash_token(TOKEN), report=Report(ok=True), now=timezone.now()
    )
    ingest._flush([item])
    assert item.stored and item.error is None
    connection.close()


@pytest.mark.django_db
def test_a_retry_after_a_lost_answer_adopts_the_pod_with_a_valid_token(
    kube: LocalKube, kube_ns: str, fault_proxy: FaultProxy
) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns, kubeconfig=fault_proxy.kubeconfig())
    run = make_run(make_case(), cluster)
    # The API server creates the pod; its answer is lost on the way back.
    fault_proxy.lose_next_answer("POST", "/pods", 504)
    with pytest.raises(TransientExecutorError, match="HTTP 504"):
        dispatch.run_dispatch(run_id=run.pk)
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.PENDING
    assert len(pod_names(kube, kube_ns)) == 1  # it is there all the same
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"  # 409: the pod is adopted
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING
    assert [(m, status) for m, _, status in fault_proxy.requests if m == "POST"] == [
        ("POST", 504),
        ("POST", 409),
    ]
    pod = pod_of(kube, run)
    assert pod_names(kube, kube_ns) == {pod["metadata"]["name"]}
    token = env_of(pod)["KUBEPROBE_TOKEN"]
    assert token == run_token(run_id=run.pk)
    response = APIClient().post(
        f"/api/v1/runs/{run.pk}/report",
        {"ok": True},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200


@pytest.mark.django_db
def test_lost_dispatches_are_claimed_once_per_window() -> None:
    run = make_run(make_case(), ClusterFactory())  # no binding: the 15 s floor
    now = timezone.now() + timedelta(minutes=2)
    assert reaping.runs_claim_stuck_pending(now=now) == [run.pk]
    assert reaping.runs_claim_stuck_pending(now=now + timedelta(seconds=10)) == []
    assert reaping.runs_claim_stuck_pending(now=now + timedelta(seconds=16)) == [run.pk]


@pytest.mark.django_db
def test_giving_up_leaves_a_run_another_worker_launched() -> None:
    [run] = running()
    dispatch.run_give_up(run_id=run.pk, reason="gave up")
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING
    pending = make_run(make_case(), ClusterFactory())
    dispatch.run_give_up(run_id=pending.pk, reason="gave up")
    assert ProbeRun.objects.get(pk=pending.pk).state == RunState.ERROR


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
