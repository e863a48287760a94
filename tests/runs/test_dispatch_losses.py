"""Dispatches whose answer or message was lost: adopted, claimed once, never undone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.runs import dispatch, reaping
from apps.runs.executors import TransientExecutorError
from apps.runs.models import ProbeRun, RunState
from apps.runs.tokens import run_token
from tests.factories import ClusterFactory
from tests.kube import LocalKube
from tests.kubeproxy import FaultProxy
from tests.runs.helpers import env_of, kube_cluster, make_case, make_run, pod_names, pod_of
from tests.runs.helpers import running_runs as running

TOKEN = "tok-" + "y" * 30


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
