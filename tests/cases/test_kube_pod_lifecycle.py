"""The pod lifecycle case (LIFECYCLE_KIND=pod) against the real control plane: every step, the real reasons it fails, cleanup.

See tests/cases/kube_helpers.py for how the cases run and what they run against.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_local import LocalKube

from tests.cases.kube_helpers import (
    assert_swept,
    case_env,
    closed_port_kubeconfig,
    events,
    leftovers,
    steps,
)
from tests.kube import fault_image
from tests.kubeproxy import FaultProxy
from tests.portal import run_case
from tests.utils import wait_for


def test_pod_lifecycle_passes_every_step(
    kube: LocalKube, kube_ns: str, probe_account: str, tmp_path: Path
) -> None:
    result, body = run_case("lifecycle", case_env(probe_account, kube_ns, tmp_path))
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    assert [s["name"] for s in body["steps"]] == [
        "create",
        "scheduled",
        "running",
        "ready",
        "delete",
        "gone",
    ]
    assert all(s["ok"] for s in body["steps"])
    assert leftovers(kube, kube_ns, "pods") == []  # "gone" waited for it
    # The pod was made in PROBE_NAMESPACE and placed by the real scheduler, never on
    # the tainted node.
    [scheduled] = wait_for(lambda: events(kube, kube_ns, "Scheduled"), what="Scheduled event")
    assert scheduled["involvedObject"]["name"].startswith("kubeprobe-pod-")
    assert scheduled["message"].startswith(f"Successfully assigned {kube_ns}/kubeprobe-pod-")
    assert scheduled["message"].split()[-1] in {"kwok-node-0", "kwok-node-1"}


def test_pod_that_cannot_pull_fails_running_with_the_reason_and_is_deleted(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    image = fault_image("image-pull")
    env = case_env(
        kube.kubeconfig(), kube_ns, tmp_path, PROBE_IMAGE=image, WAIT_TIMEOUT_SECONDS="8"
    )
    result, body = run_case("lifecycle", env)
    assert result.returncode != 0
    assert body["ok"] is False
    assert steps(body)["scheduled"]["ok"] is True
    failed = steps(body)["running"]
    assert failed["ok"] is False
    assert "not reached after 8 s; last seen: phase Pending" in failed["error"]
    assert f'ImagePullBackOff Back-off pulling image "{image}"' in failed["error"]
    assert "events: Failed: Failed to pull image" in failed["error"]  # the kubelet's event
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods")


@pytest.fixture
def full_nodes(kube: LocalKube, kube_ns: str) -> Iterator[None]:
    """Every node's CPU taken by a pod bound to it: the scheduler has room for nothing more."""
    pods = f"/api/v1/namespaces/{kube_ns}/pods"
    names = []
    for node in kube.api("GET", "/api/v1/nodes")["items"]:
        name = f"hog-{node['metadata']['name']}"
        cpu = node["status"]["allocatable"]["cpu"]
        container = {"name": "hog", "image": "hog", "resources": {"requests": {"cpu": cpu}}}
        spec = {
            "nodeName": node["metadata"]["name"],
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [container],
        }
        kube.api("POST", pods, {"metadata": {"name": name}, "spec": spec})
        names.append(name)

    def running() -> bool:
        phases = [kube.api("GET", f"{pods}/{n}")["status"].get("phase") for n in names]
        return phases == ["Running"] * len(names)

    wait_for(running, timeout=30, what="the hog pods to run")
    yield
    for name in names:
        kube.request("DELETE", f"{pods}/{name}")
    wait_for(
        lambda: all(kube.request("GET", f"{pods}/{n}")[0] == 404 for n in names),
        timeout=30,
        what="the hog pods to be gone",
    )


def test_unschedulable_pod_fails_scheduled_naming_the_scheduler_reason(
    kube: LocalKube, kube_ns: str, full_nodes: None, tmp_path: Path
) -> None:
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, WAIT_TIMEOUT_SECONDS="2")
    _, body = run_case("lifecycle", env)
    failed = steps(body)["scheduled"]
    assert failed["ok"] is False
    # The real scheduler's condition and its FailedScheduling event.
    assert "PodScheduled=False (Unschedulable: 0/3 nodes are available" in failed["error"]
    assert "Insufficient cpu" in failed["error"]
    assert "events: FailedScheduling: 0/3 nodes are available" in failed["error"]
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("crash", "terminated: Error exit code 1"), ("oom", "terminated: OOMKilled exit code 137")],
)
def test_pod_that_crashes_fails_at_once_without_waiting_out_the_timeout(
    kube: LocalKube, kube_ns: str, tmp_path: Path, fault: str, reason: str
) -> None:
    env = case_env(
        kube.kubeconfig(),
        kube_ns,
        tmp_path,
        PROBE_IMAGE=fault_image(fault),
        WAIT_TIMEOUT_SECONDS="60",
    )
    started = time.monotonic()
    _, body = run_case("lifecycle", env)
    failed = next(s for s in body["steps"] if not s["ok"])
    assert "ended: phase Failed" in failed["error"]
    assert f"container probe {reason}" in failed["error"]
    assert failed["duration_ms"] < 30_000
    assert time.monotonic() - started < 30
    assert_swept(kube, kube_ns, "pods")


def test_refused_creation_fails_the_create_step_with_the_api_answer(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    # Real RBAC: this account may do everything the case does except create pods.
    config = kube.service_account_kubeconfig(
        kube_ns,
        "no-create",
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        ],
    )
    _, body = run_case("lifecycle", case_env(config, kube_ns, tmp_path))
    create = steps(body)["create"]
    assert create["ok"] is False
    assert (
        f'HTTP 403: pods is forbidden: User "system:serviceaccount:{kube_ns}:no-create" '
        f'cannot create resource "pods" in API group "" in the namespace "{kube_ns}"'
    ) in create["error"]
    # A refused create may still have stored the pod (a lost answer): cleanup runs anyway.
    assert steps(body)["cleanup"]["ok"] is True
    assert "scheduled" not in steps(body)


def test_a_pod_stored_although_its_create_answer_was_lost_is_still_deleted(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    # The one fault here a real API server cannot play: it stores the pod, the answer is lost.
    proxy = FaultProxy(kube)
    try:
        proxy.lose_next_answer("POST", f"/namespaces/{kube_ns}/pods", 504)
        _, body = run_case("lifecycle", case_env(proxy.kubeconfig(), kube_ns, tmp_path))
        assert "HTTP 504" in steps(body)["create"]["error"]
        assert steps(body)["cleanup"]["ok"] is True
        deletes = [r for r in proxy.requests if r[0] == "DELETE" and "/pods/kubeprobe-pod-" in r[1]]
        assert [status for *_, status in deletes] == [200]  # the pod existed, and went
        assert_swept(kube, kube_ns, "pods")
    finally:
        proxy.stop()


def test_slow_step_fails_with_the_measured_time(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    # No real scheduler binds a pod within 1 ms of its creation being answered.
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, THRESHOLD_SCHEDULED_MS="1")
    _, body = run_case("lifecycle", env)
    assert steps(body)["create"]["ok"] is True  # STEP_THRESHOLD_MS (60 s) for the others
    scheduled = steps(body)["scheduled"]
    assert scheduled["ok"] is False
    assert "over the 1 ms threshold" in scheduled["error"]
    assert scheduled["duration_ms"] >= 1
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIFECYCLE_KIND": "job"}, "LIFECYCLE_KIND must be one of pod, deployment, statefulset"),
        ({"LIFECYCLE_REPLICAS": "0"}, "LIFECYCLE_REPLICAS must be at least 1"),
        ({"LIFECYCLE_REPLICAS": "many"}, "LIFECYCLE_REPLICAS must be a number"),
        ({"KUBECONFIG": "/nonexistent/kubeconfig"}, "cannot load KUBECONFIG=/nonexistent"),
    ],
)
def test_bad_configuration_fails_naming_the_variable(
    kube: LocalKube, kube_ns: str, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    _, body = run_case("lifecycle", case_env(kube.kubeconfig(), kube_ns, tmp_path, **env))
    assert body["ok"] is False
    assert message in body["errors"][0]
    assert body["steps"] == []  # stopped before anything touched the cluster


def test_unreachable_api_server_fails_quickly_with_the_reason(
    kube: LocalKube, tmp_path: Path
) -> None:
    env = case_env(closed_port_kubeconfig(kube), "kubeprobe", tmp_path, REQUEST_TIMEOUT_SECONDS="2")
    started = time.monotonic()
    _, body = run_case("lifecycle", env)
    assert body["ok"] is False
    create = steps(body)["create"]["error"]
    assert "POST /api/v1/namespaces/kubeprobe/pods" in create
    assert "Connection refused" in create
    assert time.monotonic() - started < 20
