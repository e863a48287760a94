"""The kubernetes executor against a fake API server over HTTP (tests/fakekube.py)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.clusters.k8s import cluster_client
from apps.runs import services
from apps.runs.executors import TransientExecutorError
from apps.runs.models import ProbeRun, RunState
from tests.factories import ClusterFactory, make_kubeconfig
from tests.fakekube import FakeKube
from tests.runs.helpers import env_of, kube_cluster, make_case, make_run
from tests.utils import wait_for

pytestmark = pytest.mark.django_db


def pod_of(fake: FakeKube, run: ProbeRun) -> dict:  # type: ignore[type-arg]
    return fake.get("pods", "kubeprobe", ProbeRun.objects.get(pk=run.pk).pod_name)


def test_dispatch_creates_the_pod_with_the_contract(fake_kube: FakeKube, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_PUBLIC_URL = "https://kubeprobe.example.com"
    cluster = kube_cluster(fake_kube, name="prod-1")
    case = make_case(
        image="registry/etcd-probe:2",
        timeout=120,
        command=["python", "-m", "probe"],
        args=["--fast"],
        resources={"limits": {"memory": "128Mi"}},
        service_account="probe-sa",
        default_env={"TARGET": "default", "LEVEL": "1"},
    )
    run = make_run(case, cluster)
    before = timezone.now()
    assert services.run_dispatch(run_id=run.pk) == "launched"
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and run.executor == "kubernetes"
    pod = pod_of(fake_kube, run)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 120
    assert spec["serviceAccountName"] == "probe-sa"
    container = spec["containers"][0]
    assert container["image"] == "registry/etcd-probe:2"
    assert container["command"] == ["python", "-m", "probe"] and container["args"] == ["--fast"]
    assert container["resources"] == {"limits": {"memory": "128Mi"}}
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "kubeprobe"
    assert labels["kubeprobe.io/installation"] == "kubeprobe"
    assert labels["kubeprobe.io/run-id"] == str(run.pk)
    assert labels["kubeprobe.io/case"] == case.name
    assert labels["kubeprobe.io/binding"] == "none"
    env = env_of(pod)
    assert (
        env["KUBEPROBE_REPORT_URL"] == f"https://kubeprobe.example.com/api/v1/runs/{run.pk}/report"
    )
    assert env["KUBEPROBE_RUN_ID"] == str(run.pk)
    assert env["KUBEPROBE_CLUSTER"] == "prod-1"
    deadline = int(env["KUBEPROBE_DEADLINE"])
    assert abs(deadline - (before + timedelta(seconds=120)).timestamp()) < 5
    assert env["TARGET"] == "etcd-meta" and env["LEVEL"] == "1"  # render config over defaults
    assert "KH_RUN_UUID" not in env
    # Only a hash of the token is stored; the token itself works for the report.
    assert run.token_hash and env["KUBEPROBE_TOKEN"] not in run.token_hash
    response = APIClient().post(
        f"/api/v1/runs/{run.pk}/report",
        {"ok": True},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {env['KUBEPROBE_TOKEN']}",
    )
    assert response.status_code == 200
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.SUCCEEDED


def test_kuberhealthy_templates_get_kuberhealthy_env(fake_kube: FakeKube) -> None:
    cluster = kube_cluster(fake_kube)
    run = make_run(make_case(report_protocol="kuberhealthy"), cluster)
    services.run_dispatch(run_id=run.pk)
    env = env_of(pod_of(fake_kube, run))
    assert env["KH_REPORTING_URL"].endswith("/api/v1/kuberhealthy/check")
    assert env["KH_RUN_UUID"] == env["KUBEPROBE_TOKEN"]
    assert env["KH_CHECK_RUN_DEADLINE"] == env["KUBEPROBE_DEADLINE"]
    assert env["KH_POD_NAMESPACE"] == "kubeprobe"


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("fake/imagepullbackoff", "ImagePullBackOff"),
        ("fake/createerror", 'CreateContainerConfigError: secret "probe-creds" not found'),
        ("fake/oomkilled", "OOMKilled (exit code 137)"),
        ("fake/evicted", "Evicted (exit code 137): The node was low on resource: memory."),
        ("fake/exit1", "Error (exit code 1)"),
    ],
)
def test_pod_that_fails_before_reporting_ends_the_run_at_once(
    fake_kube: FakeKube, image: str, fragment: str
) -> None:
    cluster = kube_cluster(fake_kube)
    run = make_run(make_case(image=image, timeout=600), cluster)
    services.run_dispatch(run_id=run.pk)

    def reaped() -> bool:
        services.runs_reap_cluster(cluster_id=cluster.pk)
        return ProbeRun.objects.get(pk=run.pk).state != RunState.RUNNING

    wait_for(reaped, what=f"the reaper to close a run whose pod is {image}")
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert fragment in run.reason
    assert run.deadline > timezone.now()  # closed long before its deadline
    assert run.diagnostics["containers"][0]["name"] == "probe"
    assert any(e["reason"] == "Scheduled" for e in run.diagnostics["events"])
    assert run.log_tail == "probe starting\n"


def test_run_without_report_times_out_with_pod_state_events_and_log(
    fake_kube: FakeKube, settings
) -> None:  # type: ignore[no-untyped-def]
    cluster = kube_cluster(fake_kube)
    run = make_run(make_case(image="fake/unschedulable", timeout=30), cluster)
    services.run_dispatch(run_id=run.pk)
    wait_for(lambda: fake_kube.list("events"), what="the scheduler's event")
    services.runs_reap_cluster(cluster_id=cluster.pk)  # before the deadline: left alone
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING
    later = timezone.now() + timedelta(seconds=30 + settings.KUBEPROBE_REPORT_GRACE_SECONDS + 1)
    result = services.runs_reap_cluster(cluster_id=cluster.pk, now=later)
    assert result.timed_out == 1
    run.refresh_from_db()
    assert run.state == RunState.TIMED_OUT
    assert "no report within the case timeout of 30s" in run.reason
    assert "Insufficient cpu" in run.reason
    assert run.diagnostics["phase"] == "Pending"
    assert run.diagnostics["events"][-1]["reason"] == "FailedScheduling"
    assert run.ok is False


def test_a_report_after_the_reaper_closed_the_run_is_refused(fake_kube: FakeKube, settings) -> None:  # type: ignore[no-untyped-def]
    cluster = kube_cluster(fake_kube)
    run = make_run(make_case(timeout=5), cluster)
    services.run_dispatch(run_id=run.pk)
    token = env_of(pod_of(fake_kube, run))["KUBEPROBE_TOKEN"]
    services.runs_reap_cluster(cluster_id=cluster.pk, now=timezone.now() + timedelta(seconds=60))
    response = APIClient().post(
        f"/api/v1/runs/{run.pk}/report",
        {"ok": True},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 409
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.TIMED_OUT


def test_unreachable_cluster_fails_the_run_quickly() -> None:
    cluster = ClusterFactory(
        kubeconfig=make_kubeconfig(server="https://127.0.0.1:1"), api_timeout_seconds=3
    )
    run = make_run(make_case(), cluster)
    started = time.monotonic()
    assert services.run_dispatch(run_id=run.pk) == "error"
    assert time.monotonic() - started < 5
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert f"Kubernetes API of cluster '{cluster.name}' is unreachable" in run.reason
    assert "refused" in run.reason.lower()


def test_missing_namespace_is_a_clear_error(fake_kube: FakeKube) -> None:
    cluster = kube_cluster(fake_kube, namespace="nope")
    run = make_run(make_case(), cluster)
    assert services.run_dispatch(run_id=run.pk) == "error"
    assert (
        'create pod: HTTP 404: namespaces "nope" not found'
        in ProbeRun.objects.get(pk=run.pk).reason
    )


def test_transient_api_errors_give_the_run_back_for_a_retry(fake_kube: FakeKube) -> None:
    cluster = kube_cluster(fake_kube)
    run = make_run(make_case(), cluster)
    fake_kube.fail_next("POST", "pods", 503)
    with pytest.raises(TransientExecutorError, match="HTTP 503"):
        services.run_dispatch(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RunState.PENDING and run.token_hash == ""
    assert services.run_dispatch(run_id=run.pk) == "launched"
    assert len(fake_kube.list("pods")) == 1


def test_a_pod_left_by_an_earlier_attempt_counts_as_launched(fake_kube: FakeKube) -> None:
    cluster = kube_cluster(fake_kube)
    run = make_run(make_case(), cluster)
    services.run_dispatch(run_id=run.pk)
    ProbeRun.objects.filter(pk=run.pk).update(state=RunState.PENDING)  # as if the ack was lost
    assert services.run_dispatch(run_id=run.pk) == "launched"
    assert len(fake_kube.list("pods")) == 1


def test_finished_pods_are_deleted_and_recent_failures_kept(fake_kube: FakeKube, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_KEEP_FAILED_PODS = 1
    cluster = kube_cluster(fake_kube)
    case = make_case()
    runs = []
    for outcome in ("ok", "fail", "fail"):
        run = make_run(case, cluster)
        services.run_dispatch(run_id=run.pk)
        token = env_of(pod_of(fake_kube, run))["KUBEPROBE_TOKEN"]
        body = (
            {"ok": True}
            if outcome == "ok"
            else {"ok": False, "errors": ["etcd: context deadline exceeded"]}
        )
        assert (
            APIClient()
            .post(
                f"/api/v1/runs/{run.pk}/report",
                body,
                format="json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            .status_code
            == 200
        )
        runs.append(ProbeRun.objects.get(pk=run.pk))
    assert services.runs_cleanup() == 2  # the success and the older failure
    remaining = {p["metadata"]["name"] for p in fake_kube.list("pods")}
    assert remaining == {runs[2].pod_name}
    kept = ProbeRun.objects.get(pk=runs[2].pk)
    assert kept.keep_until is not None and kept.cleaned_at is None
    # Looked at again a minute later: still the newest failure, still kept.
    assert services.runs_cleanup(now=kept.keep_until + timedelta(seconds=1)) == 0
    # Once the keep time is over, it goes too.
    over = kept.finished_at + timedelta(seconds=settings.KUBEPROBE_KEEP_FAILED_POD_SECONDS + 1)
    assert services.runs_cleanup(now=over) == 1
    assert fake_kube.list("pods") == []


def test_orphan_probe_pods_are_swept(fake_kube: FakeKube) -> None:
    cluster = kube_cluster(fake_kube)
    run = make_run(make_case(), cluster)
    services.run_dispatch(run_id=run.pk)
    ours = {"app.kubernetes.io/managed-by": "kubeprobe", "kubeprobe.io/installation": "kubeprobe"}
    for name, labels in [
        ("kp-orphan-999999", {**ours, "kubeprobe.io/run-id": "999999"}),
        ("someone-elses-pod", {"app": "web"}),
        # Another portal sharing the namespace: its run ids mean nothing here.
        (
            "kp-other-portal-1",
            {**ours, "kubeprobe.io/installation": "staging", "kubeprobe.io/run-id": "1"},
        ),
    ]:
        fake_kube.add(
            "pods",
            "kubeprobe",
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        )
    assert services.cluster_sweep_orphans(cluster=cluster) == 1
    names = {p["metadata"]["name"] for p in fake_kube.list("pods")}
    assert names == {
        ProbeRun.objects.get(pk=run.pk).pod_name,
        "someone-elses-pod",
        "kp-other-portal-1",
    }


def test_one_client_per_cluster_is_reused_until_its_settings_change(fake_kube: FakeKube) -> None:
    cluster = kube_cluster(fake_kube)
    first = cluster_client(cluster)
    assert cluster_client(cluster) is first
    cluster.api_qps = 5
    cluster.save()
    second = cluster_client(cluster)
    assert second is not first and second.limiter.qps == 5
