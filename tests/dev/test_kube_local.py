"""The local control plane itself (deploy/dev/kube_local.py): what tests rely on."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import load_kube_config_from_dict

from tests.kube import FAULT_KEY, LocalKube, fault_image
from tests.utils import wait_for


def api_for(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    load_kube_config_from_dict(yaml.safe_load(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def pod(name: str, image: str = "registry.k8s.io/pause:3.10", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "probe", "image": image}],
            **spec,
        },
    }


def test_the_real_release_answers_with_three_nodes_one_tainted(kube: LocalKube) -> None:
    api = api_for(kube.kubeconfig())
    assert client.VersionApi(api).get_code().git_version == "v1.37.2"
    nodes = client.CoreV1Api(api).list_node().items
    assert sorted(n.metadata.name for n in nodes) == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    ready = {
        n.metadata.name: next(c.status for c in n.status.conditions if c.type == "Ready")
        for n in nodes
    }
    assert set(ready.values()) == {"True"}
    tainted = [n.metadata.name for n in nodes if n.spec.taints]
    assert tainted == ["kwok-node-2"]


def test_pods_become_running_and_ready_through_the_real_scheduler(
    kube: LocalKube, kube_ns: str
) -> None:
    core = client.CoreV1Api(api_for(kube.kubeconfig()))
    core.create_namespaced_pod(kube_ns, pod("plain"))

    def ready() -> Any:
        found = core.read_namespaced_pod("plain", kube_ns)
        conditions = {c.type: c.status for c in found.status.conditions or []}
        return found if conditions.get("Ready") == "True" else None

    found = wait_for(ready, timeout=30, what="the pod to be Ready")
    assert found.spec.node_name in {"kwok-node-0", "kwok-node-1"}  # never the tainted node
    assert found.status.phase == "Running" and found.status.pod_ip
    # The real ServiceAccount admission mounted the namespace's default account.
    assert found.spec.service_account_name == "default"


@pytest.mark.parametrize(
    ("fault", "phase", "expect"),
    [
        ("image-pull", "Pending", ("waiting", "ImagePullBackOff", None)),
        ("crash", "Failed", ("terminated", "Error", 1)),
        ("oom", "Failed", ("terminated", "OOMKilled", 137)),
        ("evicted", "Failed", ("terminated", "ContainerStatusUnknown", 137)),
    ],
)
def test_fault_images_and_annotations_play_the_fault(
    kube: LocalKube, kube_ns: str, fault: str, phase: str, expect: tuple[str, str, int | None]
) -> None:
    core = client.CoreV1Api(api_for(kube.kubeconfig()))
    by_annotation = pod("by-annotation")
    by_annotation["metadata"]["annotations"] = {FAULT_KEY: fault}
    core.create_namespaced_pod(kube_ns, by_annotation)
    core.create_namespaced_pod(kube_ns, pod("by-image", image=fault_image(fault)))
    for name in ("by-annotation", "by-image"):

        def settled(name: str = name) -> Any:
            found = core.read_namespaced_pod(name, kube_ns)
            return found if found.status.container_statuses else None

        found = wait_for(settled, timeout=30, what=f"kwok to play {fault} on {name}")
        assert found.status.phase == phase
        state = found.status.container_statuses[0].state
        kind, reason, code = expect
        detail = getattr(state, kind)
        assert detail is not None and detail.reason == reason
        if code is not None:
            assert detail.exit_code == code
    if fault == "evicted":
        assert found.status.reason == "Evicted"
        assert "low on resource: memory" in found.status.message


def test_unschedulable_pods_get_the_schedulers_own_event(kube: LocalKube, kube_ns: str) -> None:
    core = client.CoreV1Api(api_for(kube.kubeconfig()))
    huge = pod("huge")
    huge["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "64"}}
    core.create_namespaced_pod(kube_ns, huge)

    def failed_scheduling() -> Any:
        events = core.list_namespaced_event(kube_ns, field_selector="involvedObject.name=huge")
        return [e for e in events.items if e.reason == "FailedScheduling"]

    [event, *_] = wait_for(failed_scheduling, timeout=30, what="FailedScheduling")
    assert "Insufficient cpu" in event.message
    assert core.read_namespaced_pod("huge", kube_ns).status.phase == "Pending"


def test_a_node_labelled_not_ready_turns_not_ready_and_back(kube: LocalKube) -> None:
    core = client.CoreV1Api(api_for(kube.kubeconfig()))
    kube.add_node("kwok-flaky")

    def ready_status() -> str:
        node = core.read_node("kwok-flaky")
        return next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "")

    try:
        wait_for(lambda: ready_status() == "True", timeout=30, what="the new node to be Ready")
        core.patch_node("kwok-flaky", {"metadata": {"labels": {FAULT_KEY: "not-ready"}}})
        wait_for(lambda: ready_status() == "False", timeout=30, what="the node to be NotReady")
        core.patch_node("kwok-flaky", {"metadata": {"labels": {FAULT_KEY: None}}})
        wait_for(lambda: ready_status() == "True", timeout=30, what="the node to be Ready again")
    finally:
        core.delete_node("kwok-flaky")


def test_service_account_kubeconfigs_get_exactly_their_rbac(kube: LocalKube, kube_ns: str) -> None:
    config = kube.service_account_kubeconfig(
        kube_ns, "reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    )
    core = client.CoreV1Api(api_for(config))
    assert core.list_namespaced_pod(kube_ns).items == []
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_pod(kube_ns, pod("nope"))
    assert denied.value.status == 403
    assert f"system:serviceaccount:{kube_ns}:reader" in denied.value.body
