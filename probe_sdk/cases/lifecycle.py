"""Workload lifecycle probe: a Pod, Deployment or StatefulSet from creation to deletion.

Walks the control-plane chain a user's release depends on (apiserver → etcd →
scheduler/controllers → kubelet → container runtime) and times each step:

* `pod`: create, scheduled, running, ready, delete, gone.
* `deployment`: create, available, update (a rollout), scale (+1), delete, gone.
* `statefulset`: create (with its headless Service), ready (pods in order),
  update (a rolling update), scale (+1), delete, gone.

A step that does not reach its state in time fails with what the cluster
showed last: the pod's phase, failing conditions, container reasons (e.g.
ImagePullBackOff, FailedCreatePodSandBox) and its recent warning events.
What the case created is deleted even when a step fails.

| env | default | meaning |
| --- | --- | --- |
| `LIFECYCLE_KIND` | `pod` | `pod`, `deployment` or `statefulset` |
| `LIFECYCLE_REPLICAS` | `2` | replicas of the Deployment/StatefulSet (scaled to one more) |

plus the Kubernetes env shared by all cases (see `probe_sdk.cases._kube`):
`KUBECONFIG`, `PROBE_NAMESPACE`, `PROBE_IMAGE`, `STEP_THRESHOLD_MS` /
`THRESHOLD_<STEP>_MS`, `WAIT_TIMEOUT_SECONDS`, `REQUEST_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Tuple

from probe_sdk import Probe
from probe_sdk.cases import _env, _kube
from probe_sdk.cases._kube import Kube

KINDS = ("pod", "deployment", "statefulset")


def pod_template(app: str, case: str) -> Dict[str, Any]:
    pod = _kube.pod_manifest("", case, extra_labels={"app": app})
    pod["spec"]["restartPolicy"] = "Always"
    return {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}


def deployment_manifest(
    name: str, replicas: int, case: str = "deployment-lifecycle"
) -> Dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _kube.labels(case)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            # fail fast rather than wait out the default 10 minutes
            "progressDeadlineSeconds": max(30, int(_kube.wait_timeout())),
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": pod_template(name, case),
        },
    }


def statefulset_manifests(name: str, replicas: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    case = "statefulset-lifecycle"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _kube.labels(case)},
        "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"port": 80}]},
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": _kube.labels(case)},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, case),
        },
    }
    return service, statefulset


def pods_state(kube: Kube, ns: str, app: str) -> str:
    """The first pod that is not ready, with its reasons and events: where a rollout is stuck."""
    pods = kube.items(_kube.path(ns, "pods"), "app=%s" % app)
    waiting = [p for p in pods if not _kube.pod_condition(p, "Ready")]
    if not pods:
        return "no pods"
    if not waiting:
        return "%d pods ready" % len(pods)
    first = waiting[0]
    name = first["metadata"]["name"]
    return "%d of %d pods not ready; %s: %s" % (
        len(waiting),
        len(pods),
        name,
        _kube.with_events(kube, ns, name, _kube.pod_state(first)),
    )


def rolled_out(kind: str, obj: Dict[str, Any], replicas: int) -> Tuple[bool, str]:
    """kubectl rollout status, for a Deployment or StatefulSet object."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        return False, "controller has not seen generation %s yet" % meta.get("generation")
    updated = status.get("updatedReplicas", 0)
    ready = status.get("readyReplicas", 0)
    total = status.get("replicas", 0)
    summary = "%d/%d updated, %d ready, %d total" % (updated, replicas, ready, total)
    if kind == "deployment":
        for condition in status.get("conditions") or []:
            if condition.get("reason") == "ProgressDeadlineExceeded":
                raise _kube.NotReady("rollout stuck: %s" % condition.get("message", ""))
        done = (
            spec.get("replicas") == replicas
            and updated == replicas
            and total == replicas
            and status.get("availableReplicas", 0) == replicas
        )
    else:
        done = (
            spec.get("replicas") == replicas
            and updated == replicas
            and ready == replicas
            and total == replicas
            and status.get("currentRevision") == status.get("updateRevision")
        )
    return done, summary


def wait_rolled_out(kube: Kube, ns: str, kind: str, name: str, replicas: int) -> None:
    plural = kind + "s"
    object_path = _kube.path(ns, plural, name, "apps/v1")

    def check() -> Tuple[bool, str]:
        obj = kube.get(object_path)
        if obj is None:
            return False, "%s does not exist" % kind
        done, summary = rolled_out(kind, obj, replicas)
        return done, summary if done else "%s; %s" % (summary, pods_state(kube, ns, name))

    _kube.wait_for("%s %s with %d replicas" % (kind, name, replicas), check)


def wait_pods_gone(kube: Kube, ns: str, app: str) -> None:
    def check() -> Tuple[bool, str]:
        left = kube.items(_kube.path(ns, "pods"), "app=%s" % app)
        return not left, "%d pods left" % len(left)

    _kube.wait_for("pods of %s deleted" % app, check)


def run_workload(probe: Probe, kube: Kube, ns: str, kind: str, replicas: int) -> None:
    name = _kube.unique_name(kind[:6])
    plural = kind + "s"
    object_path = _kube.path(ns, plural, name, "apps/v1")
    created: List[str] = []  # paths to delete if a step fails

    def step(label: str) -> Any:
        return probe.step(label, threshold_ms=_kube.threshold(label))

    try:
        with step("create"):
            # Each path is noted before its create: one that timed out may still exist.
            if kind == "deployment":
                body = deployment_manifest(name, replicas)
            else:
                service, body = statefulset_manifests(name, replicas)
                created.append(_kube.path(ns, "services", name))
                kube.create(_kube.path(ns, "services"), service)
            created.append(object_path)
            kube.create(_kube.path(ns, plural, api_version="apps/v1"), body)
        with step("available" if kind == "deployment" else "ready"):
            wait_rolled_out(kube, ns, kind, name, replicas)
        with step("update"):
            stamp = {"kubeprobe.io/updated-at": str(int(time.time()))}
            kube.patch(object_path, {"spec": {"template": {"metadata": {"annotations": stamp}}}})
            wait_rolled_out(kube, ns, kind, name, replicas)
        with step("scale"):
            kube.patch(object_path, {"spec": {"replicas": replicas + 1}})
            wait_rolled_out(kube, ns, kind, name, replicas + 1)
        with step("delete"):
            for item in reversed(created):
                kube.delete(item)
            created.clear()
        with step("gone"):
            _kube.wait_gone(kube, object_path, "%s %s" % (kind, name))
            wait_pods_gone(kube, ns, name)
    finally:
        if created:
            with _kube.cleanup_step(probe, "cleanup"):
                for item in reversed(created):
                    kube.delete(item)


def main() -> None:
    with Probe() as probe:
        kind = _env.text("LIFECYCLE_KIND", "pod").lower()
        if kind not in KINDS:
            raise _env.ConfigError(
                "LIFECYCLE_KIND must be one of %s, got %r" % (", ".join(KINDS), kind)
            )
        replicas = int(_env.number("LIFECYCLE_REPLICAS", 2))
        if replicas < 1:
            raise _env.ConfigError("LIFECYCLE_REPLICAS must be at least 1, got %d" % replicas)
        kube = _kube.connect()
        ns = _kube.namespace()
        probe.metric("replicas", 1 if kind == "pod" else replicas)
        if kind == "pod":
            _kube.run_pod_lifecycle(probe, kube, ns)
        else:
            run_workload(probe, kube, ns, kind, replicas)


if __name__ == "__main__":
    main()
