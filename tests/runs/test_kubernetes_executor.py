"""The kubernetes executor against the real control plane (tests/kube.py).

Pods are created by the real kube-apiserver (defaulting, ServiceAccount and
toleration admission, RBAC), scheduled by the real scheduler and played by
kwok; failures are kwok fault Stages (`fault_image`) or, for scheduling, the
real scheduler's own verdict.
"""

from __future__ import annotations

import socket
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.clusters.k8s import cluster_client
from apps.runs import cleanup, dispatch, reaping
from apps.runs.executors import TransientExecutorError, get_executor
from apps.runs.executors.kubernetes import _event_count, _event_time
from apps.runs.models import ProbeRun, RunState
from tests.factories import ClusterFactory, make_kubeconfig
from tests.kube import LocalKube, fault_image
from tests.kubeproxy import FaultProxy
from tests.runs.helpers import env_of, kube_cluster, make_case, make_run, pod_names, pod_of
from tests.utils import wait_for

pytestmark = pytest.mark.django_db


def report(run: ProbeRun, token: str, body: dict[str, Any]) -> int:
    response = APIClient().post(
        f"/api/v1/runs/{run.pk}/report", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    return int(response.status_code)


def events_of(kube: LocalKube, namespace: str, pod: str) -> list[dict[str, Any]]:
    return kube.api(
        "GET", f"/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name={pod}"
    )["items"]


def create_service_account(kube: LocalKube, namespace: str, name: str) -> None:
    kube.api(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}
    )


def closed_port() -> int:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- the pod as stored


def test_dispatch_creates_the_pod_with_the_contract(
    kube: LocalKube, kube_ns: str, settings: Any
) -> None:
    settings.KUBEPROBE_PUBLIC_URL = "https://kubeprobe.example.com"
    create_service_account(kube, kube_ns, "probe-sa")
    cluster = kube_cluster(kube, namespace=kube_ns, name="prod-1")
    case = make_case(
        image="registry/etcd-probe:2",
        timeout=120,
        command=["python", "-m", "probe"],
        args=["--fast"],
        resources={"limits": {"memory": "128Mi", "cpu": "0.5"}},
        service_account="probe-sa",
        default_env={"TARGET": "default", "LEVEL": "1"},
    )
    run = make_run(case, cluster)
    before = timezone.now()
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    run.refresh_from_db()
    assert run.state == RunState.RUNNING and run.executor == "kubernetes"
    pod = pod_of(kube, run)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 120
    assert spec["terminationGracePeriodSeconds"] == 5
    assert spec["serviceAccountName"] == "probe-sa"
    [container] = spec["containers"]
    assert container["name"] == "probe"
    assert container["image"] == "registry/etcd-probe:2"
    assert container["command"] == ["python", "-m", "probe"] and container["args"] == ["--fast"]
    # Stored in canonical form, requests defaulted from the limits.
    assert container["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "500m", "memory": "128Mi"},
    }
    # What defaulting and admission added around our manifest.
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert spec["dnsPolicy"] == "ClusterFirst" and spec["schedulerName"] == "default-scheduler"
    assert {t["key"] for t in spec["tolerations"]} == {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    }
    assert any("projected" in v for v in spec["volumes"])  # the account's token
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "kubeprobe"
    assert labels["kubeprobe.io/installation"] == "kubeprobe"
    assert labels["kubeprobe.io/run-id"] == str(run.pk)
    assert labels["kubeprobe.io/case"] == case.name
    assert labels["kubeprobe.io/binding"] == "none"
    assert labels["kubeprobe.io/trigger"] == "manual"
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

    # Read back with everything the server added: kwok runs it, the executor sees it running.
    def running() -> Any:
        status = get_executor("kubernetes").poll(cluster, [run])[run.pk]
        return status if status.phase == "running" else None

    status = wait_for(running, timeout=30, what="the pod to run")
    assert status.details["node"] in {"kwok-node-0", "kwok-node-1"}  # never the tainted node
    assert status.details["containers"][0] == {
        "name": "probe",
        "state": "running",
        "reason": "",
        "message": "",
        "exit_code": None,
        "restarts": 0,
    }
    assert get_executor("kubernetes").managed_handles(cluster) == {run.pk: run.pod_name}
    reaping.runs_reap_cluster(cluster_id=cluster.pk)  # a running pod before its deadline
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING

    # Only a hash of the token is stored; the token itself works for the report.
    assert run.token_hash and env["KUBEPROBE_TOKEN"] not in run.token_hash
    assert report(run, env["KUBEPROBE_TOKEN"], {"ok": True}) == 200
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.SUCCEEDED


def test_kuberhealthy_templates_get_kuberhealthy_env(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(report_protocol="kuberhealthy"), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    env = env_of(pod_of(kube, run))
    # Kuberhealthy's Go check client accepts no other path.
    assert urlsplit(env["KH_REPORTING_URL"]).path == "/check"
    assert env["KH_RUN_UUID"] == env["KUBEPROBE_TOKEN"]
    assert str(uuid.UUID(env["KH_RUN_UUID"])) == env["KH_RUN_UUID"]
    assert env["KH_CHECK_RUN_DEADLINE"] == env["KUBEPROBE_DEADLINE"]
    assert env["KH_POD_NAMESPACE"] == kube_ns
    assert env["KUBEPROBE_RUN_ID"] == str(run.pk)


def test_a_missing_service_account_is_a_clear_error(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(service_account="probe-sa"), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    # The ServiceAccount admission plugin refuses the pod.
    assert "create pod: HTTP 403:" in run.reason
    assert (
        f'error looking up service account {kube_ns}/probe-sa: serviceaccount "probe-sa" not found'
        in run.reason
    )
    assert pod_names(kube, kube_ns) == set()


# ---------------------------------------------------------------- failures the reaper reads


@pytest.mark.parametrize(
    ("fault", "fragment", "container", "events"),
    [
        (
            "image-pull",
            'ImagePullBackOff: Back-off pulling image "fault.kubeprobe.dev/image-pull"',
            ("waiting", "ImagePullBackOff", None),
            ["Scheduled", "Failed"],
        ),
        (
            "config-error",
            'CreateContainerConfigError: secret "probe-creds" not found',
            ("waiting", "CreateContainerConfigError", None),
            ["Scheduled", "Failed"],
        ),
        (
            "oom",
            "pod failed: OOMKilled (exit code 137)",
            ("terminated", "OOMKilled", 137),
            ["Scheduled"],
        ),
        (
            "evicted",
            "pod failed: Evicted (exit code 137): The node was low on resource: memory.",
            ("terminated", "ContainerStatusUnknown", 137),
            ["Scheduled", "Evicted"],
        ),
        (
            "crash",
            "pod failed: Error (exit code 1)",
            ("terminated", "Error", 1),
            ["Scheduled"],
        ),
    ],
)
def test_pod_that_fails_before_reporting_ends_the_run_at_once(
    kube: LocalKube,
    kube_ns: str,
    fault: str,
    fragment: str,
    container: tuple[str, str, int | None],
    events: list[str],
) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(image=fault_image(fault), timeout=600), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    pod_name = ProbeRun.objects.get(pk=run.pk).pod_name

    # Let the scheduler and kwok finish writing (status and events), then reap once.
    def settled() -> bool:
        pod = pod_of(kube, run)
        seen = [e["reason"] for e in events_of(kube, kube_ns, pod_name)]
        return bool(pod["status"].get("containerStatuses")) and set(events) <= set(seen)

    wait_for(settled, timeout=30, what=f"kwok to play {fault}")
    started = time.monotonic()
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk).failed_early == 1
    assert time.monotonic() - started < 5  # no waiting on logs that will never come

    run.refresh_from_db()
    assert run.state == RunState.ERROR and run.ok is False
    assert fragment in run.reason
    assert run.deadline > timezone.now()  # closed long before its deadline
    diagnostics = run.diagnostics
    assert diagnostics["pod"] == pod_name and diagnostics["node"].startswith("kwok-node-")
    [seen] = diagnostics["containers"]
    kind, reason, code = container
    assert (seen["name"], seen["state"], seen["reason"], seen["exit_code"]) == (
        "probe",
        kind,
        reason,
        code,
    )
    # The scheduler's (eventTime, microseconds, no count) and kwok's (lastTimestamp,
    # seconds) side by side, oldest first by the second: which of two in the same
    # second was written first is the API's order, not something to pin here.
    seen_events = diagnostics["events"]
    assert sorted(e["reason"] for e in seen_events) == sorted(events), seen_events
    assert all(e["time"] and e["count"] >= 1 for e in seen_events)
    seconds = [e["time"][:19] for e in seen_events]
    assert seconds == sorted(seconds)
    # kwok serves no container logs: the tail is empty and the diagnostics say why.
    assert run.log_tail == ""
    assert diagnostics["log_error"].startswith("read pod log: HTTP 500:")
    assert "containerLogs" in diagnostics["log_error"]


def test_run_without_report_times_out_with_pod_state_and_events(
    kube: LocalKube, kube_ns: str, settings: Any
) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(timeout=30, resources={"requests": {"cpu": "64"}}), cluster)
    dispatch.run_dispatch(run_id=run.pk)
    pod_name = ProbeRun.objects.get(pk=run.pk).pod_name
    [event, *_] = wait_for(
        lambda: [
            e for e in events_of(kube, kube_ns, pod_name) if e["reason"] == "FailedScheduling"
        ],
        timeout=30,
        what="the scheduler's FailedScheduling event",
    )
    assert "Insufficient cpu" in event["message"]
    # Before its deadline an unschedulable pod may still get a node: the run stays.
    result = reaping.runs_reap_cluster(cluster_id=cluster.pk)
    assert (result.timed_out, result.failed_early) == (0, 0)
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING

    later = timezone.now() + timedelta(seconds=30 + settings.KUBEPROBE_REPORT_GRACE_SECONDS + 1)
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk, now=later).timed_out == 1
    run.refresh_from_db()
    assert run.state == RunState.TIMED_OUT and run.ok is False
    assert "no report within the case timeout of 30s" in run.reason
    assert "pod: not scheduled: 0/3 nodes are available" in run.reason
    assert "Insufficient cpu" in run.reason
    assert run.diagnostics["phase"] == "Pending" and run.diagnostics["node"] == ""
    assert "Insufficient cpu" in run.diagnostics["unschedulable"]
    assert run.diagnostics["events"][-1]["reason"] == "FailedScheduling"
    # No node, so no log to ask a kubelet for: the API answers empty, nothing failed.
    assert run.log_tail == "" and "log_error" not in run.diagnostics


def test_events_read_the_way_the_api_serves_them() -> None:
    """Shapes copied from the local apiserver: the scheduler's events (events.k8s.io)
    have no lastTimestamp or count, and repeats are a series."""
    first = {
        "count": None,
        "series": None,
        "eventTime": "2026-12-07T17:40:09.524866Z",
        "lastTimestamp": None,
        "metadata": {"creationTimestamp": "2026-12-07T17:40:09Z"},
    }
    repeated = {
        "series": {"count": 2, "lastObservedTime": "2026-12-07T17:40:43.169495Z"},
        "eventTime": "2026-12-07T17:40:43.143035Z",
        "lastTimestamp": None,
    }
    kubelet = {"count": 3, "lastTimestamp": "2026-12-07T17:41:00Z", "eventTime": None}
    assert (_event_time(first), _event_count(first)) == ("2026-12-07T17:40:09.524866Z", 1)
    assert (_event_time(repeated), _event_count(repeated)) == ("2026-12-07T17:40:43.169495Z", 2)
    assert (_event_time(kubelet), _event_count(kubelet)) == ("2026-12-07T17:41:00Z", 3)


def test_a_report_after_the_reaper_closed_the_run_is_refused(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(timeout=5), cluster)
    dispatch.run_dispatch(run_id=run.pk)
    token = env_of(pod_of(kube, run))["KUBEPROBE_TOKEN"]
    reaping.runs_reap_cluster(cluster_id=cluster.pk, now=timezone.now() + timedelta(seconds=60))
    assert report(run, token, {"ok": True}) == 409
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.TIMED_OUT


# ---------------------------------------------------------------- API trouble


def test_unreachable_cluster_fails_the_run_quickly() -> None:
    cluster = ClusterFactory(
        kubeconfig=make_kubeconfig(server=f"https://127.0.0.1:{closed_port()}"),
        api_timeout_seconds=3,
    )
    run = make_run(make_case(), cluster)
    started = time.monotonic()
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    assert time.monotonic() - started < 5
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert f"Kubernetes API of cluster '{cluster.name}' is unreachable" in run.reason
    assert "refused" in run.reason.lower()


def test_rbac_without_pod_create_fails_the_run_naming_who_and_what(
    kube: LocalKube, kube_ns: str
) -> None:
    reader = kube.service_account_kubeconfig(
        kube_ns, "reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    )
    cluster = kube_cluster(kube, namespace=kube_ns, kubeconfig=reader)
    run = make_run(make_case(), cluster)
    started = time.monotonic()
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    assert time.monotonic() - started < 5
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert "create pod: HTTP 403:" in run.reason
    assert (
        f'User "system:serviceaccount:{kube_ns}:reader" cannot create resource "pods"'
        f' in API group "" in the namespace "{kube_ns}"'
    ) in run.reason


def test_missing_namespace_is_a_clear_error(kube: LocalKube) -> None:
    cluster = kube_cluster(kube, namespace="nope-" + uuid.uuid4().hex[:6])
    run = make_run(make_case(), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    assert (
        f'create pod: HTTP 404: namespaces "{cluster.namespace}" not found'
        in ProbeRun.objects.get(pk=run.pk).reason
    )


def test_transient_api_errors_give_the_run_back_for_a_retry(
    kube: LocalKube, kube_ns: str, fault_proxy: FaultProxy
) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns, kubeconfig=fault_proxy.kubeconfig())
    run = make_run(make_case(), cluster)
    fault_proxy.fail_next("POST", "/pods", 503)
    with pytest.raises(TransientExecutorError, match="HTTP 503"):
        dispatch.run_dispatch(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RunState.PENDING and run.token_hash == "" and run.deadline is None
    assert pod_names(kube, kube_ns) == set()
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    assert pod_names(kube, kube_ns) == {ProbeRun.objects.get(pk=run.pk).pod_name}
    posts = [(m, status) for m, path, status in fault_proxy.requests if m == "POST"]
    assert posts == [("POST", 503), ("POST", 201)]


# ---------------------------------------------------------------- adoption


def test_a_pod_left_by_an_earlier_attempt_counts_as_launched(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    first = pod_of(kube, run)
    ProbeRun.objects.filter(pk=run.pk).update(state=RunState.PENDING)  # as if the ack was lost
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING
    assert pod_names(kube, kube_ns) == {first["metadata"]["name"]}
    assert pod_of(kube, run)["metadata"]["uid"] == first["metadata"]["uid"]  # the same pod
    # Its token (same for every attempt) still reports.
    assert report(run, env_of(first)["KUBEPROBE_TOKEN"], {"ok": True}) == 200


def test_a_same_named_pod_of_another_portal_is_not_adopted(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    case = make_case()
    run = make_run(case, cluster)
    name = dispatch.run_launch_spec(run=run, token="", deadline=timezone.now()).name
    kube.api(
        "POST",
        f"/api/v1/namespaces/{kube_ns}/pods",
        {
            "metadata": {
                "name": name,
                "labels": {
                    "app.kubernetes.io/managed-by": "kubeprobe",
                    "kubeprobe.io/installation": "staging",
                    "kubeprobe.io/run-id": str(run.pk),
                },
            },
            "spec": {"containers": [{"name": "probe", "image": "registry/other:1"}]},
        },
    )
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    reason = ProbeRun.objects.get(pk=run.pk).reason
    assert f"pod {kube_ns}/{name} already exists and is not this run's" in reason
    assert "kubeprobe.io/installation='staging', expected 'kubeprobe'" in reason
    assert pod_of(kube, run)["spec"]["containers"][0]["image"] == "registry/other:1"


# ---------------------------------------------------------------- cleanup


def test_finished_pods_are_deleted_and_the_newest_failures_kept(
    kube: LocalKube, kube_ns: str, settings: Any
) -> None:
    settings.KUBEPROBE_KEEP_FAILED_PODS = 2
    cluster = kube_cluster(kube, namespace=kube_ns)
    case = make_case()
    runs = []
    for outcome in ("ok", "fail", "fail", "fail"):
        run = make_run(case, cluster)
        dispatch.run_dispatch(run_id=run.pk)
        token = env_of(pod_of(kube, run))["KUBEPROBE_TOKEN"]
        body = (
            {"ok": True}
            if outcome == "ok"
            else {"ok": False, "errors": ["etcd: context deadline exceeded"]}
        )
        assert report(run, token, body) == 200
        runs.append(ProbeRun.objects.get(pk=run.pk))
    assert pod_names(kube, kube_ns) == {r.pod_name for r in runs}

    assert cleanup.runs_cleanup() == 2  # the success and the oldest failure
    kept = {runs[2].pod_name, runs[3].pod_name}
    wait_for(lambda: pod_names(kube, kube_ns) == kept, timeout=30, what="the two pods to go")
    for run in runs[2:]:
        run.refresh_from_db()
        assert run.keep_until is not None and run.cleaned_at is None
    assert all(ProbeRun.objects.get(pk=r.pk).cleaned_at for r in runs[:2])
    # Looked at again a minute later: still the newest failures, still kept.
    recheck = max(r.keep_until for r in runs[2:]) + timedelta(seconds=1)
    assert cleanup.runs_cleanup(now=recheck) == 0
    assert pod_names(kube, kube_ns) == kept
    # Once the keep time is over, they go too.
    over = runs[3].finished_at + timedelta(seconds=settings.KUBEPROBE_KEEP_FAILED_POD_SECONDS + 1)
    assert cleanup.runs_cleanup(now=over) == 2
    wait_for(lambda: pod_names(kube, kube_ns) == set(), timeout=30, what="every pod to go")


def test_orphan_probe_pods_of_this_installation_are_swept(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    run = make_run(make_case(), cluster)
    dispatch.run_dispatch(run_id=run.pk)
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
        kube.api(
            "POST",
            f"/api/v1/namespaces/{kube_ns}/pods",
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry/x:1"}]},
            },
        )
    assert cleanup.cluster_sweep_orphans(cluster=cluster) == 1
    expected = {ProbeRun.objects.get(pk=run.pk).pod_name, "someone-elses-pod", "kp-other-portal-1"}
    wait_for(lambda: pod_names(kube, kube_ns) == expected, timeout=30, what="the orphan to go")
    assert cleanup.cluster_sweep_orphans(cluster=cluster) == 0


def test_one_client_per_cluster_is_reused_until_its_settings_change(
    kube: LocalKube, kube_ns: str
) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns)
    first = cluster_client(cluster)
    assert cluster_client(cluster) is first
    cluster.api_qps = 5
    cluster.save()
    second = cluster_client(cluster)
    assert second is not first and second.limiter.qps == 5
    # The rebuilt client talks to the real API server.
    assert second.call_json(second.core.list_namespaced_pod, kube_ns)["items"] == []
