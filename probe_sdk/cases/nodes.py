"""Per-node probe: one short pod pinned to every Ready, schedulable node.

Each pod is bound straight to its node (`spec.nodeName`, tolerating every
taint), so what is tested is that node's kubelet, container runtime, network
plugin and image pulls, not the scheduler. Each node gets a step with the
time from creation to Ready; a node whose pod does not get Ready in time
fails with the pod's reasons and events (e.g. `FailedCreatePodSandBox`).
Nodes that are NotReady or cordoned are not probed; they are counted in the
metrics `nodes_not_ready` and `nodes_unschedulable`. Pods are deleted as
soon as their node is judged, and all of them at the end.

| env | default | meaning |
| --- | --- | --- |
| `NODES_SELECTOR` | | label selector of the nodes to probe (e.g. `node-role.kubernetes.io/worker`) |
| `NODES_MAX` | `0` | probe at most this many nodes (0: all) |
| `NODES_PARALLEL` | `50` | pods in flight at once |

plus the Kubernetes env shared by all cases (see `probe_sdk.cases._kube`);
`WAIT_TIMEOUT_SECONDS` is the time each node's pod has to get Ready.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Tuple

from probe_sdk import Probe
from probe_sdk.cases import _env, _kube
from probe_sdk.cases._kube import Kube

CASE = "node-probe"


def node_ready(node: Dict[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def eligible_nodes(kube: Kube, selector: str) -> Tuple[List[str], int, int]:
    """(names of nodes to probe, NotReady count, cordoned count)."""
    nodes = kube.items(_kube.path(None, "nodes"), selector)
    names: List[str] = []
    not_ready = cordoned = 0
    for node in nodes:
        if not node_ready(node):
            not_ready += 1
        elif (node.get("spec") or {}).get("unschedulable"):
            cordoned += 1
        else:
            names.append(node["metadata"]["name"])
    return sorted(names), not_ready, cordoned


class NodeRun:
    """Pods in flight, each judged Ready, failed or timed out, then deleted."""

    def __init__(self, probe: Probe, kube: Kube, ns: str, parallel: int) -> None:
        self.probe, self.kube, self.ns = probe, kube, ns
        self.parallel = max(1, parallel)
        self.run_label = _kube.unique_name("nodes")
        self.in_flight: Dict[str, Tuple[str, float]] = {}  # node → (pod name, started)
        self.failed: List[str] = []  # node names
        self.count = 0

    def start(self, node: str) -> None:
        self.count += 1
        name = "%s-%d" % (self.run_label, self.count)
        extra = {"kubeprobe.io/node-run": self.run_label}
        started = time.monotonic()
        try:
            self.kube.create(
                _kube.path(self.ns, "pods"),
                _kube.pod_manifest(name, CASE, node=node, extra_labels=extra),
            )
        except _kube.KubeError as exc:
            self.finish(node, started, False, "could not create its pod: %s" % exc)
            return
        self.in_flight[node] = (name, started)

    def finish(self, node: str, started: float, ok: bool, error: str = "") -> None:
        elapsed = (time.monotonic() - started) * 1000
        limit = _kube.threshold("node")
        if ok and elapsed > limit:
            ok, error = False, "took %d ms, over the %d ms threshold" % (elapsed, limit)
        self.probe.record_step("node %s" % node, ok, elapsed, error)
        if not ok:
            self.failed.append(node)

    def poll(self) -> None:
        pods = {
            p["metadata"]["name"]: p
            for p in self.kube.items(
                _kube.path(self.ns, "pods"), "kubeprobe.io/node-run=%s" % self.run_label
            )
        }
        timeout = _kube.wait_timeout()
        for node, (name, started) in list(self.in_flight.items()):
            pod = pods.get(name)
            if _kube.pod_condition(pod, "Ready"):
                self.finish(node, started, True)
            elif _kube.pod_finished(pod) or time.monotonic() - started > timeout:
                state = _kube.with_events(self.kube, self.ns, name, _kube.pod_state(pod))
                verb = "ended" if _kube.pod_finished(pod) else "not Ready after %g s" % timeout
                self.finish(node, started, False, "pod %s %s: %s" % (name, verb, state))
            else:
                continue
            del self.in_flight[node]
            self.delete(name)

    def delete(self, name: str) -> bool:
        try:
            self.kube.delete(_kube.path(self.ns, "pods", name))
            return True
        except _kube.KubeError:
            return False  # the sweep at the end tries again by label

    def sweep(self) -> None:
        """Delete whatever pods of this run are left (a failed delete, or a create that
        timed out after the API server stored the pod), by label, and check."""
        selector = "kubeprobe.io/node-run=%s" % self.run_label
        with _kube.cleanup_step(self.probe, "cleanup"):
            left = [
                p["metadata"]["name"]
                for p in self.kube.items(_kube.path(self.ns, "pods"), selector)
            ]
            undeleted = [name for name in left if not self.delete(name)]
            if undeleted:
                raise RuntimeError("could not delete pods %s" % ", ".join(undeleted))

    def run(self, nodes: List[str]) -> None:
        queue = list(nodes)
        try:
            while queue or self.in_flight:
                while queue and len(self.in_flight) < self.parallel:
                    self.start(queue.pop(0))
                if self.in_flight:
                    self.poll()
                    time.sleep(_kube.POLL_SECONDS)
        finally:
            for name, _ in list(self.in_flight.values()):
                self.delete(name)
            self.sweep()


def main() -> None:
    with Probe() as probe:
        selector = _env.text("NODES_SELECTOR", "")
        limit = int(_env.number("NODES_MAX", 0))
        parallel = int(_env.number("NODES_PARALLEL", 50))
        kube = _kube.connect()
        ns = _kube.namespace()
        with probe.step("list nodes", threshold_ms=_kube.threshold("list nodes")):
            nodes, not_ready, cordoned = eligible_nodes(kube, selector)
            if limit > 0:
                nodes = nodes[:limit]
            if not nodes:
                raise AssertionError(
                    "no Ready, schedulable node matches%s (%d NotReady, %d cordoned)"
                    % (" %r" % selector if selector else "", not_ready, cordoned)
                )
        probe.metric("nodes_probed", len(nodes))
        probe.metric("nodes_not_ready", not_ready)
        probe.metric("nodes_unschedulable", cordoned)
        run = NodeRun(probe, kube, ns, parallel)
        run.run(nodes)
        probe.metric("nodes_failed", len(run.failed))
        if run.failed:
            raise AssertionError(
                "%d of %d nodes failed: %s" % (len(run.failed), len(nodes), ", ".join(run.failed))
            )


if __name__ == "__main__":
    main()
