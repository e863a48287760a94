"""deploy/kubernetes/portal-rbac.yaml is exactly what the kubernetes executor needs.

The manifest is applied to the real control plane (its namespace swapped for
the test's), the portal talks to the API with the token the controller mints
for its service account (not as admin), and every step of the run loop works;
without one of its rights, the step that needs it fails naming the 403.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.utils import timezone
from kube_local import kubeconfig_yaml
from rest_framework.test import APIClient

from apps.clusters.models import Cluster
from apps.runs import cleanup, dispatch, reaping
from apps.runs.executors import ExecutorError
from apps.runs.models import ProbeRun, RunState
from tests.kube import LocalKube, fault_image
from tests.runs.helpers import env_of, kube_cluster, make_case, make_run, pod_names, pod_of
from tests.utils import wait_for

pytestmark = pytest.mark.django_db

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "portal-rbac.yaml"
ACCOUNT = "kubeprobe-portal"


def portal_rbac(namespace: str) -> list[dict[str, Any]]:
    """The shipped manifest for `namespace`, changed the way its header says."""
    text = MANIFEST.read_text().replace("namespace: kubeprobe", f"namespace: {namespace}")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def allowed(kube: LocalKube, namespace: str, resource: str, verb: str, api_group: str = "") -> bool:
    """Ask the API server's own authorizer (what the next request will meet)."""
    group, _, sub = resource.partition("/")
    review = kube.api(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{namespace}:{ACCOUNT}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "group": api_group,
                    "resource": group,
                    "subresource": sub,
                },
            },
        },
    )
    return bool(review["status"].get("allowed"))


def apply_portal_rbac(
    kube: LocalKube, namespace: str, without: tuple[str, str] | None = None
) -> str:
    """Apply the manifest (optionally minus one verb); the kubeconfig of its account's token."""
    docs = portal_rbac(namespace)
    rules: list[dict[str, Any]] = []
    for doc in docs:
        assert doc["metadata"]["namespace"] == namespace  # nothing lands elsewhere
        if doc["kind"] == "Role":
            rules = doc["rules"]
            if without is not None:
                resource, verb = without
                [rule] = [r for r in rules if r["resources"] == [resource]]
                rule["verbs"].remove(verb)
                if not rule["verbs"]:  # a rule must grant something
                    rules.remove(rule)
        kube.apply(doc)
    for rule in rules:  # RBAC reaches the authorizer through a cache: wait for it
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                wait_for(
                    lambda r=resource, v=verb, g=rule["apiGroups"][0]: allowed(
                        kube, namespace, r, v, g
                    ),
                    timeout=30,
                    what=f"{verb} {resource} to be allowed",
                )

    def minted() -> str:
        secret = kube.api("GET", f"/api/v1/namespaces/{namespace}/secrets/{ACCOUNT}-token")
        return str((secret.get("data") or {}).get("token", ""))

    token = base64.b64decode(wait_for(minted, timeout=30, what="the account's token")).decode()
    return kubeconfig_yaml(kube.server, kube.ca_path, {"token": token}, "portal")


def portal_cluster(kube: LocalKube, namespace: str, **kwargs: Any) -> Cluster:
    return kube_cluster(
        kube, namespace=namespace, kubeconfig=apply_portal_rbac(kube, namespace, **kwargs)
    )


def reported(run: ProbeRun, kube: LocalKube, ok: bool) -> None:
    token = env_of(pod_of(kube, run))["KUBEPROBE_TOKEN"]
    body = {"ok": True} if ok else {"ok": False, "errors": ["boom"]}
    response = APIClient().post(
        f"/api/v1/runs/{run.pk}/report", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200


def add_orphan(kube: LocalKube, namespace: str) -> None:
    kube.api(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {
                "name": "kp-orphan-999999",
                "labels": {
                    "app.kubernetes.io/managed-by": "kubeprobe",
                    "kubeprobe.io/installation": "kubeprobe",
                    "kubeprobe.io/run-id": "999999",
                },
            },
            "spec": {"containers": [{"name": "probe", "image": "registry/x:1"}]},
        },
    )


def crashed_and_settled(kube: LocalKube, run: ProbeRun) -> None:
    """kwok has failed the pod and the scheduler's event is written."""
    namespace = ProbeRun.objects.select_related("cluster").get(pk=run.pk).cluster.namespace

    def settled() -> bool:
        pod = pod_of(kube, run)
        events = kube.api(
            "GET",
            f"/api/v1/namespaces/{namespace}/events"
            f"?fieldSelector=involvedObject.name={pod['metadata']['name']}",
        )["items"]
        return pod["status"].get("phase") == "Failed" and bool(events)

    wait_for(settled, timeout=30, what="the crashed pod and its events")


def test_the_shipped_rbac_is_enough_for_the_whole_run_loop(
    kube: LocalKube, kube_ns: str, settings: Any
) -> None:
    settings.KUBEPROBE_KEEP_FAILED_PODS = 0
    # Namespaced objects only: nothing cluster-wide (each rule is shown needed below).
    kinds = sorted(doc["kind"] for doc in portal_rbac(kube_ns))
    assert kinds == ["Role", "RoleBinding", "Secret", "ServiceAccount"]
    cluster = portal_cluster(kube, kube_ns)
    # Dispatch (create), and a retried dispatch adopting its pod (get).
    ok = make_run(make_case(), cluster)
    assert dispatch.run_dispatch(run_id=ok.pk) == "launched"
    ProbeRun.objects.filter(pk=ok.pk).update(state=RunState.PENDING)
    assert dispatch.run_dispatch(run_id=ok.pk) == "launched"
    # Poll (list), events (list) and the log tail (pods/log) of a pod that crashed.
    crashed = make_run(make_case(image=fault_image("crash")), cluster)
    assert dispatch.run_dispatch(run_id=crashed.pk) == "launched"
    crashed_and_settled(kube, crashed)
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk).failed_early == 1
    crashed.refresh_from_db()
    assert crashed.state == RunState.ERROR and "pod failed: Error (exit code 1)" in crashed.reason
    assert any(e["reason"] == "Scheduled" for e in crashed.diagnostics["events"])
    assert "events_error" not in crashed.diagnostics
    # The log request got past RBAC to the (absent) kwok kubelet.
    assert "containerLogs" in crashed.diagnostics["log_error"]
    assert "forbidden" not in crashed.diagnostics["log_error"]
    # Cleanup and the orphan sweep (delete).
    reported(ok, kube, ok=True)
    assert cleanup.runs_cleanup() == 2
    wait_for(lambda: pod_names(kube, kube_ns) == set(), timeout=30, what="the run pods to go")
    add_orphan(kube, kube_ns)
    assert cleanup.cluster_sweep_orphans(cluster=cluster) == 1
    wait_for(lambda: pod_names(kube, kube_ns) == set(), timeout=30, what="the orphan to go")


def forbidden(namespace: str, verb: str, resource: str) -> str:
    return f'User "system:serviceaccount:{namespace}:{ACCOUNT}" cannot {verb} resource "{resource}"'


def test_without_create_the_run_ends_as_an_error_naming_the_403(
    kube: LocalKube, kube_ns: str
) -> None:
    cluster = portal_cluster(kube, kube_ns, without=("pods", "create"))
    run = make_run(make_case(), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    reason = ProbeRun.objects.get(pk=run.pk).reason
    assert "create pod: HTTP 403:" in reason and forbidden(kube_ns, "create", "pods") in reason


def test_without_get_a_retried_dispatch_cannot_adopt_its_pod(kube: LocalKube, kube_ns: str) -> None:
    cluster = portal_cluster(kube, kube_ns, without=("pods", "get"))
    run = make_run(make_case(), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    ProbeRun.objects.filter(pk=run.pk).update(state=RunState.PENDING)
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    reason = ProbeRun.objects.get(pk=run.pk).reason
    assert "read the existing pod: HTTP 403:" in reason
    assert forbidden(kube_ns, "get", "pods") in reason


def test_without_list_the_reaper_cannot_poll_and_says_so(
    kube: LocalKube, kube_ns: str, settings: Any
) -> None:
    cluster = portal_cluster(kube, kube_ns, without=("pods", "list"))
    run = make_run(make_case(image=fault_image("crash"), timeout=30), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    crashed_and_settled(kube, run)
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk).failed_early == 0  # cannot see it
    later = timezone.now() + timedelta(seconds=30 + settings.KUBEPROBE_REPORT_GRACE_SECONDS + 1)
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk, now=later).timed_out == 1
    closed = ProbeRun.objects.get(pk=run.pk)
    assert closed.state == RunState.TIMED_OUT
    assert "polling the cluster failed: list probe pods: HTTP 403:" in closed.reason
    assert forbidden(kube_ns, "list", "pods") in closed.diagnostics["poll_error"]
    with pytest.raises(ExecutorError, match="list probe pods: HTTP 403"):
        cleanup.cluster_sweep_orphans(cluster=cluster)


@pytest.mark.parametrize(
    ("resource", "verb", "key"),
    [("pods/log", "get", "log_error"), ("events", "list", "events_error")],
)
def test_without_logs_or_events_the_diagnostics_name_the_403(
    kube: LocalKube, kube_ns: str, resource: str, verb: str, key: str
) -> None:
    cluster = portal_cluster(kube, kube_ns, without=(resource, verb))
    run = make_run(make_case(image=fault_image("crash")), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    crashed_and_settled(kube, run)
    assert reaping.runs_reap_cluster(cluster_id=cluster.pk).failed_early == 1
    closed = ProbeRun.objects.get(pk=run.pk)
    # The run still closes with its reason; the missing right is named beside it.
    assert closed.state == RunState.ERROR and "pod failed: Error (exit code 1)" in closed.reason
    assert "HTTP 403:" in closed.diagnostics[key]
    assert forbidden(kube_ns, verb, resource) in closed.diagnostics[key]


def test_without_delete_cleanup_and_sweep_fail_naming_the_403(
    kube: LocalKube, kube_ns: str, settings: Any
) -> None:
    settings.KUBEPROBE_KEEP_FAILED_PODS = 0
    cluster = portal_cluster(kube, kube_ns, without=("pods", "delete"))
    run = make_run(make_case(), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    reported(run, kube, ok=True)
    assert cleanup.runs_cleanup() == 0
    run.refresh_from_db()
    assert run.cleaned_at is None and run.keep_until > timezone.now()  # retried later
    assert "delete pod: HTTP 403:" in run.diagnostics["cleanup_error"]
    assert forbidden(kube_ns, "delete", "pods") in run.diagnostics["cleanup_error"]
    assert pod_names(kube, kube_ns) == {run.pod_name}
    add_orphan(kube, kube_ns)
    with pytest.raises(ExecutorError, match="delete pod: HTTP 403"):
        cleanup.cluster_sweep_orphans(cluster=cluster)
    assert "kp-orphan-999999" in pod_names(kube, kube_ns)
