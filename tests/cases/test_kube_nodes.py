"""The per-node case on kwok nodes: NotReady and cordoned nodes counted, not probed; a broken node named with its reason.

See tests/cases/kube_helpers.py for how the cases run and what they run against.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_local import LocalKube

from tests.cases.kube_helpers import (
    PodWatch,
    assert_swept,
    case_env,
    events,
    leftovers,
    steps,
)
from tests.kube import FAULT_KEY
from tests.portal import run_case
from tests.utils import wait_for


def node_ready(kube: LocalKube, name: str) -> str:
    node = kube.api("GET", f"/api/v1/nodes/{name}")
    conditions = node.get("status", {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


@pytest.fixture
def gpu_nodes(kube: LocalKube) -> Iterator[None]:
    """Two more nodes in pool=gpu: one NotReady (kwok's fault Stage), one Ready but cordoned."""
    kube.add_node("kwok-gpu-broken", {"pool": "gpu", FAULT_KEY: "not-ready"})
    kube.add_node("kwok-gpu-cordoned", {"pool": "gpu"})
    try:
        kube.api(
            "PATCH",
            "/api/v1/nodes/kwok-gpu-cordoned",
            {"spec": {"unschedulable": True}},
            content_type="application/merge-patch+json",
        )
        wait_for(
            lambda: node_ready(kube, "kwok-gpu-broken") == "False", timeout=30, what="NotReady"
        )
        wait_for(lambda: node_ready(kube, "kwok-gpu-cordoned") == "True", timeout=30, what="Ready")
        yield
    finally:
        for name in ("kwok-gpu-broken", "kwok-gpu-cordoned"):
            kube.request("DELETE", f"/api/v1/nodes/{name}")
        wait_for(
            lambda: all(
                kube.request("GET", f"/api/v1/nodes/{n}")[0] == 404
                for n in ("kwok-gpu-broken", "kwok-gpu-cordoned")
            ),
            timeout=30,
            what="the added nodes to be gone",
        )


def test_every_ready_schedulable_node_gets_a_pinned_pod(
    kube: LocalKube, kube_ns: str, probe_account: str, gpu_nodes: None, tmp_path: Path
) -> None:
    pods = PodWatch(kube, kube_ns)
    try:
        result, body = run_case("nodes", case_env(probe_account, kube_ns, tmp_path))
    finally:
        pods.stop()
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    # kwok-node-2 is tainted NoSchedule: the case tolerates every taint, so it is probed too.
    assert sorted(s["name"] for s in body["steps"]) == [
        "cleanup",
        "list nodes",
        "node kwok-node-0",
        "node kwok-node-1",
        "node kwok-node-2",
    ]
    assert body["metrics"]["nodes_probed"] == 3
    assert body["metrics"]["nodes_not_ready"] == 1
    assert body["metrics"]["nodes_unschedulable"] == 1
    # Bound at creation (spec.nodeName in the first event), not by the scheduler.
    pinned = [p["spec"].get("nodeName") for p in pods.added()]
    assert sorted(pinned) == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    assert events(kube, kube_ns, "Scheduled") == []
    assert_swept(kube, kube_ns, "pods")


@pytest.fixture
def broken_node(kube: LocalKube, kube_ns: str) -> Iterator[str]:
    """kwok-node-1 evicts every pod of this namespace (a MutatingAdmissionPolicy sets
    kwok's `evicted` fault on pods bound to it): a node low on memory."""
    node, name = "kwok-node-1", f"{kube_ns}-broken-node"
    policies = "/apis/admissionregistration.k8s.io/v1"
    mutation = "Object{metadata: Object.metadata{annotations: {'" + FAULT_KEY + "': 'evicted'}}}"
    kube.api(
        "POST",
        f"{policies}/mutatingadmissionpolicies",
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "matchConditions": [
                    {
                        "name": "on-node",
                        "expression": f"has(object.spec.nodeName) && object.spec.nodeName == '{node}'",
                    }
                ],
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {"expression": mutation},
                    }
                ],
            },
        },
    )
    kube.api(
        "POST",
        f"{policies}/mutatingadmissionpolicybindings",
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube_ns}}
                },
            },
        },
    )
    try:
        probe = {
            "metadata": {"name": "dry-run"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "c"}]},
        }

        def in_force() -> bool:
            pod = kube.api("POST", f"/api/v1/namespaces/{kube_ns}/pods?dryRun=All", probe)
            return FAULT_KEY in (pod["metadata"].get("annotations") or {})

        wait_for(in_force, timeout=30, interval=0.1, what="the admission policy to apply")
        yield node
    finally:
        kube.request("DELETE", f"{policies}/mutatingadmissionpolicybindings/{name}")
        kube.request("DELETE", f"{policies}/mutatingadmissionpolicies/{name}")


def test_a_broken_node_is_named_with_its_reason(
    kube: LocalKube, kube_ns: str, broken_node: str, tmp_path: Path
) -> None:
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, WAIT_TIMEOUT_SECONDS="10")
    _, body = run_case("nodes", env)
    by_name = steps(body)
    assert body["ok"] is False
    assert by_name["node kwok-node-0"]["ok"] and by_name["node kwok-node-2"]["ok"]
    error = by_name[f"node {broken_node}"]["error"]
    assert "ended: phase Failed; Evicted: The node was low on resource: memory" in error
    assert "events: Evicted: The node was low on resource: memory" in error
    assert body["errors"][-1].endswith(f"1 of 3 nodes failed: {broken_node}")
    assert body["metrics"]["nodes_failed"] == 1
    assert_swept(kube, kube_ns, "pods")


def test_no_eligible_node_fails_listing(
    kube: LocalKube, kube_ns: str, gpu_nodes: None, tmp_path: Path
) -> None:
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, NODES_SELECTOR="pool=gpu")
    _, body = run_case("nodes", env)
    assert body["ok"] is False
    assert (
        "no Ready, schedulable node matches 'pool=gpu' (1 NotReady, 1 cordoned)"
        in steps(body)["list nodes"]["error"]
    )
    assert leftovers(kube, kube_ns, "pods") == []
