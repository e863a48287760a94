"""watch_clusters' engine against the real control plane (tests/kube.py).

The real controllers rewrite the status of everything watched while they roll
it out, kwok plays the nodes' kubelets, and streams drop the ways they drop in
a cluster: the API server ends them, the network cuts them (`Cable`), the API
server restarts, and etcd compacts away the history a watch would resume from
(410 Gone).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kube_local import free_port

from apps.clusters.k8s import clear_client_cache
from apps.clusters.models import Cluster, Executor
from apps.runs.models import ProbeRun
from apps.scheduling.models import Event
from apps.scheduling.watch import ClusterWatcher, ResourceWatch, _record_event
from tests.factories import BindingFactory, CaseFactory, ClusterFactory
from tests.kube import FAULT_KEY, LocalKube
from tests.utils import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PLURAL = {"Deployment": "deployments", "DaemonSet": "daemonsets", "StatefulSet": "statefulsets"}
MERGE_PATCH = "application/merge-patch+json"


# ------------------------------------------------------------------ the cluster


def workload(kind: str, name: str, image: str, replicas: int = 2) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": name, "image": image}]},
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    }


# What each test namespace starts with (kind, name, image).
WORKLOADS = [
    ("Deployment", "coredns", "coredns:1.11.1"),
    ("DaemonSet", "kube-proxy", "kube-proxy:v1.37.2"),
    ("StatefulSet", "etcd", "etcd:3.6.0"),
]


def path_of(namespace: str, kind: str, name: str = "") -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{PLURAL[kind]}" + (f"/{name}" if name else "")


def set_image(kube: LocalKube, namespace: str, kind: str, name: str, image: str) -> None:
    """A release: a new image in the pod template (a strategic merge keyed by container name)."""
    kube.api(
        "PATCH",
        path_of(namespace, kind, name),
        {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}},
        content_type="application/strategic-merge-patch+json",
    )


def scale(kube: LocalKube, namespace: str, kind: str, name: str, replicas: int) -> None:
    kube.api(
        "PATCH",
        path_of(namespace, kind, name) + "/scale",
        {"spec": {"replicas": replicas}},
        content_type=MERGE_PATCH,
    )


def rolled_out(obj: dict[str, Any]) -> bool:
    """The controllers are done with this spec: every replica updated and ready."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return False
    if obj["kind"] == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        return (
            bool(want) and status.get("numberReady") == status.get("updatedNumberScheduled") == want
        )
    want = obj["spec"]["replicas"]
    return (
        status.get("replicas")
        == status.get("readyReplicas")
        == status.get("updatedReplicas")
        == want
    )


def target(watcher: ClusterWatcher, resource: str) -> ResourceWatch:
    return next(t for t in watcher.targets if t.resource == resource)


def caught_up(watcher: ClusterWatcher, resource: str, resource_version: str) -> None:
    """Wait until the watch of `resource` has handled every notification up to this version."""
    found = target(watcher, resource)
    wait_for(
        lambda: found.resource_version and int(found.resource_version) >= int(resource_version),
        timeout=20,
        what=f"the {resource} watch to reach resourceVersion {resource_version}",
    )


def settle(kube: LocalKube, watcher: ClusterWatcher, namespace: str, kind: str, name: str) -> None:
    """Wait for a rollout to finish and for the watcher to have read all of its churn."""
    obj = wait_for(
        lambda: (o := kube.api("GET", path_of(namespace, kind, name))) and rolled_out(o) and o,
        timeout=45,
        interval=0.2,
        what=f"{kind} {name} to roll out",
    )
    caught_up(watcher, PLURAL[kind], obj["metadata"]["resourceVersion"])


def settle_all(
    kube: LocalKube, watcher: ClusterWatcher, namespace: str, names: list[tuple[str, str]]
) -> None:
    for kind, name in names:
        settle(kube, watcher, namespace, kind, name)


def add_node(kube: LocalKube) -> str:
    name = f"watch-{uuid.uuid4().hex[:8]}"
    kube.add_node(name)
    return name


def delete_node(kube: LocalKube, name: str) -> None:
    kube.api("DELETE", f"/api/v1/nodes/{name}", ok=(200, 202, 404))


def node_ready(kube: LocalKube, name: str) -> str:
    node = kube.api("GET", f"/api/v1/nodes/{name}")
    conditions = (node.get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


def compact_etcd(kube: LocalKube) -> int:
    """Compact etcd's history up to now (as the API server does every few minutes)."""

    def post(path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            kube.etcd_url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    revision = post("/v3/kv/range", {"key": base64.b64encode(b"/registry/").decode()})["header"][
        "revision"
    ]
    post("/v3/kv/compaction", {"revision": revision, "physical": True})
    return int(revision)


class Cable:
    """A TCP link to the API server that a test can pull out: unplugged, the port is
    closed (connections refused) and open connections are cut, as in a network
    partition. TLS passes through untouched, so clients still talk to the real
    API server with the real certificates."""

    def __init__(self, kube: LocalKube, plugged: bool = True) -> None:
        self.upstream = ("127.0.0.1", kube.port)
        self.port = free_port()
        config = json.loads(kube.kubeconfig())
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = json.dumps(config)
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        if plugged:
            self.plug()

    def plug(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self.lock:
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def unplug(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.sockets = self.sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    continue
                self.sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self.lock:
                self.sockets.discard(src)
            src.close()


# -------------------------------------------------------------------- fixtures


@pytest.fixture
def workloads(kube: LocalKube, kube_ns: str) -> list[tuple[str, str]]:
    """A Deployment, a DaemonSet and a StatefulSet, there before the watcher starts."""
    for kind, name, image in WORKLOADS:
        kube.apply(workload(kind, name, image), kube_ns)
    return [(kind, name) for kind, name, _ in WORKLOADS]


@pytest.fixture
def watch(kube: LocalKube, kube_ns: str) -> Iterator[Callable[..., ClusterWatcher]]:
    """Start a watcher on a cluster that watches the test's namespace; closed after."""
    watchers: list[ClusterWatcher] = []

    def start(
        kubeconfig: str | None = None,
        namespaces: list[str] | None = None,
        record: Callable[[Cluster, str, str, dict[str, Any]], None] | None = None,
        watch_seconds: int = 30,
        max_backoff: float = 1.0,
        wait: bool = True,
    ) -> ClusterWatcher:
        cluster = ClusterFactory(
            kubeconfig=kubeconfig or kube.kubeconfig(),
            executor=Executor.KUBERNETES,
            namespace=kube_ns,
            watch_namespaces=[kube_ns] if namespaces is None else namespaces,
        )
        watcher = ClusterWatcher(
            cluster,
            threading.Event(),
            record=record,
            watch_seconds=watch_seconds,
            max_backoff=max_backoff,
        )
        watchers.append(watcher)
        watcher.start()
        if wait:
            wait_for(
                lambda: all(t.streams for t in watcher.targets),
                timeout=20,
                what="every list to be taken and every watch to be open",
            )
        return watcher

    yield start
    for watcher in watchers:
        watcher.close()
    clear_client_cache()


def events(**filters: Any) -> list[tuple[str, str]]:
    return list(Event.objects.filter(**filters).order_by("pk").values_list("kind", "component"))


def node_changes(name: str) -> list[str]:
    found = []
    for event in Event.objects.filter(detail__name=name).order_by("pk"):
        detail = event.detail
        if event.kind == "upgrade":
            found.append(f"{event.component} {detail['from']} → {detail['to']}")
        else:
            assert (event.kind, event.component) == ("cluster_change", "node")
            found.append(detail["change"])
    return found


def releases(component: str) -> list[tuple[list[str], list[str]]]:
    """(previous images, images) of each release of a component; [] before for a creation."""
    return [
        (e.detail.get("previous_images", []), e.detail["images"])
        for e in Event.objects.filter(kind="component_release", component=component).order_by("pk")
    ]


# ----------------------------------------------------------------------- tests


def test_the_initial_state_and_its_status_churn_are_not_events(
    kube: LocalKube, kube_ns: str, workloads: list[tuple[str, str]], watch: Any
) -> None:
    watcher = watch()
    # The controllers roll the three out while the watcher looks: status only.
    settle_all(kube, watcher, kube_ns, workloads)
    assert target(watcher, "deployments").seen["coredns"]["images"] == ["coredns:1.11.1"]
    assert {"kwok-node-0", "kwok-node-1", "kwok-node-2"} <= set(target(watcher, "nodes").seen)
    assert Event.objects.count() == 0
    # close() ends quiet streams at once instead of at their timeout.
    started = time.monotonic()
    watcher.close()
    assert not any(t.is_alive() for t in watcher.threads)
    assert time.monotonic() - started < 3


def test_new_workloads_are_releases_but_their_rollouts_and_scaling_are_not(
    kube: LocalKube, kube_ns: str, watch: Any
) -> None:
    watcher = watch()
    for kind, name, image in WORKLOADS:
        kube.apply(workload(kind, name, image), kube_ns)
    created = [(kind, name) for kind, name, _ in WORKLOADS]
    settle_all(kube, watcher, kube_ns, created)
    assert Counter(events()) == Counter(("component_release", name) for _, name in created)
    assert all(e.detail["change"] == "created" for e in Event.objects.all())
    assert releases("etcd") == [([], ["etcd:3.6.0"])]
    # Scaling changes the spec (and generation) but not what runs: not a release.
    scale(kube, kube_ns, "Deployment", "coredns", 4)
    scale(kube, kube_ns, "StatefulSet", "etcd", 3)
    settle(kube, watcher, kube_ns, "Deployment", "coredns")
    settle(kube, watcher, kube_ns, "StatefulSet", "etcd")
    assert Event.objects.count() == 3
    # A workload removed is a cluster change.
    kube.api("DELETE", path_of(kube_ns, "DaemonSet", "kube-proxy"))
    wait_for(lambda: len(events()) == 4, what="the DaemonSet's deletion")
    deleted = Event.objects.order_by("pk").last()
    assert (deleted.kind, deleted.component, deleted.detail["change"]) == (
        "cluster_change",
        "kube-proxy",
        "daemonset deleted",
    )


def test_a_release_of_each_kind_fires_the_bindings_subscribed_to_it(
    kube: LocalKube, kube_ns: str, workloads: list[tuple[str, str]], watch: Any
) -> None:
    watcher = watch()
    bindings = {}
    for component in ("coredns", "kube-proxy", "etcd", "ingress-nginx"):
        binding = BindingFactory(
            interval_seconds=None,
            event_triggers=[{"kind": "component_release", "component": component}],
        )
        binding.clusters.set([watcher.cluster])
        binding.cases.set([CaseFactory(name=f"{component}-probe")])
        bindings[component] = binding
    set_image(kube, kube_ns, "Deployment", "coredns", "coredns:1.11.3")
    set_image(kube, kube_ns, "DaemonSet", "kube-proxy", "kube-proxy:v1.38.0")
    set_image(kube, kube_ns, "StatefulSet", "etcd", "etcd:3.6.5")
    wait_for(lambda: len(events()) == 3, timeout=20, what="three component_release events")
    assert releases("coredns") == [(["coredns:1.11.1"], ["coredns:1.11.3"])]
    assert releases("kube-proxy") == [(["kube-proxy:v1.37.2"], ["kube-proxy:v1.38.0"])]
    assert releases("etcd") == [(["etcd:3.6.0"], ["etcd:3.6.5"])]
    for component in ("coredns", "kube-proxy", "etcd"):
        event = Event.objects.get(component=component)
        assert event.source == "watch"
        assert event.detail["resource"] == PLURAL[{n: k for k, n in workloads}[component]]
        run = wait_for(lambda e=event: ProbeRun.objects.filter(event=e).first(), what="its run")
        assert (run.case.name, run.trigger, run.binding_id) == (
            f"{component}-probe",
            "event",
            bindings[component].pk,
        )
    assert not ProbeRun.objects.filter(binding=bindings["ingress-nginx"]).exists()
    # Rolling the new image out (pods replaced, status rewritten) is the same release.
    settle_all(kube, watcher, kube_ns, workloads)
    assert len(events()) == 3 and ProbeRun.objects.count() == 3


def test_node_changes(kube: LocalKube, watch: Any) -> None:
    watcher = watch(namespaces=[])
    name = add_node(kube)
    # Registered bare (as a cloud controller may do): the kubelet fills in its version later.
    bare = f"watch-bare-{uuid.uuid4().hex[:6]}"
    kube.api(
        "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": bare}}
    )
    try:
        for node_name in (name, bare):
            wait_for(lambda n=node_name: node_changes(n) == ["node added"], what="arrivals")
            assert Event.objects.get(detail__name=node_name).detail["ready"] == "Unknown"
            # kwok's kubelet then reports Ready (and for the bare node its version) for the
            # first time: that completes the node's joining, it is no flip and no upgrade.
            wait_for(
                lambda n=node_name: node_ready(kube, n) == "True", timeout=20, what="Ready nodes"
            )
            node = kube.api("GET", f"/api/v1/nodes/{node_name}")
            caught_up(watcher, "nodes", node["metadata"]["resourceVersion"])
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "kwok-0.8.0"
        assert node_changes(name) == node_changes(bare) == ["node added"]
        delete_node(kube, bare)

        kube.api(
            "PATCH",
            f"/api/v1/nodes/{name}",
            {"metadata": {"labels": {FAULT_KEY: "not-ready"}}},
            content_type=MERGE_PATCH,
        )
        wait_for(lambda: len(node_changes(name)) == 2, timeout=20, what="the Ready flip")
        assert node_changes(name)[1] == "Ready True → False"

        # A kubelet upgrade, as a kubelet reports it: through the status subresource.
        kube.api(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            {"status": {"nodeInfo": {"kubeletVersion": "v1.38.0"}}},
            content_type=MERGE_PATCH,
        )
        wait_for(lambda: len(node_changes(name)) == 3, what="the kubelet upgrade")
        assert node_changes(name)[2] == "kubelet v1.37.2 → v1.38.0"
        assert events(detail__name=name)[2] == ("upgrade", "kubelet")

        kube.api(
            "PATCH",
            f"/api/v1/nodes/{name}",
            {"metadata": {"labels": {FAULT_KEY: None}}},
            content_type=MERGE_PATCH,
        )
        wait_for(lambda: len(node_changes(name)) == 4, timeout=20, what="Ready again")
        assert node_changes(name)[3] == "Ready False → True"
        # kwok rewrote the node's status to make it Ready but kept the reported version,
        # so there is no second (or reverse) upgrade.
        node = kube.api("GET", f"/api/v1/nodes/{name}")
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.38.0"
        caught_up(watcher, "nodes", node["metadata"]["resourceVersion"])

        delete_node(kube, name)
        wait_for(lambda: len(node_changes(name)) == 5, what="the node's removal")
        assert node_changes(name)[4] == "node deleted"
    finally:
        delete_node(kube, name)
        delete_node(kube, bare)
    # Nothing about the cluster's other nodes.
    assert Event.objects.exclude(detail__name__in=[name, bare]).count() == 0


def test_dropped_streams_resume_from_the_last_resource_version(
    kube: LocalKube, kube_ns: str, workloads: list[tuple[str, str]], watch: Any
) -> None:
    cable = Cable(kube)
    # Short watches: the API server itself ends each stream after 3 s.
    watcher = watch(kubeconfig=cable.kubeconfig, watch_seconds=3)
    deployments = target(watcher, "deployments")
    wait_for(lambda: deployments.streams >= 2, timeout=10, what="a stream ended and resumed")
    set_image(kube, kube_ns, "Deployment", "coredns", "coredns:2.0")
    wait_for(lambda: len(events()) == 1, what="the first release")

    # The network fails; while it is down the cluster changes.
    cable.unplug()
    node = add_node(kube)
    try:
        set_image(kube, kube_ns, "Deployment", "coredns", "coredns:3.0")
        set_image(kube, kube_ns, "StatefulSet", "etcd", "etcd:3.7.0")
        kube.apply(workload("DaemonSet", "node-exporter", "node-exporter:1.8"), kube_ns)
        cable.plug()
        wait_for(lambda: len(events()) == 5, timeout=60, what="the changes made while cut off")
        settle_all(kube, watcher, kube_ns, [*workloads, ("DaemonSet", "node-exporter")])
        caught_up(
            watcher,
            "nodes",
            kube.api("GET", f"/api/v1/nodes/{node}")["metadata"]["resourceVersion"],
        )
        recorded = len(events())  # before the clean-up below deletes the node (a 6th event)
    finally:
        delete_node(kube, node)
    # Each change exactly once, the one before the cut not again.
    assert releases("coredns") == [
        (["coredns:1.11.1"], ["coredns:2.0"]),
        (["coredns:2.0"], ["coredns:3.0"]),
    ]
    assert releases("etcd") == [(["etcd:3.6.0"], ["etcd:3.7.0"])]
    assert releases("node-exporter") == [([], ["node-exporter:1.8"])]
    assert node_changes(node)[:1] == ["node added"] and recorded == 5
    # It resumed where it was: no watch listed again or was told its version expired.
    assert [(t.lists, t.expired) for t in watcher.targets] == [(1, 0)] * 4


def test_an_api_server_restart_loses_no_change_and_repeats_none(
    kube: LocalKube, kube_ns: str, workloads: list[tuple[str, str]], watch: Any
) -> None:
    watcher = watch()
    set_image(kube, kube_ns, "Deployment", "coredns", "coredns:2.0")
    wait_for(lambda: len(events()) == 1, what="the release before the restart")
    settle(kube, watcher, kube_ns, "Deployment", "coredns")

    kube.restart_apiserver()
    # Changed just after the restart, while the watches are still coming back.
    set_image(kube, kube_ns, "DaemonSet", "kube-proxy", "kube-proxy:v1.38.0")
    kube.api("DELETE", path_of(kube_ns, "StatefulSet", "etcd"))
    kube.apply(workload("Deployment", "metrics-server", "metrics-server:0.7"), kube_ns)
    node = add_node(kube)
    try:
        wait_for(lambda: len(events()) == 5, timeout=30, what="the changes after the restart")
        settle(kube, watcher, kube_ns, "DaemonSet", "kube-proxy")
        settle(kube, watcher, kube_ns, "Deployment", "metrics-server")
        # And a change once everything is back.
        set_image(kube, kube_ns, "Deployment", "coredns", "coredns:3.0")
        wait_for(lambda: len(events()) == 6, what="the release after the restart")
        settle(kube, watcher, kube_ns, "Deployment", "coredns")
        recorded = len(events())  # before the clean-up below deletes the node (a 7th event)
    finally:
        delete_node(kube, node)
    assert releases("coredns") == [
        (["coredns:1.11.1"], ["coredns:2.0"]),
        (["coredns:2.0"], ["coredns:3.0"]),
    ]
    assert releases("kube-proxy") == [(["kube-proxy:v1.37.2"], ["kube-proxy:v1.38.0"])]
    assert releases("metrics-server") == [([], ["metrics-server:0.7"])]
    assert events(component="etcd") == [("cluster_change", "etcd")]
    assert node_changes(node)[:1] == ["node added"]
    assert recorded == 6
    # Whether a watch resumed or (its version too old for the new API server's cache)
    # listed again, it never listed without being told to.
    for watched in watcher.targets:
        assert watched.lists == 1 + watched.expired


def test_an_expired_resource_version_lists_again_and_misses_nothing(
    kube: LocalKube, kube_ns: str, workloads: list[tuple[str, str]], watch: Any
) -> None:
    leaving = add_node(kube)
    try:
        failures = ["coredns"]

        def record_failing_once(cluster: Cluster, kind: str, component: str, detail: Any) -> None:
            if component in failures:
                failures.remove(component)
                raise RuntimeError("database is down")
            _record_event(cluster, kind, component, detail)

        cable = Cable(kube)
        watcher = watch(kubeconfig=cable.kubeconfig, record=record_failing_once)
        settle_all(kube, watcher, kube_ns, workloads)
        deployments = target(watcher, "deployments")
        old_version = deployments.resource_version
        assert Event.objects.count() == 0

        cable.unplug()
        # Meanwhile: a release, a DaemonSet replaced by one of the same name and
        # spec, a node gone; then the history of all that is compacted away.
        set_image(kube, kube_ns, "Deployment", "coredns", "coredns:2.0")
        kube.api("DELETE", path_of(kube_ns, "DaemonSet", "kube-proxy"))
        kube.apply(workload("DaemonSet", "kube-proxy", "kube-proxy:v1.37.2"), kube_ns)
        delete_node(kube, leaving)
        compact_etcd(kube)
        kube.restart_apiserver()  # its watch cache starts again from etcd's present
        # The real answer to a watch from the old version: 410 Gone, inside a 200 stream.
        status, body = kube.request(
            "GET",
            path_of(kube_ns, "Deployment")
            + f"?watch=1&resourceVersion={old_version}&timeoutSeconds=5",
            raw=True,
        )
        first = json.loads(body.splitlines()[0])
        assert status == 200 and first["type"] == "ERROR"
        assert first["object"]["code"] == 410 and first["object"]["reason"] == "Expired"

        cable.plug()
        wait_for(lambda: deployments.expired >= 1, timeout=60, what="the watcher's 410")
        wait_for(lambda: len(events()) == 4, timeout=60, what="the changes found by listing")
        settle_all(kube, watcher, kube_ns, workloads)
        set_image(kube, kube_ns, "Deployment", "coredns", "coredns:3.0")
        wait_for(lambda: len(events()) == 5, what="the watch to be back")
    finally:
        delete_node(kube, leaving)
    assert releases("coredns") == [
        (["coredns:1.11.1"], ["coredns:2.0"]),
        (["coredns:2.0"], ["coredns:3.0"]),
    ]
    # The replaced DaemonSet: told as the watch would have told it.
    assert [
        e.detail["change"] for e in Event.objects.filter(component="kube-proxy").order_by("pk")
    ] == [
        "daemonset deleted",
        "created",
    ]
    assert node_changes(leaving) == ["node deleted"]
    assert len(events()) == 5
    # The listing's coredns change failed to record the first time: the next listing
    # found it again (lists: start, after the 410, after the failure).
    assert failures == [] and deployments.lists == 3
    assert target(watcher, "statefulsets").lists == 1 + target(watcher, "statefulsets").expired


def test_an_unreachable_cluster_backs_off_without_dying(
    kube: LocalKube, watch: Any, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    # Three refusals open the cluster's circuit breaker; it lets one call try again
    # per probe interval, so the watch comes back within that once the port opens.
    settings.KUBEPROBE_BREAKER_PROBE_SECONDS = 1.0
    cable = Cable(kube, plugged=False)  # a closed local port: connections refused
    caplog.set_level(logging.WARNING, logger="apps.scheduling.watch")
    watcher = watch(kubeconfig=cable.kubeconfig, namespaces=[], max_backoff=2.0, wait=False)
    nodes = target(watcher, "nodes")

    def waits() -> list[str]:
        return [r.getMessage().rsplit("again in ", 1)[-1] for r in caplog.records]

    wait_for(lambda: waits()[:3] == ["1s)", "2s)", "2s)"], timeout=15, what="growing backoff")
    assert "unreachable" in caplog.records[0].getMessage()
    assert nodes.lists == 0 and all(t.is_alive() for t in watcher.threads)
    cable.plug()
    wait_for(lambda: nodes.streams >= 1, timeout=30, what="the watch once the port opens")
    assert nodes.lists == 1 and "kwok-node-0" in nodes.seen


def test_a_change_that_fails_to_record_is_recorded_on_replay(
    kube: LocalKube, kube_ns: str, workloads: list[tuple[str, str]], watch: Any
) -> None:
    recorded: list[tuple[str, str]] = []
    failures = [1]

    def flaky_record(cluster: Cluster, kind: str, component: str, detail: dict[str, Any]) -> None:
        if failures:
            failures.pop()
            raise RuntimeError("database is down")
        recorded.append((kind, component))

    watcher = watch(record=flaky_record)
    set_image(kube, kube_ns, "Deployment", "coredns", "coredns:2")
    wait_for(
        lambda: recorded == [("component_release", "coredns")],
        timeout=20,
        what="the replayed change",
    )
    settle(kube, watcher, kube_ns, "Deployment", "coredns")
    assert recorded == [("component_release", "coredns")] and failures == []
    # Replayed by resuming the watch from the version before the failed change.
    assert target(watcher, "deployments").lists == 1


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
