"""The fake cluster (tests/fakekube/), driven only through the official kubernetes client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.fakekube import FakeKube
from tests.utils import wait_for

NS = "default"


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    server = FakeKube(nodes=3, kubelet_delay=0.02)
    yield server
    server.stop()


@pytest.fixture
def api(fake: FakeKube) -> client.ApiClient:
    return config.new_client_from_config_dict(yaml.safe_load(fake.kubeconfig()))


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


def deployment(
    name: str, image: str = "nginx:1.27", replicas: int = 3, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ]
                },
            },
            **spec,
        },
    }


def statefulset(name: str, image: str = "redis:7", replicas: int = 3) -> dict[str, Any]:
    body = deployment(name, image, replicas, serviceName=name)
    body["spec"]["volumeClaimTemplates"] = [
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    ]
    return body


def pod(name: str, image: str = "busybox:1.36", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": image}], **spec},
    }


def condition(obj: Any, type_: str) -> Any:
    conditions = (obj.status.conditions if obj.status else None) or []
    return next((c for c in conditions if c.type == type_), None)


def available(apps: client.AppsV1Api, name: str) -> bool:
    d = apps.read_namespaced_deployment(name, NS)
    if d.status is None:
        return False
    c = condition(d, "Available")
    p = condition(d, "Progressing")
    return bool(
        d.status.observed_generation == d.metadata.generation
        and c is not None
        and c.status == "True"
        and p is not None
        and p.reason == "NewReplicaSetAvailable"
        and (d.status.updated_replicas or 0) == d.spec.replicas
        and (d.status.available_replicas or 0) == d.spec.replicas
        and (d.status.replicas or 0) == d.spec.replicas
    )


def ready(core: client.CoreV1Api, name: str) -> str:
    c = condition(core.read_namespaced_pod(name, NS), "Ready")
    return c.status if c else "None"


def pods_of(core: client.CoreV1Api, selector: str) -> list[Any]:
    return list(core.list_namespaced_pod(NS, label_selector=selector).items)


def events_of(core: client.CoreV1Api, name: str) -> list[Any]:
    return list(core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items)


# ------------------------------------------------------------------ nodes and pods


def test_nodes_are_ready_with_labels_and_allocatable(core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == ["node-1", "node-2", "node-3"]
    for node in nodes:
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
        assert condition(node, "Ready").status == "True"
        assert node.status.allocatable["cpu"] == "4"
        assert node.status.node_info.kubelet_version.startswith("v1.")


def test_a_pod_runs_with_ip_conditions_and_events(fake: FakeKube, core: client.CoreV1Api) -> None:
    created = core.create_namespaced_pod(NS, pod("one"))
    assert created.status.phase == "Pending" and created.metadata.resource_version
    running = wait_for(
        lambda: (
            (p := core.read_namespaced_pod("one", NS)).status.phase == "Running"
            and condition(p, "Ready").status == "True"
            and p
        ),
        what="the pod to run",
    )
    assert running.status.pod_ip and running.status.host_ip
    assert running.spec.node_name in {"node-1", "node-2", "node-3"}
    status = running.status.container_statuses[0]
    assert status.ready and status.state.running.started_at and status.image == "busybox:1.36"
    reasons = [e.reason for e in events_of(core, "one")]
    assert reasons[0] == "Scheduled" and "Started" in reasons


def test_pods_spread_round_robin_and_honour_node_name_and_selector(
    fake: FakeKube, core: client.CoreV1Api
) -> None:
    for i in range(3):
        core.create_namespaced_pod(NS, pod(f"spread-{i}"))
    core.create_namespaced_pod(NS, pod("pinned", nodeName="node-3"))
    core.create_namespaced_pod(NS, pod("picky", nodeSelector={"kubernetes.io/hostname": "node-2"}))
    fake.settle()
    nodes = {p.metadata.name: p.spec.node_name for p in core.list_namespaced_pod(NS).items}
    assert sorted(nodes[f"spread-{i}"] for i in range(3)) == ["node-1", "node-2", "node-3"]
    assert nodes["pinned"] == "node-3" and nodes["picky"] == "node-2"
    assert "Scheduled" not in [e.reason for e in events_of(core, "pinned")]
    assert core.read_namespaced_pod("pinned", NS).status.phase == "Running"


def test_no_fitting_node_leaves_the_pod_unschedulable(
    fake: FakeKube, core: client.CoreV1Api
) -> None:
    fake.cordon("node-1")
    fake.node_not_ready("node-2")
    core.create_namespaced_pod(NS, pod("lost", nodeSelector={"disk": "ssd"}))
    fake.settle()
    lost = core.read_namespaced_pod("lost", NS)
    scheduled = condition(lost, "PodScheduled")
    assert lost.status.phase == "Pending" and lost.spec.node_name is None
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert "0/3 nodes are available" in scheduled.message
    assert "1 node(s) were unschedulable" in scheduled.message
    assert "node.kubernetes.io/unreachable" in scheduled.message
    assert "didn't match Pod's node affinity/selector" in scheduled.message
    [event] = events_of(core, "lost")
    assert (event.reason, event.type) == ("FailedScheduling", "Warning")
    # A node that fits turns up: the scheduler places the pod.
    fake.add_node("node-4", labels={"disk": "ssd"})
    wait_for(lambda: core.read_namespaced_pod("lost", NS).status.phase == "Running")
    assert core.read_namespaced_pod("lost", NS).spec.node_name == "node-4"


def test_cordoned_and_not_ready_nodes_get_no_new_pods(
    fake: FakeKube, core: client.CoreV1Api
) -> None:
    fake.cordon("node-1")
    fake.node_not_ready("node-2")
    assert core.read_node("node-1").spec.unschedulable is True
    assert condition(core.read_node("node-2"), "Ready").status == "Unknown"
    for i in range(4):
        core.create_namespaced_pod(NS, pod(f"p{i}"))
    fake.settle()
    assert {p.spec.node_name for p in core.list_namespaced_pod(NS).items} == {"node-3"}
    fake.uncordon("node-1")
    fake.node_ready("node-2")
    assert not core.read_node("node-1").spec.unschedulable


def test_a_pod_pinned_to_a_broken_node_stays_container_creating(
    fake: FakeKube, core: client.CoreV1Api
) -> None:
    fake.break_node("node-2", "rpc error: code = Unknown desc = failed to setup network")
    core.create_namespaced_pod(NS, pod("stuck", nodeName="node-2"))
    core.create_namespaced_pod(NS, pod("fine", nodeName="node-1"))
    wait_for(lambda: core.read_namespaced_pod("fine", NS).status.phase == "Running")
    event = wait_for(
        lambda: next(
            (e for e in events_of(core, "stuck") if e.reason == "FailedCreatePodSandBox"), None
        )
    )
    assert event.type == "Warning"
    assert event.message.startswith("Failed to create pod sandbox: rpc error:")
    stuck = core.read_namespaced_pod("stuck", NS)
    assert stuck.status.phase == "Pending"
    assert stuck.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    fake.fix_node("node-2")
    wait_for(lambda: core.read_namespaced_pod("stuck", NS).status.phase == "Running")


def test_a_pod_on_a_node_that_goes_not_ready_loses_readiness(
    fake: FakeKube, core: client.CoreV1Api
) -> None:
    core.create_namespaced_pod(NS, pod("victim", nodeName="node-1"))
    wait_for(lambda: ready(core, "victim") == "True")
    fake.node_not_ready("node-1")
    wait_for(lambda: ready(core, "victim") == "False")
    fake.node_ready("node-1")
    wait_for(lambda: ready(core, "victim") == "True")


@pytest.mark.parametrize(
    ("image", "restart", "check"),
    [
        ("fake/imagepullbackoff", "Always", "waiting:ImagePullBackOff"),
        ("fake/createerror", "Always", "waiting:CreateContainerConfigError"),
        ("fake/oomkilled", "Never", "Failed:OOMKilled"),
        ("fake/exit1", "Never", "Failed:Error"),
        ("fake/exit0", "Never", "Succeeded:Completed"),
        ("fake/evicted", "Always", "Failed:Evicted"),
        ("fake/oomkilled", "Always", "waiting:CrashLoopBackOff"),
        ("fake/notready", "Always", "Running:notready"),
    ],
)
def test_images_fail_the_way_real_pods_fail(
    fake: FakeKube, core: client.CoreV1Api, image: str, restart: str, check: str
) -> None:
    core.create_namespaced_pod(NS, pod("p", image, restartPolicy=restart))
    fake.settle()
    p = core.read_namespaced_pod("p", NS)
    status = p.status.container_statuses[0]
    kind, reason = check.split(":")
    if kind == "waiting":
        assert status.state.waiting.reason == reason
        if reason == "CrashLoopBackOff":
            assert status.restart_count == 1
            assert status.last_state.terminated.reason == "OOMKilled"
            assert status.last_state.terminated.exit_code == 137
    elif kind == "Running":
        assert p.status.phase == "Running" and not status.ready
        assert condition(p, "Ready").status == "False"
    else:
        assert p.status.phase == kind
        assert (p.status.reason or status.state.terminated.reason) == reason


# ------------------------------------------------------------------ Deployments


def test_deployment_becomes_available_through_replicasets(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    wait_for(lambda: available(apps, "web"), what="web to become available")
    d = apps.read_namespaced_deployment("web", NS)
    assert d.status.ready_replicas == 3 and d.status.unavailable_replicas is None
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    [rs] = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    assert rs.metadata.owner_references[0].uid == d.metadata.uid
    assert rs.metadata.owner_references[0].controller is True
    template_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{template_hash}"
    assert rs.status.ready_replicas == 3 and rs.status.available_replicas == 3
    pods = pods_of(core, "app=web")
    assert len(pods) == 3
    assert {p.metadata.labels["pod-template-hash"] for p in pods} == {template_hash}
    assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in pods)
    assert {p.spec.containers[0].image for p in pods} == {"nginx:1.27"}


def test_rollout_and_scale(fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web", replicas=4))
    wait_for(lambda: available(apps, "web"))
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28"}]}}}},
    )
    d = apps.read_namespaced_deployment("web", NS)
    assert d.metadata.generation == 2
    wait_for(lambda: available(apps, "web"), what="the rollout to finish")
    d = apps.read_namespaced_deployment("web", NS)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    replica_sets = {
        rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs
        for rs in apps.list_namespaced_replica_set(NS).items
    }
    assert replica_sets["1"].spec.replicas == 0 and replica_sets["2"].spec.replicas == 4
    assert {p.spec.containers[0].image for p in pods_of(core, "app=web")} == {"nginx:1.28"}
    scaling = [e.message for e in events_of(core, "web") if e.reason == "ScalingReplicaSet"]
    assert any("Scaled up replica set" in m for m in scaling)
    assert any("Scaled down replica set" in m for m in scaling)
    # Scale through the scale subresource, as kubectl scale does.
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
    wait_for(lambda: available(apps, "web") and len(pods_of(core, "app=web")) == 2)
    assert apps.read_namespaced_deployment_scale("web", NS).status.replicas == 2
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 5}})
    wait_for(lambda: available(apps, "web") and len(pods_of(core, "app=web")) == 5)


def test_a_broken_image_stalls_the_rollout_until_the_deadline(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    fake.progress_deadline_factor = 0.002  # 600 s → 1.2 s
    apps.create_namespaced_deployment(NS, deployment("web", replicas=4))
    wait_for(lambda: available(apps, "web"))
    apps.patch_namespaced_deployment(
        "web",
        NS,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "main", "image": "fake/imagepullbackoff"}]}
                }
            }
        },
    )

    def stalled() -> Any:
        d = apps.read_namespaced_deployment("web", NS)
        p = condition(d, "Progressing")
        return p is not None and p.reason == "ProgressDeadlineExceeded" and d

    d = wait_for(stalled, what="ProgressDeadlineExceeded")
    assert condition(d, "Progressing").status == "False"
    assert "has timed out progressing" in condition(d, "Progressing").message
    # maxUnavailable 25% of 4: three old pods keep serving, so still Available.
    assert condition(d, "Available").status == "True"
    assert d.status.available_replicas == 3
    assert d.status.updated_replicas == 2  # maxSurge 1 + the one old pod it could take down
    assert d.status.unavailable_replicas == 2
    bad = [p for p in pods_of(core, "app=web") if p.spec.containers[0].image.startswith("fake/")]
    assert bad and all(
        p.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff" for p in bad
    )


def test_a_deployment_that_never_gets_ready_is_unavailable(
    fake: FakeKube, apps: client.AppsV1Api
) -> None:
    fake.progress_deadline_factor = 0.002
    apps.create_namespaced_deployment(NS, deployment("web", image="fake/notready", replicas=2))

    def failed() -> Any:
        d = apps.read_namespaced_deployment("web", NS)
        p = condition(d, "Progressing")
        return p is not None and p.reason == "ProgressDeadlineExceeded" and d

    d = wait_for(failed)
    available_condition = condition(d, "Available")
    assert (available_condition.status, available_condition.reason) == (
        "False",
        "MinimumReplicasUnavailable",
    )
    assert d.status.replicas == 2 and d.status.ready_replicas is None
    assert d.status.unavailable_replicas == 2


def test_recreate_strategy_and_rollback(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    apps.create_namespaced_deployment(
        NS, deployment("web", replicas=2, strategy={"type": "Recreate"})
    )
    wait_for(lambda: available(apps, "web"))
    first_hash = pods_of(core, "app=web")[0].metadata.labels["pod-template-hash"]
    for image in ("nginx:2", "nginx:1.27"):
        apps.patch_namespaced_deployment(
            "web",
            NS,
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
        )
        wait_for(lambda: available(apps, "web"))
    # Back to the first template: its ReplicaSet is reused as revision 3.
    d = apps.read_namespaced_deployment("web", NS)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert {p.metadata.labels["pod-template-hash"] for p in pods_of(core, "app=web")} == {
        first_hash
    }
    assert len(apps.list_namespaced_replica_set(NS).items) == 2


# ------------------------------------------------------------------ StatefulSets


def test_statefulset_creates_in_order_and_updates_in_reverse(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    fake.kubelet_delay = 0.05
    created: list[str] = []
    deleted: list[str] = []
    out_of_order: list[tuple[str, int]] = []
    done = threading.Event()

    def record() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_pod, NS, label_selector="app=db", timeout_seconds=20
        ):
            name = event["object"].metadata.name
            if event["type"] == "ADDED":
                created.append(name)
                # OrderedReady: when a pod appears, every lower ordinal is Ready.
                ordinal = int(name.rsplit("-", 1)[1])
                for lower in range(ordinal):
                    if ready(core, f"db-{lower}") != "True":
                        out_of_order.append((name, lower))
            elif event["type"] == "DELETED":
                deleted.append(name)
            if done.is_set():
                w.stop()

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    wait_for(lambda: fake.watch_count() == 1)
    apps.create_namespaced_stateful_set(NS, statefulset("db"))

    def rolled_out(revision_changed: bool = False) -> Any:
        s = apps.read_namespaced_stateful_set("db", NS)
        st = s.status
        return (
            st is not None
            and st.observed_generation == s.metadata.generation
            and st.ready_replicas == s.spec.replicas
            and st.updated_replicas == s.spec.replicas
            and st.current_revision == st.update_revision
            and s
        )

    first = wait_for(rolled_out, what="db to be ready")
    assert created == ["db-0", "db-1", "db-2"]
    assert first.status.replicas == 3 and first.status.available_replicas == 3
    assert first.status.current_replicas == 3
    pod0 = core.read_namespaced_pod("db-0", NS)
    assert pod0.spec.hostname == "db-0" and pod0.spec.subdomain == "db"
    assert pod0.metadata.labels["controller-revision-hash"] == first.status.update_revision
    claims = {c.metadata.name: c for c in core.list_namespaced_persistent_volume_claim(NS).items}
    assert set(claims) == {"data-db-0", "data-db-1", "data-db-2"}
    assert claims["data-db-0"].status.phase == "Bound"
    # A template change: pods are replaced from the highest ordinal down.
    created.clear()
    apps.patch_namespaced_stateful_set(
        "db",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "redis:8"}]}}}},
    )
    mid = wait_for(
        lambda: (
            (s := apps.read_namespaced_stateful_set("db", NS)).status.update_revision
            != first.status.update_revision
            and s
        )
    )
    assert mid.status.current_revision == first.status.update_revision
    second = wait_for(
        lambda: (
            rolled_out()
            and rolled_out().status.update_revision != first.status.update_revision
            and rolled_out()
        )
    )
    assert deleted == ["db-2", "db-1", "db-0"]
    assert created == ["db-2", "db-1", "db-0"]
    assert {p.spec.containers[0].image for p in pods_of(core, "app=db")} == {"redis:8"}
    assert second.status.current_replicas == 3
    # Scale down: from the highest ordinal, claims are kept.
    deleted.clear()
    apps.patch_namespaced_stateful_set_scale("db", NS, {"spec": {"replicas": 1}})
    wait_for(lambda: [p.metadata.name for p in pods_of(core, "app=db")] == ["db-0"])
    wait_for(lambda: rolled_out())
    assert deleted == ["db-2", "db-1"]
    assert len(core.list_namespaced_persistent_volume_claim(NS).items) == 3
    assert out_of_order == []
    done.set()


def test_statefulset_waits_for_each_pod_to_be_ready(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    apps.create_namespaced_stateful_set(NS, statefulset("db", image="fake/notready"))
    fake.settle()
    assert [p.metadata.name for p in pods_of(core, "app=db")] == ["db-0"]
    s = apps.read_namespaced_stateful_set("db", NS)
    assert s.status.replicas == 1 and s.status.ready_replicas is None
    fake.set_ready(NS, "db-0", True)
    wait_for(lambda: len(pods_of(core, "app=db")) == 2)


# ------------------------------------------------------------------ Services


def test_endpoints_follow_pod_readiness(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api, api: client.ApiClient
) -> None:
    service = core.create_namespaced_service(
        NS,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    assert service.spec.cluster_ip.startswith("10.96.")
    assert service.spec.ports[0].protocol == "TCP"
    apps.create_namespaced_deployment(NS, deployment("web", replicas=2))
    wait_for(lambda: available(apps, "web"))

    def addresses() -> tuple[list[str], list[str]]:
        ep = core.read_namespaced_endpoints("web", NS)
        ready = [a.ip for s in ep.subsets or [] for a in s.addresses or []]
        not_ready = [a.ip for s in ep.subsets or [] for a in s.not_ready_addresses or []]
        return sorted(ready), sorted(not_ready)

    ips = sorted(p.status.pod_ip for p in pods_of(core, "app=web"))
    wait_for(lambda: addresses() == (ips, []))
    ep = core.read_namespaced_endpoints("web", NS)
    assert ep.subsets[0].ports[0].port == 8080  # the named targetPort, resolved
    first = min(pods_of(core, "app=web"), key=lambda p: p.status.pod_ip)
    assert ep.subsets[0].addresses[0].target_ref.name == first.metadata.name
    fake.set_ready(NS, first.metadata.name, False)
    wait_for(lambda: addresses() == (ips[1:], ips[:1]), what="a not-ready address")
    discovery = client.DiscoveryV1Api(api)
    [eps] = discovery.list_namespaced_endpoint_slice(
        NS, label_selector="kubernetes.io/service-name=web"
    ).items
    ready = {e.addresses[0]: e.conditions.ready for e in eps.endpoints}
    assert ready == {ips[0]: False, ips[1]: True}
    fake.set_ready(NS, first.metadata.name, None)
    wait_for(lambda: addresses() == (ips, []))
    # Scaled to zero: no subsets at all, as on a real cluster.
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 0}})
    wait_for(lambda: core.read_namespaced_endpoints("web", NS).subsets is None)
    core.delete_namespaced_service("web", NS)
    fake.settle()
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_endpoints("web", NS)
    assert exc.value.status == 404
    assert discovery.list_namespaced_endpoint_slice(NS).items == []


def test_headless_and_node_port_services(core: client.CoreV1Api) -> None:
    headless = core.create_namespaced_service(
        NS, {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    )
    assert headless.spec.cluster_ip == "None"
    node_port = core.create_namespaced_service(
        NS, {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    )
    assert 30000 <= node_port.spec.ports[0].node_port <= 32767


# ------------------------------------------------------------------ custom resources


def test_custom_resources_round_trip(fake: FakeKube, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    extensions = client.ApiextensionsV1Api(api)
    with pytest.raises(ApiException) as exc:
        custom.list_namespaced_custom_object(
            "types.kubefed.io", "v1beta1", NS, "federatedconfigmaps"
        )
    assert exc.value.status == 404
    fake.register_kind("types.kubefed.io/v1beta1", "federatedconfigmaps", "FederatedConfigMap")
    fake.register_kind("security.example.com/v1", "deployments", "KubeDefender", namespaced=False)
    crd = extensions.read_custom_resource_definition("federatedconfigmaps.types.kubefed.io")
    assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions)
    body = {
        "apiVersion": "types.kubefed.io/v1beta1",
        "kind": "FederatedConfigMap",
        "metadata": {"name": "cm", "labels": {"probe": "yes"}},
        "spec": {"template": {"data": {"a": "1"}}, "placement": {"clusters": [{"name": "c1"}]}},
    }
    created = custom.create_namespaced_custom_object(
        "types.kubefed.io", "v1beta1", NS, "federatedconfigmaps", body
    )
    assert created["metadata"]["resourceVersion"] and created["metadata"]["uid"]
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(
            "types.kubefed.io", "v1beta1", NS, "federatedconfigmaps", body
        )
    assert exc.value.status == 409
    got = custom.get_namespaced_custom_object(
        "types.kubefed.io", "v1beta1", NS, "federatedconfigmaps", "cm"
    )
    assert got["spec"]["template"]["data"] == {"a": "1"}
    patched = custom.patch_namespaced_custom_object(
        "types.kubefed.io",
        "v1beta1",
        NS,
        "federatedconfigmaps",
        "cm",
        {"spec": {"template": {"data": {"b": "2"}}}},
    )
    assert patched["spec"]["template"]["data"] == {"a": "1", "b": "2"}
    assert patched["metadata"]["generation"] == 2
    listed = custom.list_namespaced_custom_object(
        "types.kubefed.io", "v1beta1", NS, "federatedconfigmaps", label_selector="probe=yes"
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == ["cm"]
    # A cluster-scoped custom kind whose plural is also a built-in one: no collision.
    custom.create_cluster_custom_object(
        "security.example.com",
        "v1",
        "deployments",
        {
            "apiVersion": "security.example.com/v1",
            "kind": "KubeDefender",
            "metadata": {"name": "cm"},
        },
    )
    assert client.AppsV1Api(api).list_deployment_for_all_namespaces().items == []
    assert fake.get("deployments.security.example.com", "", "cm") is not None
    # Generic paths through ApiClient.call_api work too.
    data, status = call(
        api, "GET", f"/apis/types.kubefed.io/v1beta1/namespaces/{NS}/federatedconfigmaps/cm"
    )
    assert status == 200 and data["kind"] == "FederatedConfigMap"
    deleted = custom.delete_namespaced_custom_object(
        "types.kubefed.io", "v1beta1", NS, "federatedconfigmaps", "cm"
    )
    assert deleted["metadata"]["name"] == "cm"
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(
            "types.kubefed.io", "v1beta1", NS, "federatedconfigmaps", "cm"
        )
    assert exc.value.status == 404
    assert exc.value.body and '"reason": "NotFound"' in exc.value.body.replace('":"', '": "')


def call(api: client.ApiClient, method: str, path: str, body: Any = None) -> tuple[Any, int]:
    """A generic request with the client's own auth and transport (ApiClient.call_api)."""
    serialized = api.param_serialize(
        method,
        path,
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*serialized)
    response.read()
    return json.loads(response.data), response.status


# ------------------------------------------------------------------ deletion


def test_deleting_a_deployment_cascades(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    apps.create_namespaced_deployment(NS, deployment("web", replicas=2))
    wait_for(lambda: available(apps, "web"))
    apps.delete_namespaced_deployment("web", NS)  # Background
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("web", NS)
    wait_for(
        lambda: not apps.list_namespaced_replica_set(NS).items and not pods_of(core, "app=web")
    )
    # Foreground: the owner stays (deletionTimestamp, finalizer) until its dependents are gone.
    fake.pod_delete_delay = 0.5
    apps.create_namespaced_deployment(NS, deployment("fg", replicas=2))
    wait_for(lambda: available(apps, "fg"))
    apps.delete_namespaced_deployment(
        "fg", NS, body=client.V1DeleteOptions(propagation_policy="Foreground")
    )
    d = apps.read_namespaced_deployment("fg", NS)
    assert d.metadata.deletion_timestamp and "foregroundDeletion" in d.metadata.finalizers
    terminating = wait_for(
        lambda: [p for p in pods_of(core, "app=fg") if p.metadata.deletion_timestamp]
    )
    assert terminating
    wait_for(lambda: not apps.list_namespaced_deployment(NS).items, what="fg to go")
    assert not pods_of(core, "app=fg")
    # Orphan: the ReplicaSet and pods stay, without an owner.
    fake.pod_delete_delay = 0
    apps.create_namespaced_deployment(NS, deployment("orphan", replicas=1))
    wait_for(lambda: available(apps, "orphan"))
    apps.delete_namespaced_deployment("orphan", NS, propagation_policy="Orphan")
    wait_for(lambda: not apps.list_namespaced_deployment(NS).items)
    fake.settle()
    [rs] = apps.list_namespaced_replica_set(NS).items
    assert not rs.metadata.owner_references
    assert len(pods_of(core, "app=orphan")) == 1


def test_graceful_pod_deletion_and_finalizers(fake: FakeKube, core: client.CoreV1Api) -> None:
    fake.pod_delete_delay = 0.3
    core.create_namespaced_pod(NS, pod("slow"))
    wait_for(lambda: core.read_namespaced_pod("slow", NS).status.phase == "Running")
    answer = core.delete_namespaced_pod("slow", NS)
    assert answer.metadata.deletion_timestamp is not None
    assert core.read_namespaced_pod("slow", NS).metadata.deletion_timestamp
    wait_for(lambda: not core.list_namespaced_pod(NS).items, what="the pod to go")
    # grace_period_seconds=0: at once.
    core.create_namespaced_pod(NS, pod("quick"))
    wait_for(lambda: core.read_namespaced_pod("quick", NS).spec.node_name)
    core.delete_namespaced_pod("quick", NS, grace_period_seconds=0)
    assert not core.list_namespaced_pod(NS).items
    # A finalizer holds an object until it is removed.
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {}}
    )
    core.delete_namespaced_config_map("held", NS)
    held = core.read_namespaced_config_map("held", NS)
    assert held.metadata.deletion_timestamp
    core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("held", NS)
    assert exc.value.status == 404


def test_deleting_a_namespace_empties_it_first(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    fake.pod_delete_delay = 0.5  # terminating pods hold the namespace a while
    core.create_namespace({"metadata": {"name": "probe-tmp"}})
    apps.create_namespaced_deployment("probe-tmp", deployment("web", replicas=1))
    wait_for(lambda: core.list_namespaced_pod("probe-tmp").items)
    core.delete_namespace("probe-tmp")
    assert core.read_namespace("probe-tmp").status.phase == "Terminating"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("probe-tmp", {"metadata": {"name": "late"}})
    assert exc.value.status == 403
    wait_for(lambda: "probe-tmp" not in [n.metadata.name for n in core.list_namespace().items])


# ------------------------------------------------------------------ API semantics


def test_conflicts_generate_name_and_validation(
    fake: FakeKube, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    core.replace_namespaced_config_map("c", NS, {**cm.to_dict(), "data": {"a": "2"}})
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", NS, {"metadata": cm.metadata.to_dict(), "data": {}})
    assert exc.value.status == 409 and "the object has been modified" in exc.value.body
    generated = core.create_namespaced_pod(
        NS, {"metadata": {"generateName": "probe-"}, "spec": pod("x")["spec"]}
    )
    assert generated.metadata.name.startswith("probe-") and len(generated.metadata.name) == 11
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(NS, {"metadata": {"name": "Bad_Name"}, "spec": pod("x")["spec"]})
    assert exc.value.status == 422
    bad = deployment("mismatch")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment(NS, bad)
    assert exc.value.status == 422 and "does not match template" in exc.value.body
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("nope", pod("x"))
    assert exc.value.status == 404
    # JSON patch (a list body) works as well as strategic merge.
    core.patch_namespaced_config_map("c", NS, [{"op": "add", "path": "/data/b", "value": "3"}])
    assert core.read_namespaced_config_map("c", NS).data == {"a": "2", "b": "3"}


def test_watch_without_resource_version_starts_with_what_exists(
    fake: FakeKube, core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "before"}})
    w = watch.Watch()
    seen = []
    for event in w.stream(core.list_namespaced_config_map, NS, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 1:
            core.create_namespaced_config_map(NS, {"metadata": {"name": "after"}})
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "before"), ("ADDED", "after")]


# ------------------------------------------------------------------ faults


@pytest.mark.parametrize(
    ("code", "reason", "fragment"),
    [
        (403, "Forbidden", "cannot create resource"),
        (422, "Invalid", "is invalid"),
        (500, "InternalError", "Internal error occurred"),
        (503, "ServiceUnavailable", "unable to handle"),
    ],
)
def test_fail_next_answers_a_real_status(
    fake: FakeKube, apps: client.AppsV1Api, code: int, reason: str, fragment: str
) -> None:
    fake.fail_next("create", "deployments", code)
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment(NS, deployment("web"))
    assert exc.value.status == code
    body = yaml.safe_load(exc.value.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == reason and body["code"] == code and fragment in body["message"]
    apps.create_namespaced_deployment(NS, deployment("web"))  # only the next one


def test_denied_pod_creation_shows_as_replica_failure(
    fake: FakeKube, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    fake.deny_create("pods", 'pods "web" is forbidden: exceeded quota: pods')
    apps.create_namespaced_deployment(NS, deployment("web", replicas=2))

    def failure() -> Any:
        d = apps.read_namespaced_deployment("web", NS)
        return condition(d, "ReplicaFailure")

    c = wait_for(failure, what="ReplicaFailure")
    assert (c.status, c.reason) == ("True", "FailedCreate") and "exceeded quota" in c.message
    assert not pods_of(core, "app=web")
    assert condition(apps.read_namespaced_deployment("web", NS), "Available").status == "False"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(NS, pod("direct"))
    assert exc.value.status == 403
    fake.allow_create("pods")
    wait_for(lambda: available(apps, "web"))
    assert condition(apps.read_namespaced_deployment("web", NS), "ReplicaFailure") is None


def test_scheduler_down_leaves_pods_pending(fake: FakeKube, core: client.CoreV1Api) -> None:
    fake.scheduler_down()
    core.create_namespaced_pod(NS, pod("waiting"))
    fake.settle()
    p = core.read_namespaced_pod("waiting", NS)
    assert p.status.phase == "Pending" and p.spec.node_name is None
    assert condition(p, "PodScheduled") is None
    fake.scheduler_up()
    wait_for(lambda: core.read_namespaced_pod("waiting", NS).status.phase == "Running")


def test_slow_scheduler_and_kubelet(fake: FakeKube, core: client.CoreV1Api) -> None:
    fake.scheduler_delay = 0.3
    fake.kubelet_delay = 0.3
    core.create_namespaced_pod(NS, pod("slow"))
    assert core.read_namespaced_pod("slow", NS).spec.node_name is None
    wait_for(lambda: core.read_namespaced_pod("slow", NS).spec.node_name)
    assert core.read_namespaced_pod("slow", NS).status.phase == "Pending"
    wait_for(lambda: core.read_namespaced_pod("slow", NS).status.phase == "Running")


def test_paused_controllers_never_make_a_deployment_available(
    fake: FakeKube, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    fake.controllers_paused = True
    apps.create_namespaced_deployment(NS, deployment("web"))
    fake.settle()
    d = apps.read_namespaced_deployment("web", NS)
    assert d.status is None or not d.status.conditions
    assert not apps.list_namespaced_replica_set(NS).items and not pods_of(core, "app=web")
    fake.controllers_paused = False
    wait_for(lambda: available(apps, "web"))


def test_watches_on_custom_resources_and_deployments(
    fake: FakeKube, api: client.ApiClient, apps: client.AppsV1Api
) -> None:
    rid = fake.register_kind("example.com/v1", "kubedefenders", "KubeDefender")
    assert rid == "kubedefenders.example.com"
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": "example.com/v1", "kind": "KubeDefender", "metadata": {"name": "kd"}}
    custom.create_namespaced_custom_object("example.com", "v1", NS, "kubedefenders", body)
    w = watch.Watch()
    seen = []
    for event in w.stream(
        custom.list_namespaced_custom_object,
        "example.com",
        "v1",
        NS,
        "kubedefenders",
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 1:
            custom.delete_namespaced_custom_object("example.com", "v1", NS, "kubedefenders", "kd")
        else:
            w.stop()
    assert seen == [("ADDED", "kd"), ("DELETED", "kd")]
    # A typed watch on Deployments sees the controller's status updates.
    rv = apps.list_namespaced_deployment(NS).metadata.resource_version
    apps.create_namespaced_deployment(NS, deployment("web", replicas=1))
    w = watch.Watch()
    for event in w.stream(
        apps.list_namespaced_deployment, NS, resource_version=rv, timeout_seconds=10
    ):
        d = event["object"]
        if d.status and (d.status.available_replicas or 0) == 1:
            w.stop()
    assert d.status.available_replicas == 1
