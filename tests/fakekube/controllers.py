"""The fake cluster's moving parts: scheduler, kubelet, controllers, garbage collector.

All of them run in one thread (`_controller_loop`), one pass at a time under the
server's lock, so every pass sees a consistent store and a test never sees half
a reconcile. A pass runs whenever something was written (and at least every
50 ms, for delays and deadlines); writes only happen when something changes, so
the loop goes quiet once the cluster has converged (see `settle`).
"""

from __future__ import annotations

import copy
import json
import re
import sys
import threading
import time
import traceback
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.fakekube.util import (
    ApiError,
    Kind,
    condition,
    int_or_percent,
    match_expression,
    match_selector,
    now_iso,
    set_condition,
    short_hash,
)

if TYPE_CHECKING:
    from tests.fakekube.server import FakeKube as _Base
else:
    _Base = object

# Images that make the kubelet fail the way real nodes fail.
WAITING_IMAGES = {
    "fake/imagepullbackoff": ("ImagePullBackOff", 'Back-off pulling image "{image}"'),
    "fake/createerror": ("CreateContainerConfigError", 'secret "probe-creds" not found'),
}
# image: (container reason, exit code, pod reason, pod message)
FAILING_IMAGES = {
    "fake/oomkilled": ("OOMKilled", 137, "", ""),
    "fake/exit1": ("Error", 1, "", ""),
    "fake/evicted": ("", None, "Evicted", "The node was low on resource: memory."),
    "fake/exit0": ("Completed", 0, "", ""),
}
TERMINAL = ("Succeeded", "Failed")
IDLE = 0.05


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")  # type: ignore[no-any-return]
    return None


def is_ready(obj: dict[str, Any]) -> bool:
    c = condition(obj, "Ready")
    return bool(c and c.get("status") == "True")


def deleting(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def active(pod: dict[str, Any]) -> bool:
    return not deleting(pod) and (pod.get("status") or {}).get("phase") not in TERMINAL


def natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def parse_time(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def drop_zeros(status: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Status ints the API marks omitempty are absent when zero, as real clients see."""
    return {k: v for k, v in status.items() if not (k in keys and v == 0)}


def fake_image(pod: dict[str, Any]) -> tuple[int, str]:
    """(index, image) of the container whose image asks for a failure, else (0, first)."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for i, c in enumerate(containers):
        if str(c.get("image", "")).startswith("fake/"):
            return i, c["image"]
    return 0, containers[0].get("image", "")


class Controllers(_Base):
    """Mixed into FakeKube: everything that acts on its own, and the knobs for it."""

    def __init__(self) -> None:
        self.controllers_paused = False
        self.scheduler_running = True
        self.progress_deadline_factor = 1.0
        self._pods: dict[str, dict[str, Any]] = {}  # uid → kubelet state
        self._graceful: dict[str, float] = {}  # pod uid → monotonic time it goes
        self._broken: dict[str, str] = {}
        self._ready_override: dict[tuple[str, str], bool] = {}
        self._rr = 0
        self._next_cluster_ip = 0
        self._next_node_port = 30000
        self._pod_ips: dict[str, int] = defaultdict(int)
        self._progress: dict[str, tuple[Any, float]] = {}
        self._managed_endpoints: set[tuple[str, str]] = set()
        self._passes = 0
        self._quiet = False
        self._quiet_cond = threading.Condition()

    # ------------------------------------------------------------ knobs

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        ready: bool = True,
        allocatable: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Add a node (Ready unless told otherwise)."""
        index = len([k for k in self.objects if k[0] == "nodes"]) + 1
        resources = allocatable or {
            "cpu": "4",
            "memory": "16Gi",
            "pods": "110",
            "ephemeral-storage": "100Gi",
        }
        node = {
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    **(labels or {}),
                },
            },
            "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
            "status": {
                "capacity": dict(resources),
                "allocatable": dict(resources),
                "conditions": [
                    {
                        "type": t,
                        "status": "False",
                        "reason": r,
                        "message": m,
                        "lastHeartbeatTime": now_iso(),
                        "lastTransitionTime": now_iso(),
                    }
                    for t, r, m in (
                        (
                            "MemoryPressure",
                            "KubeletHasSufficientMemory",
                            "kubelet has sufficient memory available",
                        ),
                        (
                            "DiskPressure",
                            "KubeletHasNoDiskPressure",
                            "kubelet has no disk pressure",
                        ),
                        (
                            "PIDPressure",
                            "KubeletHasSufficientPID",
                            "kubelet has sufficient PID available",
                        ),
                    )
                ],
                "addresses": [
                    {"type": "InternalIP", "address": f"192.168.0.{9 + index}"},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": f"boot-{name}",
                    "containerRuntimeVersion": "containerd://1.7.13",
                    "kernelVersion": "6.1.0",
                    "kubeProxyVersion": "v1.30.1",
                    "kubeletVersion": "v1.30.1",
                    "machineID": f"machine-{name}",
                    "operatingSystem": "linux",
                    "osImage": "Ubuntu 22.04.4 LTS",
                    "systemUUID": f"uuid-{name}",
                },
            },
        }
        set_condition(
            node["status"],
            "Ready",
            "True" if ready else "Unknown",
            "KubeletReady" if ready else "NodeStatusUnknown",
            "kubelet is posting ready status" if ready else "Kubelet stopped posting node status.",
            heartbeat=True,
        )
        if not ready:
            node["spec"]["taints"] = self._unreachable_taints()
        return self.add("nodes", "", node)

    @staticmethod
    def _unreachable_taints() -> list[dict[str, Any]]:
        return [
            {"key": "node.kubernetes.io/unreachable", "effect": effect, "timeAdded": now_iso()}
            for effect in ("NoSchedule", "NoExecute")
        ]

    def node_not_ready(self, name: str) -> None:
        """The node's kubelet stops posting status: Ready=Unknown, unreachable taints,
        its pods become not Ready, nothing new starts there."""

        def change(node: dict[str, Any]) -> None:
            set_condition(
                node["status"],
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )
            taints = [
                t
                for t in node["spec"].get("taints") or []
                if t.get("key") != "node.kubernetes.io/unreachable"
            ]
            node["spec"]["taints"] = taints + self._unreachable_taints()

        self._mutate("nodes", "", name, change)

    def node_ready(self, name: str) -> None:
        def change(node: dict[str, Any]) -> None:
            set_condition(
                node["status"],
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                heartbeat=True,
            )
            node["spec"]["taints"] = [
                t
                for t in node["spec"].get("taints") or []
                if t.get("key") != "node.kubernetes.io/unreachable"
            ]
            if not node["spec"]["taints"]:
                del node["spec"]["taints"]

        self._mutate("nodes", "", name, change)

    def cordon(self, name: str) -> None:
        """kubectl cordon: spec.unschedulable and the unschedulable taint."""

        def change(node: dict[str, Any]) -> None:
            node["spec"]["unschedulable"] = True
            taints = node["spec"].setdefault("taints", [])
            if not any(t.get("key") == "node.kubernetes.io/unschedulable" for t in taints):
                taints.append(
                    {
                        "key": "node.kubernetes.io/unschedulable",
                        "effect": "NoSchedule",
                        "timeAdded": now_iso(),
                    }
                )

        self._mutate("nodes", "", name, change)

    def uncordon(self, name: str) -> None:
        def change(node: dict[str, Any]) -> None:
            node["spec"].pop("unschedulable", None)
            node["spec"]["taints"] = [
                t
                for t in node["spec"].get("taints") or []
                if t.get("key") != "node.kubernetes.io/unschedulable"
            ]
            if not node["spec"]["taints"]:
                del node["spec"]["taints"]

        self._mutate("nodes", "", name, change)

    def break_node(
        self,
        name: str,
        reason: str = 'rpc error: code = Unknown desc = failed to setup network for sandbox: plugin type="calico" failed (add): connection is unauthorized',
    ) -> None:
        """The node stays Ready but cannot start pods: pods placed there stay
        ContainerCreating with a FailedCreatePodSandBox warning."""
        with self.lock:
            self._broken[name] = reason
            self._wake.set()

    def fix_node(self, name: str) -> None:
        with self.lock:
            self._broken.pop(name, None)
            self._wake.set()

    def scheduler_down(self) -> None:
        """New pods stay Pending with no PodScheduled condition at all."""
        with self.lock:
            self.scheduler_running = False

    def scheduler_up(self) -> None:
        with self.lock:
            self.scheduler_running = True
            self._wake.set()

    def set_ready(self, namespace: str, name: str, ready: bool | None) -> None:
        """Make a running pod's readiness probe pass or fail (None: back to normal)."""
        with self.lock:
            if ready is None:
                self._ready_override.pop((namespace, name), None)
            else:
                self._ready_override[(namespace, name)] = ready
            self._wake.set()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the cluster has converged: a full controller pass, begun after
        this call, changed nothing and no kubelet/scheduler/deletion step is due.
        Pods that can never progress (no node fits, broken node) count as settled."""
        deadline = time.monotonic() + timeout
        with self._quiet_cond:
            start = self._passes
            self._wake.set()
            while not (self._quiet and self._passes >= start + 2):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the fake cluster did not settle within {timeout}s")
                self._quiet_cond.wait(min(remaining, 0.1))

    # ------------------------------------------------------------ plumbing

    def _mutate(self, rid: str, namespace: str, name: str, change: Any) -> bool:
        """Change a stored object in place (no generation bump, no RV check)."""
        with self.lock:
            obj = self.objects.get((rid, namespace, name))
            if obj is None:
                return False
            new = copy.deepcopy(obj)
            change(new)
            if new == obj:
                return False
            self._save(rid, namespace, new, "MODIFIED")
            return True

    def _manage_pod(self, pod: dict[str, Any]) -> None:
        pinned = bool((pod.get("spec") or {}).get("nodeName"))
        delay = self.kubelet_delay if pinned else self.scheduler_delay
        self._pods[pod["metadata"]["uid"]] = {
            "stage": "create" if pinned else "schedule",
            "due": time.monotonic() + delay,
            "flags": set(),
        }

    def _created(self, kind: Kind, obj: dict[str, Any]) -> None:
        if kind.rid == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            for version in spec.get("versions") or []:
                self._register(
                    spec.get("group", ""),
                    version.get("name", "v1"),
                    names.get("plural", ""),
                    names.get("kind", ""),
                    spec.get("scope", "Namespaced") == "Namespaced",
                    "status" in (version.get("subresources") or {}),
                )

    def _forget(self, obj: dict[str, Any]) -> None:
        uid = obj["metadata"].get("uid", "")
        self._pods.pop(uid, None)
        self._graceful.pop(uid, None)
        self._progress.pop(uid, None)
        if obj.get("kind") == "Pod":
            self._ready_override.pop(
                (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]), None
            )
        if obj.get("kind") == "CustomResourceDefinition":
            rid = obj["metadata"]["name"]
            if rid in self.kinds and not self.kinds[rid].builtin:
                for key in [k for k in self.objects if k[0] == rid]:
                    self._remove(*key)
                del self.kinds[rid]

    def _due(self, when: float) -> None:
        self._next_due = min(self._next_due, when)

    def _controller_loop(self) -> None:
        while not self._stopped.is_set():
            now = time.monotonic()
            self._wake.wait(timeout=max(0.002, min(IDLE, self._next_due_at - now)))
            if self._stopped.is_set():
                return
            self._wake.clear()
            try:
                with self.lock:
                    before = self._changes
                    pending = self._reconcile()
                    quiet = self._changes == before and not pending
            except Exception:
                traceback.print_exc(file=sys.stderr)
                quiet = False
            with self._quiet_cond:
                self._quiet = quiet
                self._passes += 1
                self._quiet_cond.notify_all()

    _next_due_at = 0.0
    _next_due = 0.0

    def _reconcile(self) -> bool:
        now = time.monotonic()
        self._next_due = now + IDLE
        pending = False
        for uid, due in list(self._graceful.items()):
            if due <= now:
                del self._graceful[uid]
                key = self.uids.get(uid)
                if key is not None:
                    self._finish_deletion(*key)
            else:
                pending = True
                self._due(due)
        pending = self._run_pods(now) or pending
        if not self.controllers_paused:
            self._run_namespaces()
            self._run_gc()
            self._run_deployments(now)
            self._run_replicasets()
            self._run_statefulsets()
            self._run_endpoints()
        self._next_due_at = self._next_due
        return pending

    def _of(self, rid: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            o
            for (r, ns, _), o in list(self.objects.items())
            if r == rid and (namespace is None or ns == namespace)
        ]

    def _ctl_event(
        self, obj: dict[str, Any], reason: str, message: str, component: str, type_: str = "Normal"
    ) -> None:
        self.event(
            obj["metadata"].get("namespace", ""), obj, reason, message, type_, component=component
        )

    # ------------------------------------------------------------ scheduler + kubelet

    def _run_pods(self, now: float) -> bool:
        pending = False
        nodes = {n["metadata"]["name"]: n for n in self._of("nodes")}
        for pod in self._of("pods"):
            uid = pod["metadata"].get("uid", "")
            state = self._pods.get(uid)
            if state is None or deleting(pod):
                continue
            if state["due"] > now:
                pending = True
                self._due(state["due"])
                continue
            stage = state["stage"]
            if stage == "schedule":
                self._schedule(pod, state, nodes, now)
            elif stage == "create":
                self._start(pod, state, nodes, now)
            elif stage == "finish":
                self._finish(pod, state)
            elif stage == "running":
                self._sync_ready(pod, nodes)
            if state["due"] > now:
                pending = True
                self._due(state["due"])
        return pending

    def _pod_key(self, pod: dict[str, Any]) -> tuple[str, str]:
        return pod["metadata"].get("namespace", ""), pod["metadata"]["name"]

    def _schedule(
        self, pod: dict[str, Any], state: dict[str, Any], nodes: dict[str, Any], now: float
    ) -> None:
        if not self.scheduler_running:
            return
        ns, name = self._pod_key(pod)
        _, image = fake_image(pod)
        if image == "fake/unschedulable":
            node_name: str | None = None
            message = f"0/{len(nodes)} nodes are available: {len(nodes)} Insufficient cpu."
        else:
            node_name, message = self._pick_node(pod, nodes)
        if node_name is None:
            if state.get("unschedulable") == message:
                return

            def unschedulable(p: dict[str, Any]) -> None:
                set_condition(p["status"], "PodScheduled", "False", "Unschedulable", message)

            self._mutate("pods", ns, name, unschedulable)
            self._ctl_event(pod, "FailedScheduling", message, "default-scheduler", "Warning")
            state["unschedulable"] = message
            return

        def bind(p: dict[str, Any]) -> None:
            p["spec"]["nodeName"] = node_name
            p["status"]["conditions"] = [
                c for c in p["status"].get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            set_condition(p["status"], "PodScheduled", "True")
            p["status"]["containerStatuses"] = [
                self._container_status(c, {"waiting": {"reason": "ContainerCreating"}})
                for c in p["spec"]["containers"]
            ]

        self._mutate("pods", ns, name, bind)
        self._ctl_event(
            pod,
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node_name}",
            "default-scheduler",
        )
        state.update(stage="create", due=now + self.kubelet_delay)

    def _pick_node(self, pod: dict[str, Any], nodes: dict[str, Any]) -> tuple[str | None, str]:
        spec = pod.get("spec") or {}
        counts: dict[str, int] = defaultdict(int)
        fits = []
        for name in sorted(nodes, key=natural):
            node = nodes[name]
            taint = self._untolerated_taint(spec, node)
            if (node.get("spec") or {}).get("unschedulable") and taint:
                counts["node(s) were unschedulable"] += 1
            elif taint:
                value = taint.get("value", "")
                counts[f"node(s) had untolerated taint {{{taint['key']}: {value}}}"] += 1
            elif not is_ready(node):
                counts["node(s) were not ready"] += 1
            elif not self._node_matches(spec, node):
                counts["node(s) didn't match Pod's node affinity/selector"] += 1
            else:
                fits.append(name)
        if fits:
            chosen = fits[self._rr % len(fits)]
            self._rr += 1
            return chosen, ""
        if not nodes:
            return None, "no nodes available to schedule pods"
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
        total = len(nodes)
        return None, (
            f"0/{total} nodes are available: {reasons}. preemption: 0/{total} nodes are "
            f"available: {total} Preemption is not helpful for scheduling."
        )

    @staticmethod
    def _untolerated_taint(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
        tolerations = spec.get("tolerations") or []
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            tolerated = any(
                (not t.get("key") and t.get("operator") == "Exists")
                or (
                    t.get("key") == taint.get("key")
                    and (t.get("operator") == "Exists" or t.get("value") == taint.get("value"))
                    and t.get("effect") in (None, "", taint.get("effect"))
                )
                for t in tolerations
            )
            if not tolerated:
                return taint  # type: ignore[no-any-return]
        return None

    @staticmethod
    def _node_matches(spec: dict[str, Any], node: dict[str, Any]) -> bool:
        labels = node["metadata"].get("labels") or {}
        for key, value in (spec.get("nodeSelector") or {}).items():
            if labels.get(key) != value:
                return False
        required = (
            ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
            or {}
        ).get("nodeSelectorTerms")
        if not required:
            return True
        fields = {"metadata.name": node["metadata"]["name"]}
        return any(
            all(match_expression(labels, e) for e in term.get("matchExpressions") or [])
            and all(match_expression(fields, e) for e in term.get("matchFields") or [])
            for term in required
        )

    @staticmethod
    def _container_status(
        container: dict[str, Any],
        state: dict[str, Any],
        ready: bool = False,
        restarts: int = 0,
        started: bool = False,
    ) -> dict[str, Any]:
        image = container.get("image", "")
        running = "running" in state or "terminated" in state
        status = {
            "name": container.get("name", ""),
            "image": image,
            "imageID": f"docker.io/{image}@sha256:{short_hash(image, 40)}" if running else "",
            "ready": ready,
            "restartCount": restarts,
            "started": started,
            "state": state,
        }
        if running:
            status["containerID"] = f"containerd://{short_hash([image, now_iso()], 32)}"
        return status

    def _desired_ready(self, pod: dict[str, Any], nodes: dict[str, Any]) -> bool:
        override = self._ready_override.get(self._pod_key(pod))
        _, image = fake_image(pod)
        node = nodes.get((pod.get("spec") or {}).get("nodeName", ""))
        wanted = override if override is not None else image != "fake/notready"
        return bool(wanted and node is not None and is_ready(node))

    def _start(
        self, pod: dict[str, Any], state: dict[str, Any], nodes: dict[str, Any], now: float
    ) -> None:
        ns, name = self._pod_key(pod)
        node_name = pod["spec"].get("nodeName", "")
        node = nodes.get(node_name)
        if node is None or not is_ready(node):
            return  # no kubelet there to start it
        if node_name in self._broken:
            if "sandbox" not in state["flags"]:
                state["flags"].add("sandbox")

                def creating(p: dict[str, Any]) -> None:
                    p["status"]["containerStatuses"] = [
                        self._container_status(c, {"waiting": {"reason": "ContainerCreating"}})
                        for c in p["spec"]["containers"]
                    ]

                self._mutate("pods", ns, name, creating)
                self._ctl_event(
                    pod,
                    "FailedCreatePodSandBox",
                    "Failed to create pod sandbox: " + self._broken[node_name],
                    "kubelet",
                    "Warning",
                )
            return
        index, image = fake_image(pod)
        containers = pod["spec"]["containers"]
        if image in WAITING_IMAGES:
            reason, template = WAITING_IMAGES[image]
            message = template.format(image=image)

            def wait(p: dict[str, Any]) -> None:
                p["status"]["containerStatuses"] = [
                    self._container_status(
                        c,
                        {"waiting": {"reason": reason, "message": message}}
                        if i == index
                        else {"waiting": {"reason": "ContainerCreating"}},
                    )
                    for i, c in enumerate(p["spec"]["containers"])
                ]
                self._pod_conditions(p, ready=False)

            self._mutate("pods", ns, name, wait)
            self._ctl_event(pod, "Failed", message, "kubelet", "Warning")
            state.update(stage="done")
            return
        ready = self._desired_ready(pod, nodes)
        self._pod_ips[node_name] += 1
        cidr = (node.get("spec") or {}).get("podCIDR", "10.244.250.0/24")
        ip = cidr.rsplit(".", 1)[0] + f".{self._pod_ips[node_name] % 250 + 2}"
        host_ip = next(
            (
                a["address"]
                for a in (node.get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            "192.168.0.10",
        )
        started_at = now_iso()

        def running(p: dict[str, Any]) -> None:
            status = p["status"]
            status.update(
                phase="Running",
                podIP=ip,
                podIPs=[{"ip": ip}],
                hostIP=host_ip,
                hostIPs=[{"ip": host_ip}],
                startTime=started_at,
            )
            status["containerStatuses"] = [
                self._container_status(
                    c, {"running": {"startedAt": started_at}}, ready=ready, started=True
                )
                for c in p["spec"]["containers"]
            ]
            self._pod_conditions(p, ready=ready)

        self._mutate("pods", ns, name, running)
        for c in containers:
            self._ctl_event(
                pod,
                "Pulled",
                f'Container image "{c.get("image")}" already present on machine',
                "kubelet",
            )
            self._ctl_event(pod, "Created", f"Created container {c.get('name')}", "kubelet")
            self._ctl_event(pod, "Started", f"Started container {c.get('name')}", "kubelet")
        if image in FAILING_IMAGES:
            state.update(stage="finish", due=now + self.kubelet_delay)
        else:
            state.update(stage="running")

    @staticmethod
    def _pod_conditions(p: dict[str, Any], ready: bool, reason: str = "") -> None:
        status = p["status"]
        for type_ in ("PodReadyToStartContainers", "Initialized"):
            set_condition(status, type_, "True")
        not_ready = reason or "ContainersNotReady"
        for type_ in ("Ready", "ContainersReady"):
            set_condition(
                status,
                type_,
                "True" if ready else "False",
                "" if ready else not_ready,
                "",
            )
        set_condition(status, "PodScheduled", "True")

    def _sync_ready(self, pod: dict[str, Any], nodes: dict[str, Any]) -> None:
        if (pod.get("status") or {}).get("phase") != "Running":
            return
        desired = self._desired_ready(pod, nodes)
        if desired == is_ready(pod):
            return
        ns, name = self._pod_key(pod)

        def flip(p: dict[str, Any]) -> None:
            self._pod_conditions(p, ready=desired)
            for c in p["status"].get("containerStatuses") or []:
                c["ready"] = desired

        self._mutate("pods", ns, name, flip)
        if not desired:
            self._ctl_event(pod, "Unhealthy", "Readiness probe failed", "kubelet", "Warning")

    def _finish(self, pod: dict[str, Any], state: dict[str, Any]) -> None:
        """The container of a failing image ends (or, restartPolicy allowing, crash-loops)."""
        ns, name = self._pod_key(pod)
        index, image = fake_image(pod)
        creason, code, preason, pmessage = FAILING_IMAGES[image]
        policy = pod["spec"].get("restartPolicy", "Always")
        cname = pod["spec"]["containers"][index].get("name", "")
        terminated = {
            "terminated": {
                "reason": creason or "Error",
                "exitCode": code if code is not None else 137,
                "startedAt": now_iso(),
                "finishedAt": now_iso(),
            }
        }
        restarts = not preason and (
            policy == "Always" or (policy == "OnFailure" and code not in (0, None))
        )
        state.update(stage="done")
        if restarts:

            def crashloop(p: dict[str, Any]) -> None:
                cs = p["status"]["containerStatuses"][index]
                cs.update(
                    ready=False,
                    started=False,
                    restartCount=cs.get("restartCount", 0) + 1,
                    lastState=terminated,
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off 10s restarting failed container={cname} pod={name}",
                        }
                    },
                )
                for c in p["status"]["containerStatuses"]:
                    c["ready"] = False
                self._pod_conditions(p, ready=False)

            self._mutate("pods", ns, name, crashloop)
            self._ctl_event(
                pod,
                "BackOff",
                f"Back-off restarting failed container {cname} in pod {name}_{ns}",
                "kubelet",
                "Warning",
            )
            return

        def end(p: dict[str, Any]) -> None:
            status = p["status"]
            status["phase"] = "Succeeded" if code == 0 else "Failed"
            if preason:
                status["reason"], status["message"] = preason, pmessage
            for i, c in enumerate(status.get("containerStatuses") or []):
                c.update(ready=False, started=False)
                if i == index or preason:
                    c["state"] = copy.deepcopy(terminated)
            self._pod_conditions(p, ready=False, reason="PodCompleted" if code == 0 else "")

        self._mutate("pods", ns, name, end)
        if code != 0:
            self._ctl_event(
                pod,
                preason or "BackOff",
                pmessage or f"container exited: {creason}",
                "kubelet",
                "Warning",
            )

    # ------------------------------------------------------------ garbage collector

    def _run_gc(self) -> None:
        dependents: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for key, obj in list(self.objects.items()):
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents[ref.get("uid", "")].append(key)
        for key, obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not refs or deleting(obj) or key not in self.objects:
                continue
            owners = [self.objects.get(self.uids.get(r.get("uid", ""), ("", "", ""))) for r in refs]
            live = [o for o in owners if o is not None]
            foreground = [
                o
                for o in live
                if deleting(o) and "foregroundDeletion" in (o["metadata"].get("finalizers") or [])
            ]
            if not live:
                self._delete(
                    self.kinds[key[0]], key[1], key[2], {"propagationPolicy": "Background"}
                )
            elif len(foreground) == len(live):
                self._delete(
                    self.kinds[key[0]], key[1], key[2], {"propagationPolicy": "Foreground"}
                )
        for key, obj in list(self.objects.items()):
            finalizers = obj["metadata"].get("finalizers") or []
            if not deleting(obj) or not finalizers:
                continue
            uid = obj["metadata"].get("uid", "")
            remaining = [k for k in dependents.get(uid, []) if k in self.objects]
            drop = None
            if "foregroundDeletion" in finalizers and not remaining:
                drop = "foregroundDeletion"
            elif "orphan" in finalizers:
                for dep in remaining:
                    self._mutate(
                        dep[0],
                        dep[1],
                        dep[2],
                        lambda d, uid=uid: d["metadata"].update(
                            ownerReferences=[
                                r
                                for r in d["metadata"].get("ownerReferences") or []
                                if r.get("uid") != uid
                            ]
                        ),
                    )
                drop = "orphan"
            if drop:
                self._mutate(
                    key[0],
                    key[1],
                    key[2],
                    lambda o, drop=drop: o["metadata"].update(
                        finalizers=[f for f in o["metadata"]["finalizers"] if f != drop]
                    ),
                )
                self._finish_deletion(*key)

    def _run_namespaces(self) -> None:
        for ns in self._of("namespaces"):
            if not deleting(ns):
                continue
            name = ns["metadata"]["name"]
            contents = [k for k in list(self.objects) if k[1] == name]
            for key in contents:
                obj = self.objects.get(key)
                if obj is not None and not deleting(obj):
                    self._delete(self.kinds[key[0]], key[1], key[2], {})
            if not contents and not ns["metadata"].get("finalizers"):
                self._remove("namespaces", "", name)

    # ------------------------------------------------------------ Deployments

    def _run_deployments(self, now: float) -> None:
        for d in self._of("deployments"):
            if not deleting(d):
                self._reconcile_deployment(d, now)

    def _owned(self, rid: str, owner: dict[str, Any]) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in self._of(rid, owner["metadata"].get("namespace", ""))
            if controller_uid(o) == uid
        ]

    def _scale_rs(self, d: dict[str, Any], rs: dict[str, Any], to: int) -> None:
        current = rs["spec"].get("replicas", 1)
        if current == to:
            return
        ns, name = rs["metadata"]["namespace"], rs["metadata"]["name"]

        def scale(o: dict[str, Any]) -> None:
            o["spec"]["replicas"] = to
            o["metadata"]["generation"] = o["metadata"].get("generation", 1) + 1
            annotations = o["metadata"].setdefault("annotations", {})
            annotations["deployment.kubernetes.io/desired-replicas"] = str(
                d["spec"].get("replicas", 1)
            )

        self._mutate("replicasets", ns, name, scale)
        rs["spec"]["replicas"] = to
        verb = "up" if to > current else "down"
        self._ctl_event(
            d,
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {name} from {current} to {to}",
            "deployment-controller",
        )

    def _reconcile_deployment(self, d: dict[str, Any], now: float) -> None:
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        spec = d.get("spec") or {}
        replicas = spec.get("replicas", 1)
        template = spec.get("template") or {}
        pod_hash = short_hash(template)
        owned = sorted(
            self._owned("replicasets", d),
            key=lambda r: int(
                (r["metadata"].get("annotations") or {}).get(
                    "deployment.kubernetes.io/revision", "0"
                )
            ),
        )
        revisions = [
            int(
                (r["metadata"].get("annotations") or {}).get(
                    "deployment.kubernetes.io/revision", "0"
                )
            )
            for r in owned
        ]
        new = next(
            (
                r
                for r in owned
                if (r["metadata"].get("labels") or {}).get("pod-template-hash") == pod_hash
            ),
            None,
        )
        created = False
        if new is None and not spec.get("paused"):
            rs_template = copy.deepcopy(template)
            rs_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = (
                pod_hash
            )
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
            body = {
                "metadata": {
                    "name": f"{name}-{pod_hash}",
                    "labels": dict(rs_template["metadata"]["labels"]),
                    "annotations": {
                        "deployment.kubernetes.io/revision": str(max(revisions, default=0) + 1),
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                    },
                    "ownerReferences": [owner_ref(d)],
                },
                "spec": {
                    "replicas": 0,
                    "minReadySeconds": spec.get("minReadySeconds", 0),
                    "selector": selector,
                    "template": rs_template,
                },
            }
            try:
                self._create(self.kinds["replicasets"], ns, body)
            except ApiError as exc:
                self._ctl_event(d, "FailedCreate", str(exc), "deployment-controller", "Warning")
                return
            new = self.objects[("replicasets", ns, f"{name}-{pod_hash}")]
            owned.append(new)
            created = True
        elif new is not None and new is not owned[-1] and not spec.get("paused"):
            # Rolled back to an older template: that ReplicaSet becomes the newest revision.
            rev = str(max(revisions, default=0) + 1)
            self._mutate(
                "replicasets",
                ns,
                new["metadata"]["name"],
                lambda o: (
                    o["metadata"]
                    .setdefault("annotations", {})
                    .update({"deployment.kubernetes.io/revision": rev})
                ),
            )
            new = self.objects[("replicasets", ns, new["metadata"]["name"])]
            owned = [
                r
                for r in owned
                if r is not new and r["metadata"]["name"] != new["metadata"]["name"]
            ] + [new]
        olds = [r for r in owned if new is None or r["metadata"]["name"] != new["metadata"]["name"]]
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        ru = strategy.get("rollingUpdate") or {}
        max_surge = int_or_percent(ru.get("maxSurge", "25%"), replicas, True) if rolling else 0
        max_unavailable = (
            int_or_percent(ru.get("maxUnavailable", "25%"), replicas, False)
            if rolling
            else replicas
        )
        if rolling and max_surge == 0 and max_unavailable == 0:
            max_unavailable = 1

        def spec_replicas(rs: dict[str, Any]) -> int:
            return int(rs["spec"].get("replicas", 1))

        def available(rs: dict[str, Any]) -> int:
            return int((rs.get("status") or {}).get("availableReplicas", 0))

        if new is not None and not spec.get("paused"):
            active_olds = [r for r in olds if spec_replicas(r) > 0]
            if not rolling:
                for rs in active_olds:
                    self._scale_rs(d, rs, 0)
                old_pods = any(
                    controller_uid(p) in {r["metadata"]["uid"] for r in olds}
                    for p in self._of("pods", ns)
                    if (p.get("status") or {}).get("phase") not in TERMINAL
                )
                if not active_olds and not old_pods:
                    self._scale_rs(d, new, replicas)
            elif not active_olds:
                self._scale_rs(d, new, replicas)
            else:
                total = sum(spec_replicas(r) for r in owned)
                new_count = spec_replicas(new)
                if new_count > replicas:
                    self._scale_rs(d, new, replicas)
                elif total < replicas + max_surge and new_count < replicas:
                    self._scale_rs(d, new, min(replicas, new_count + replicas + max_surge - total))
                min_available = replicas - max_unavailable
                new_unavailable = spec_replicas(new) - available(new)
                all_pods = sum(spec_replicas(r) for r in owned)
                budget = all_pods - min_available - new_unavailable
                for rs in active_olds:
                    if budget <= 0:
                        break
                    unhealthy = spec_replicas(rs) - available(rs)
                    if unhealthy > 0:
                        step = min(budget, unhealthy)
                        self._scale_rs(d, rs, spec_replicas(rs) - step)
                        budget -= step
                budget = sum(available(r) for r in owned) - min_available
                for rs in active_olds:
                    if budget <= 0:
                        break
                    step = min(spec_replicas(rs), budget)
                    if step > 0:
                        self._scale_rs(d, rs, spec_replicas(rs) - step)
                        budget -= step
            # Old ReplicaSets beyond revisionHistoryLimit go.
            limit = spec.get("revisionHistoryLimit", 10)
            idle = [
                r
                for r in olds
                if spec_replicas(r) == 0 and not (r.get("status") or {}).get("replicas")
            ]
            for rs in idle[: max(0, len(idle) - limit)]:
                self._delete(self.kinds["replicasets"], ns, rs["metadata"]["name"], {})
        self._deployment_status(d, new, now, created, max_unavailable)

    def _deployment_status(
        self,
        d: dict[str, Any],
        new: dict[str, Any] | None,
        now: float,
        created: bool,
        max_unavailable: int,
    ) -> None:
        ns, name, uid = d["metadata"]["namespace"], d["metadata"]["name"], d["metadata"]["uid"]
        spec = d.get("spec") or {}
        replicas = spec.get("replicas", 1)
        owned = [
            self.objects.get(("replicasets", ns, r["metadata"]["name"]), r)
            for r in self._owned("replicasets", d)
        ]

        def st(rs: dict[str, Any] | None, key: str) -> int:
            return int(((rs or {}).get("status") or {}).get(key, 0))

        total = sum(st(r, "replicas") for r in owned)
        ready = sum(st(r, "readyReplicas") for r in owned)
        avail = sum(st(r, "availableReplicas") for r in owned)
        updated = st(new, "replicas")
        desired_total = sum(int(r["spec"].get("replicas", 1)) for r in owned)
        new_name = new["metadata"]["name"] if new else ""
        generation = d["metadata"].get("generation", 1)
        # Progress, as the deployment controller counts it: a new ReplicaSet or spec,
        # more updated/ready/available pods, or fewer old ones.
        numbers = (new_name, generation, updated, ready, avail, total - updated)
        progress = self._progress.get(uid)
        if progress is None or created:
            progressed = True
        else:
            old = progress[0]
            progressed = (
                old[:2] != numbers[:2]
                or numbers[2] > old[2]
                or numbers[3] > old[3]
                or numbers[4] > old[4]
                or numbers[5] < old[5]
            )
        last = now if progressed or progress is None else progress[1]
        self._progress[uid] = (numbers, last)
        complete = (
            new is not None and updated == replicas and total == replicas and avail >= replicas
        )
        deadline = spec.get("progressDeadlineSeconds", 600) * self.progress_deadline_factor
        failure = condition(new or {}, "ReplicaFailure")

        def write(o: dict[str, Any]) -> None:
            status = copy.deepcopy(o.get("status") or {})
            status.update(
                observedGeneration=generation,
                replicas=total,
                updatedReplicas=updated,
                readyReplicas=ready,
                availableReplicas=avail,
                unavailableReplicas=max(0, desired_total - avail)
                if desired_total
                else max(0, replicas - avail),
            )
            status = drop_zeros(
                status,
                (
                    "replicas",
                    "updatedReplicas",
                    "readyReplicas",
                    "availableReplicas",
                    "unavailableReplicas",
                ),
            )
            if avail >= replicas - max_unavailable:
                set_condition(
                    status,
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    touch=True,
                )
            else:
                set_condition(
                    status,
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    touch=True,
                )
            current = condition({"status": status}, "Progressing") or {}
            if spec.get("paused"):
                set_condition(
                    status,
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    touch=True,
                )
            elif complete:
                set_condition(
                    status,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{new_name}" has successfully progressed.',
                    touch=True,
                )
            elif created:
                set_condition(
                    status,
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    f'Created new replica set "{new_name}"',
                    touch=True,
                )
            elif progressed and new_name:
                set_condition(
                    status,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{new_name}" is progressing.',
                    touch=True,
                )
                c = condition({"status": status}, "Progressing")
                assert c is not None
                c["lastUpdateTime"] = now_iso()
            elif current.get("reason") == "NewReplicaSetAvailable":
                pass  # a finished rollout stays finished when a pod later fails
            elif now - last > deadline:
                set_condition(
                    status,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{new_name}" has timed out progressing.',
                    touch=True,
                )
            if failure and failure.get("status") == "True":
                set_condition(
                    status,
                    "ReplicaFailure",
                    "True",
                    "FailedCreate",
                    failure.get("message", ""),
                    touch=True,
                )
            else:
                status["conditions"] = [
                    c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"
                ]
            o["status"] = status
            if new is not None:
                revision = (new["metadata"].get("annotations") or {}).get(
                    "deployment.kubernetes.io/revision"
                )
                if revision:
                    o["metadata"].setdefault("annotations", {})[
                        "deployment.kubernetes.io/revision"
                    ] = revision

        self._mutate("deployments", ns, name, write)

    # ------------------------------------------------------------ ReplicaSets

    def _pod_from_template(
        self, owner: dict[str, Any], template: dict[str, Any], name: str = ""
    ) -> dict[str, Any]:
        meta = copy.deepcopy(template.get("metadata") or {})
        meta["ownerReferences"] = [owner_ref(owner)]
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = owner["metadata"]["name"] + "-"
        return {"metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}

    def _available(self, pod: dict[str, Any], min_ready: int) -> bool:
        if not active(pod) or not is_ready(pod):
            return False
        if not min_ready:
            return True
        since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
        return time.time() - since >= min_ready

    def _run_replicasets(self) -> None:
        for rs in self._of("replicasets"):
            if deleting(rs):
                continue
            ns, name = rs["metadata"]["namespace"], rs["metadata"]["name"]
            want = int(rs["spec"].get("replicas", 1))
            pods = [p for p in self._owned("pods", rs) if active(p)]
            failure: str | None = None
            for _ in range(max(0, want - len(pods))):
                try:
                    pod = self._create(
                        self.kinds["pods"],
                        ns,
                        self._pod_from_template(rs, rs["spec"].get("template") or {}),
                    )
                except ApiError as exc:
                    failure = str(exc)
                    self._ctl_event(
                        rs,
                        "FailedCreate",
                        f"Error creating: {exc}",
                        "replicaset-controller",
                        "Warning",
                    )
                    break
                pods.append(pod)
                self._ctl_event(
                    rs,
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    "replicaset-controller",
                )
            if len(pods) > want:

                def rank(p: dict[str, Any]) -> tuple[Any, ...]:
                    status = p.get("status") or {}
                    return (
                        bool((p.get("spec") or {}).get("nodeName")),
                        status.get("phase") == "Running",
                        is_ready(p),
                        -parse_time(p["metadata"].get("creationTimestamp")),
                    )

                doomed = sorted(pods, key=rank)[: len(pods) - want]
                for pod in doomed:
                    self._delete(self.kinds["pods"], ns, pod["metadata"]["name"], {})
                    self._ctl_event(
                        rs,
                        "SuccessfulDelete",
                        f"Deleted pod: {pod['metadata']['name']}",
                        "replicaset-controller",
                    )
                names = {p["metadata"]["name"] for p in doomed}
                pods = [p for p in pods if p["metadata"]["name"] not in names]
            pods = [self.objects.get(("pods", ns, p["metadata"]["name"]), p) for p in pods]
            min_ready = int(rs["spec"].get("minReadySeconds", 0))

            def write(
                o: dict[str, Any],
                pods: list[dict[str, Any]] = pods,
                failure: str | None = failure,
                min_ready: int = min_ready,
            ) -> None:
                status = {k: v for k, v in (o.get("status") or {}).items() if k == "conditions"}
                status.update(
                    replicas=len(pods),
                    fullyLabeledReplicas=len(pods),
                    readyReplicas=sum(1 for p in pods if is_ready(p)),
                    availableReplicas=sum(1 for p in pods if self._available(p, min_ready)),
                    observedGeneration=o["metadata"].get("generation", 1),
                )
                if failure:
                    set_condition(status, "ReplicaFailure", "True", "FailedCreate", failure)
                elif len(pods) == int(o["spec"].get("replicas", 1)):
                    status["conditions"] = [
                        c
                        for c in status.get("conditions") or []
                        if c.get("type") != "ReplicaFailure"
                    ]
                if not status.get("conditions"):
                    status.pop("conditions", None)
                o["status"] = drop_zeros(
                    status, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas")
                )

            self._mutate("replicasets", ns, name, write)

    # ------------------------------------------------------------ StatefulSets

    def _run_statefulsets(self) -> None:
        for sts in self._of("statefulsets"):
            if not deleting(sts):
                self._reconcile_statefulset(sts)

    def _sts_revision(self, sts: dict[str, Any]) -> str:
        """The ControllerRevision for the current template (created if new)."""
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        template = sts["spec"].get("template") or {}
        rev_name = f"{name}-{short_hash(template)}"
        if ("controllerrevisions", ns, rev_name) not in self.objects:
            numbers = [int(r.get("revision", 0)) for r in self._owned("controllerrevisions", sts)]
            self._create(
                self.kinds["controllerrevisions"],
                ns,
                {
                    "metadata": {
                        "name": rev_name,
                        "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                        "ownerReferences": [owner_ref(sts)],
                    },
                    "data": {"spec": {"template": copy.deepcopy(template)}},
                    "revision": max(numbers, default=0) + 1,
                },
                admit=False,
            )
        return rev_name

    def _reconcile_statefulset(self, sts: dict[str, Any]) -> None:
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        spec = sts["spec"]
        replicas = int(spec.get("replicas", 1))
        update_rev = self._sts_revision(sts)
        current_rev = (sts.get("status") or {}).get("currentRevision") or update_rev
        ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        strategy = spec.get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        pattern = re.compile(rf"^{re.escape(name)}-(\d+)$")
        pods: dict[int, dict[str, Any]] = {}
        for pod in self._owned("pods", sts):
            m = pattern.match(pod["metadata"]["name"])
            if m:
                pods[int(m.group(1))] = pod

        def revision(p: dict[str, Any]) -> str:
            return (p["metadata"].get("labels") or {}).get("controller-revision-hash", "")

        def healthy(p: dict[str, Any] | None) -> bool:
            return bool(
                p is not None
                and not deleting(p)
                and (p.get("status") or {}).get("phase") == "Running"
                and is_ready(p)
            )

        busy = False
        # Failed pods are replaced.
        for pod in list(pods.values()):
            if (pod.get("status") or {}).get("phase") in TERMINAL and not deleting(pod):
                self._delete(self.kinds["pods"], ns, pod["metadata"]["name"], {})
                busy = True
        for i in range(replicas):
            pod = pods.get(i)
            if pod is None:
                rev = update_rev if (not rolling or i >= partition) else current_rev
                self._create_sts_pod(sts, i, rev)
                busy = True
                if ordered:
                    break
                continue
            if ordered and not healthy(pod):
                busy = True
                break
        condemned = sorted((i for i in pods if i >= replicas), reverse=True)
        if condemned and not (ordered and busy):
            if ordered:
                if not any(deleting(pods[i]) for i in condemned):
                    self._delete(self.kinds["pods"], ns, pods[condemned[0]]["metadata"]["name"], {})
            else:
                for i in condemned:
                    if not deleting(pods[i]):
                        self._delete(self.kinds["pods"], ns, pods[i]["metadata"]["name"], {})
            busy = True
        if rolling and not busy and all(healthy(pods.get(i)) for i in range(replicas)):
            for i in reversed(range(partition, replicas)):
                pod = pods[i]
                if revision(pod) != update_rev:
                    self._delete(self.kinds["pods"], ns, pod["metadata"]["name"], {})
                    break
        self._claims(sts, replicas)
        live = [
            p
            for p in self._owned("pods", sts)
            if pattern.match(p["metadata"]["name"]) and not deleting(p)
        ]
        min_ready = int(spec.get("minReadySeconds", 0))
        count = len(live)
        ready = sum(1 for p in live if is_ready(p))
        updated = sum(1 for p in live if revision(p) == update_rev)
        current = sum(1 for p in live if revision(p) == current_rev)
        if updated == replicas and ready == replicas and count == replicas:
            current_rev, current = update_rev, updated

        def write(o: dict[str, Any]) -> None:
            status = {
                "observedGeneration": o["metadata"].get("generation", 1),
                "replicas": count,
                "readyReplicas": ready,
                "currentReplicas": current,
                "updatedReplicas": updated,
                "availableReplicas": sum(1 for p in live if self._available(p, min_ready)),
                "currentRevision": current_rev,
                "updateRevision": update_rev,
                "collisionCount": 0,
            }
            o["status"] = drop_zeros(
                status, ("readyReplicas", "currentReplicas", "updatedReplicas")
            )

        self._mutate("statefulsets", ns, name, write)

    def _create_sts_pod(self, sts: dict[str, Any], ordinal: int, rev: str) -> None:
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        stored = self.objects.get(("controllerrevisions", ns, rev))
        template = (
            ((stored or {}).get("data") or {}).get("spec", {}).get("template")
            or sts["spec"].get("template")
            or {}
        )
        pod_name = f"{name}-{ordinal}"
        body = self._pod_from_template(sts, template, pod_name)
        labels = body["metadata"].setdefault("labels", {})
        labels.update(
            {
                "controller-revision-hash": rev,
                "statefulset.kubernetes.io/pod-name": pod_name,
                "apps.kubernetes.io/pod-index": str(ordinal),
            }
        )
        body["spec"]["hostname"] = pod_name
        if sts["spec"].get("serviceName"):
            body["spec"]["subdomain"] = sts["spec"]["serviceName"]
        volumes = body["spec"].setdefault("volumes", [])
        for claim in sts["spec"].get("volumeClaimTemplates") or []:
            claim_name = claim["metadata"]["name"]
            volumes.append(
                {
                    "name": claim_name,
                    "persistentVolumeClaim": {"claimName": f"{claim_name}-{pod_name}"},
                }
            )
        if not volumes:
            del body["spec"]["volumes"]
        try:
            self._create(self.kinds["pods"], ns, body)
        except ApiError as exc:
            self._ctl_event(
                sts,
                "FailedCreate",
                f"create Pod {pod_name} in StatefulSet {name} failed error: {exc}",
                "statefulset-controller",
                "Warning",
            )
            return
        self._ctl_event(
            sts,
            "SuccessfulCreate",
            f"create Pod {pod_name} in StatefulSet {name} successful",
            "statefulset-controller",
        )

    def _claims(self, sts: dict[str, Any], replicas: int) -> None:
        """PersistentVolumeClaims from volumeClaimTemplates (Bound at once, kept on scale-down)."""
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        for claim in sts["spec"].get("volumeClaimTemplates") or []:
            for i in range(replicas):
                claim_name = f"{claim['metadata']['name']}-{name}-{i}"
                if ("persistentvolumeclaims", ns, claim_name) in self.objects:
                    continue
                body = copy.deepcopy(claim)
                body["metadata"] = {
                    "name": claim_name,
                    "labels": dict((sts["spec"].get("selector") or {}).get("matchLabels") or {}),
                }
                self._create(self.kinds["persistentvolumeclaims"], ns, body, admit=False)
                requested = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
                self._mutate(
                    "persistentvolumeclaims",
                    ns,
                    claim_name,
                    lambda c, requested=requested: c.update(
                        status={
                            "phase": "Bound",
                            "accessModes": (c.get("spec") or {}).get("accessModes")
                            or ["ReadWriteOnce"],
                            "capacity": dict(requested),
                        }
                    ),
                )

    # ------------------------------------------------------------ Services → Endpoints

    def _run_endpoints(self) -> None:
        services = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s for s in self._of("services")
        }
        for key in list(self._managed_endpoints):
            if key not in services or not (services[key].get("spec") or {}).get("selector"):
                self._managed_endpoints.discard(key)
                if ("endpoints", *key) in self.objects:
                    self._remove("endpoints", *key)
        for (ns, _), svc in services.items():
            selector = (svc.get("spec") or {}).get("selector")
            if not selector or deleting(svc):
                continue
            pods = [
                p
                for p in self._of("pods", ns)
                if match_selector({"matchLabels": selector}, p["metadata"].get("labels") or {})
                and (p.get("status") or {}).get("podIP")
                and (p.get("status") or {}).get("phase") not in TERMINAL
            ]
            self._endpoints(svc, [p for p in pods if not deleting(p)])
            self._endpoint_slice(svc, pods)

    @staticmethod
    def _target_port(port: dict[str, Any], pod: dict[str, Any]) -> int | None:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            return target
        if isinstance(target, str) and target.isdigit():
            return int(target)
        for c in (pod.get("spec") or {}).get("containers") or []:
            for cp in c.get("ports") or []:
                if cp.get("name") == target:
                    return int(cp["containerPort"])
        return None

    @staticmethod
    def _address(pod: dict[str, Any]) -> dict[str, Any]:
        meta = pod["metadata"]
        address = {
            "ip": pod["status"]["podIP"],
            "nodeName": (pod.get("spec") or {}).get("nodeName"),
            "targetRef": {
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
        }
        if (pod.get("spec") or {}).get("hostname"):
            address["hostname"] = pod["spec"]["hostname"]
        return address

    def _endpoints(self, svc: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        publish_all = bool(svc["spec"].get("publishNotReadyAddresses"))
        groups: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}
        for pod in sorted(pods, key=lambda p: p["status"]["podIP"]):
            ports = []
            for port in svc["spec"].get("ports") or []:
                target = self._target_port(port, pod)
                if target is None:
                    continue
                entry = {"port": target, "protocol": port.get("protocol", "TCP")}
                if port.get("name"):
                    entry["name"] = port["name"]
                ports.append(entry)
            key = tuple(sorted(json_key(p) for p in ports))
            group = groups.setdefault(
                key, {"addresses": [], "notReadyAddresses": [], "ports": ports}
            )
            ready = publish_all or is_ready(pod)
            group["addresses" if ready else "notReadyAddresses"].append(self._address(pod))
        subsets = []
        for group in groups.values():
            subset = {k: v for k, v in group.items() if v}
            if not group["ports"]:
                subset.pop("ports", None)
            subsets.append(subset)
        body: dict[str, Any] = {
            "metadata": {"name": name, "labels": dict(svc["metadata"].get("labels") or {})},
        }
        if subsets:
            body["subsets"] = subsets
        self._managed_endpoints.add((ns, name))
        current = self.objects.get(("endpoints", ns, name))
        if current is None:
            self._create(self.kinds["endpoints"], ns, body, admit=False)
            return

        def write(o: dict[str, Any]) -> None:
            o["metadata"]["labels"] = body["metadata"]["labels"]
            if subsets:
                o["subsets"] = subsets
            else:
                o.pop("subsets", None)

        self._mutate("endpoints", ns, name, write)

    def _endpoint_slice(self, svc: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        slice_name = f"{name}-{short_hash(svc['metadata']['uid'], 5)}"
        ports = []
        for port in svc["spec"].get("ports") or []:
            target = self._target_port(port, pods[0]) if pods else None
            entry: dict[str, Any] = {
                "protocol": port.get("protocol", "TCP"),
                "name": port.get("name", ""),
            }
            if target is not None:
                entry["port"] = target
            ports.append(entry)
        endpoints = []
        for pod in sorted(pods, key=lambda p: p["status"]["podIP"]):
            ready = is_ready(pod)
            address = self._address(pod)
            endpoint: dict[str, Any] = {
                "addresses": [address["ip"]],
                "conditions": {
                    "ready": ready and not deleting(pod),
                    "serving": ready,
                    "terminating": deleting(pod),
                },
                "targetRef": address["targetRef"],
            }
            if address.get("nodeName"):
                endpoint["nodeName"] = address["nodeName"]
            endpoints.append(endpoint)
        labels = {
            **(svc["metadata"].get("labels") or {}),
            "kubernetes.io/service-name": name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }
        current = self.objects.get(("endpointslices", ns, slice_name))
        if current is None:
            self._create(
                self.kinds["endpointslices"],
                ns,
                {
                    "metadata": {
                        "name": slice_name,
                        "labels": labels,
                        "ownerReferences": [owner_ref(svc)],
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": ports,
                },
                admit=False,
            )
            return

        def write(o: dict[str, Any]) -> None:
            o["metadata"]["labels"] = labels
            o["endpoints"] = endpoints
            o["ports"] = ports

        self._mutate("endpointslices", ns, slice_name, write)


def json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
