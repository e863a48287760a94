"""watch_clusters' engine against the fake API server's real watch streams."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apps.clusters.models import Cluster
from apps.runs.models import ProbeRun
from apps.scheduling.models import Event
from apps.scheduling.watch import ClusterWatcher
from tests.factories import BindingFactory, CaseFactory
from tests.fakekube import FakeKube
from tests.runs.helpers import kube_cluster
from tests.utils import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def deployment(name: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
        "status": {"replicas": 2, "readyReplicas": 2},
    }


def node(name: str, ready: str, kubelet: str = "v1.30.1") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "nodeInfo": {"kubeletVersion": kubelet},
        },
    }


def set_image(obj: dict[str, Any], image: str) -> None:
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = image


def bump(fake: FakeKube, resource: str, namespace: str, name: str, change: Any) -> None:
    obj = fake.get(resource, namespace, name)
    assert obj is not None
    change(obj)
    if resource != "nodes":
        obj["metadata"]["generation"] += 1
    fake.update(resource, namespace, obj)


@pytest.fixture
def watched(fake_kube: FakeKube) -> Iterator[tuple[Cluster, ClusterWatcher]]:
    fake_kube.add("deployments", "kube-system", deployment("coredns", "coredns:1.11.1"))
    fake_kube.add("nodes", "", node("node-1", "True"))
    cluster = kube_cluster(fake_kube, name="prod-1", watch_namespaces=["kube-system"])
    stop = threading.Event()
    watcher = ClusterWatcher(cluster, stop, watch_seconds=30)
    watcher.start()
    wait_for(lambda: fake_kube.watch_count() == 4, what="nodes + 3 workload watches")
    yield cluster, watcher
    stop.set()
    fake_kube.drop_watches()


def deployment_lists(fake: FakeKube) -> int:
    return sum(
        1
        for verb, path, query in fake.requests
        if verb == "GET" and path.endswith("/deployments") and "watch" not in query
    )


def events() -> list[tuple[str, str]]:
    return list(Event.objects.order_by("pk").values_list("kind", "component"))


def test_initial_state_is_not_an_event(watched: Any) -> None:
    assert Event.objects.count() == 0


def test_release_of_a_deployment_fires_the_subscribed_binding(
    watched: Any, fake_kube: FakeKube
) -> None:
    cluster, _ = watched
    binding = BindingFactory(
        interval_seconds=None,
        event_triggers=[{"kind": "component_release", "component": "coredns"}],
    )
    binding.clusters.set([cluster])
    binding.cases.set([CaseFactory(name="dns-probe")])
    bump(
        fake_kube,
        "deployments",
        "kube-system",
        "coredns",
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="coredns:1.11.3"),
    )
    event = wait_for(lambda: Event.objects.first(), what="a component_release event")
    assert (event.kind, event.component, event.source) == ("component_release", "coredns", "watch")
    assert event.detail["images"] == ["coredns:1.11.3"] and event.detail["previous_images"] == [
        "coredns:1.11.1"
    ]
    run = wait_for(lambda: ProbeRun.objects.first(), what="the event's run")
    assert (run.case.name, run.trigger, run.event_id) == ("dns-probe", "event", event.pk)


def test_status_churn_and_scaling_are_ignored_and_new_workloads_are_releases(
    watched: Any, fake_kube: FakeKube
) -> None:
    obj = fake_kube.get("deployments", "kube-system", "coredns")
    obj["status"]["readyReplicas"] = 1  # no spec change
    fake_kube.update("deployments", "kube-system", obj)
    # A scale changes the spec (and generation) but is not a release.
    bump(fake_kube, "deployments", "kube-system", "coredns", lambda d: d["spec"].update(replicas=9))
    fake_kube.add("daemonsets", "kube-system", deployment("kube-proxy", "kube-proxy:v1.30.1"))
    wait_for(
        lambda: events() == [("component_release", "kube-proxy")], what="only the new DaemonSet"
    )


def test_node_changes(watched: Any, fake_kube: FakeKube) -> None:
    bump(
        fake_kube,
        "nodes",
        "",
        "node-1",
        lambda n: n["status"]["conditions"][0].update(status="False"),
    )
    wait_for(lambda: events() == [("cluster_change", "node")])
    assert Event.objects.get().detail["change"] == "Ready True → False"
    bump(
        fake_kube,
        "nodes",
        "",
        "node-1",
        lambda n: n["status"]["nodeInfo"].update(kubeletVersion="v1.31.0"),
    )
    fake_kube.add("nodes", "", node("node-2", "True"))
    fake_kube.remove("nodes", "", "node-1")
    wait_for(lambda: len(events()) == 4, what="upgrade, add and delete")
    assert events()[1:] == [
        ("upgrade", "kubelet"),
        ("cluster_change", "node"),
        ("cluster_change", "node"),
    ]
    assert [e.detail.get("change") for e in Event.objects.order_by("pk")][2:] == [
        "node added",
        "node deleted",
    ]


def test_dropped_streams_resume_from_the_last_resource_version(
    watched: Any, fake_kube: FakeKube
) -> None:
    _, watcher = watched
    bump(fake_kube, "deployments", "kube-system", "coredns", lambda d: set_image(d, "coredns:1.0"))
    wait_for(lambda: len(events()) == 1)
    lists_before = deployment_lists(fake_kube)
    fake_kube.drop_watches()
    wait_for(
        lambda: fake_kube.watch_count() == 4 and watcher.reconnects >= 4,
        what="the watches to come back",
    )
    bump(fake_kube, "deployments", "kube-system", "coredns", lambda d: set_image(d, "coredns:2.0"))
    wait_for(lambda: len(events()) == 2, what="the change after the reconnect")
    # No replay of the first change, and no new list: it resumed, it did not start over.
    assert events() == [("component_release", "coredns")] * 2
    lists_after = deployment_lists(fake_kube)
    assert lists_after == lists_before


def test_expired_resource_version_lists_again_and_misses_nothing(
    watched: Any, fake_kube: FakeKube
) -> None:
    before = deployment_lists(fake_kube)
    fake_kube.expire_history()
    fake_kube.drop_watches()
    # Changed while no watch was open: found by comparing the new listing.
    bump(fake_kube, "deployments", "kube-system", "coredns", lambda d: set_image(d, "coredns:3.0"))
    wait_for(lambda: deployment_lists(fake_kube) == before + 1, what="a new list after 410 Gone")
    wait_for(lambda: events() == [("component_release", "coredns")])
    bump(fake_kube, "deployments", "kube-system", "coredns", lambda d: set_image(d, "coredns:4.0"))
    wait_for(lambda: len(events()) == 2, what="the watch to be back")


def test_unreachable_cluster_backs_off_without_dying(fake_kube: FakeKube) -> None:
    cluster = kube_cluster(fake_kube, watch_namespaces=[])
    fake_kube.fail_next("GET", "nodes", 503)
    stop = threading.Event()
    watcher = ClusterWatcher(cluster, stop, watch_seconds=30)
    watcher.start()
    # The first list fails with 503; after a backoff the watch is established.
    wait_for(lambda: fake_kube.watch_count() == 1, timeout=10)
    stop.set()
    fake_kube.drop_watches()


def test_a_change_that_fails_to_record_is_recorded_on_replay(fake_kube: FakeKube) -> None:
    fake_kube.add("deployments", "kube-system", deployment("coredns", "coredns:1.11.1"))
    cluster = kube_cluster(fake_kube, watch_namespaces=["kube-system"])
    recorded: list[tuple[str, str]] = []
    failures = [1]

    def flaky_record(cluster: Cluster, kind: str, component: str, detail: dict[str, Any]) -> None:
        if failures:
            failures.pop()
            raise RuntimeError("database is down")
        recorded.append((kind, component))

    stop = threading.Event()
    ClusterWatcher(cluster, stop, record=flaky_record, watch_seconds=30).start()
    wait_for(lambda: fake_kube.watch_count() == 4)
    bump(fake_kube, "deployments", "kube-system", "coredns", lambda d: set_image(d, "coredns:2"))
    wait_for(
        lambda: recorded == [("component_release", "coredns")],
        timeout=20,
        what="the replayed change",
    )
    stop.set()
    fake_kube.drop_watches()


@pytest.mark.django_db
def test_watch_namespaces_are_set_through_the_api(admin_api) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_kubeconfig

    body = {
        "name": "w1",
        "kubeconfig": make_kubeconfig(),
        "watch_namespaces": ["kube-system", "ingress"],
    }
    assert admin_api.post("/api/v1/clusters/", body, format="json").status_code == 201
    assert Cluster.objects.get(name="w1").watch_namespaces == ["kube-system", "ingress"]
    bad = admin_api.patch(
        "/api/v1/clusters/w1/", {"watch_namespaces": "kube-system"}, format="json"
    )
    assert bad.status_code == 400 and "watch_namespaces" in bad.json()
