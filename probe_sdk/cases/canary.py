"""Canary release probe: deploy an app behind a Service, roll out a new version, scale up and down.

Does what a release platform does to a cluster and checks, after every step,
that the Deployment is rolled out and that the Service's endpoints (its
EndpointSlices) are exactly the ready pods of the app (so traffic would reach
the new version and only ready pods). The Deployment and Service are deleted at the end,
also after a failed step.

Steps: deploy, ready, endpoints, rollout, endpoints after rollout, scale up,
endpoints after scale up, scale down, endpoints after scale down, delete, gone.

| env | default | meaning |
| --- | --- | --- |
| `CANARY_IMAGE` | `PROBE_IMAGE` | image of the first version |
| `CANARY_NEW_IMAGE` | `CANARY_IMAGE` | image rolled out as the new version (same image: a restart rollout) |
| `CANARY_REPLICAS` | `1` | replicas of the canary |
| `CANARY_SCALE_TO` | `3` | replicas during the scale-up step |
| `CANARY_PORT` | `80` | Service and container port |

plus the Kubernetes env shared by all cases (see `probe_sdk.cases._kube`).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Tuple

from probe_sdk import Probe
from probe_sdk.cases import _env, _kube
from probe_sdk.cases._kube import Kube
from probe_sdk.cases.lifecycle import deployment_manifest, wait_pods_gone, wait_rolled_out

CASE = "canary-release"


def ready_pod_ips(kube: Kube, ns: str, app: str) -> List[str]:
    pods = kube.items(_kube.path(ns, "pods"), "app=%s" % app)
    return sorted(
        (p.get("status") or {}).get("podIP", "")
        for p in pods
        if _kube.pod_condition(p, "Ready") and not p["metadata"].get("deletionTimestamp")
    )


def slice_ips(slices: List[Dict[str, Any]]) -> Tuple[List[str], List[str]]:
    """(ready, not ready) addresses over a Service's EndpointSlices."""
    ready: List[str] = []
    not_ready: List[str] = []
    for item in slices:
        for endpoint in item.get("endpoints") or []:
            # The API: an unset `ready` is unknown, which consumers take as ready.
            is_ready = (endpoint.get("conditions") or {}).get("ready") is not False
            (ready if is_ready else not_ready).extend(endpoint.get("addresses") or [])
    return sorted(ready), sorted(not_ready)


def wait_endpoints(kube: Kube, ns: str, name: str, expected: int) -> None:
    """The Service routes to exactly the app's ready pods, and there are `expected` of them.

    Read from the Service's EndpointSlices, which kube-proxy and other data planes
    program from; the v1 Endpoints API is deprecated since Kubernetes 1.33 (the
    API server answers it with a deprecation warning) and may not be kept up.
    """
    slices_path = _kube.path(ns, "endpointslices", api_version="discovery.k8s.io/v1")

    def check() -> Tuple[bool, str]:
        slices = kube.items(slices_path, "kubernetes.io/service-name=%s" % name)
        if not slices:
            return False, "the Service has no EndpointSlice"
        ready, not_ready = slice_ips(slices)
        pods = ready_pod_ips(kube, ns, name)
        state = "endpoints %s (not ready %s), ready pods %s" % (ready, not_ready, pods)
        return len(ready) == expected and ready == pods, state

    _kube.wait_for("Service %s routes to %d ready pods" % (name, expected), check)


def main() -> None:
    with Probe() as probe:
        image = _env.text("CANARY_IMAGE", _kube.image())
        new_image = _env.text("CANARY_NEW_IMAGE", image)
        replicas = int(_env.number("CANARY_REPLICAS", 1))
        scale_to = int(_env.number("CANARY_SCALE_TO", 3))
        port = int(_env.number("CANARY_PORT", 80))
        if replicas < 1 or scale_to <= replicas:
            raise _env.ConfigError(
                "need CANARY_REPLICAS >= 1 and CANARY_SCALE_TO > CANARY_REPLICAS, got %d and %d"
                % (replicas, scale_to)
            )
        kube = _kube.connect()
        ns = _kube.namespace()
        name = _kube.unique_name("canary")
        deployment_path = _kube.path(ns, "deployments", name, "apps/v1")
        service_path = _kube.path(ns, "services", name)
        created: List[str] = []

        def step(label: str) -> Any:
            return probe.step(label, threshold_ms=_kube.threshold(label))

        deployment = deployment_manifest(name, replicas, CASE)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container.update({"image": image, "ports": [{"containerPort": port}]})
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": _kube.labels(CASE)},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]},
        }
        try:
            with step("deploy"):
                # Noted before each create: one that timed out may still exist.
                created.append(service_path)
                kube.create(_kube.path(ns, "services"), service)
                created.append(deployment_path)
                kube.create(_kube.path(ns, "deployments", api_version="apps/v1"), deployment)
            with step("ready"):
                wait_rolled_out(kube, ns, "deployment", name, replicas)
            with step("endpoints"):
                wait_endpoints(kube, ns, name, replicas)
            with step("rollout"):
                template = {
                    "metadata": {"annotations": {"kubeprobe.io/version": str(int(time.time()))}},
                    "spec": {"containers": [dict(container, image=new_image)]},
                }
                kube.patch(deployment_path, {"spec": {"template": template}})
                wait_rolled_out(kube, ns, "deployment", name, replicas)
            with step("endpoints after rollout"):
                wait_endpoints(kube, ns, name, replicas)
            for label, count in (("scale up", scale_to), ("scale down", replicas)):
                with step(label):
                    kube.patch(deployment_path, {"spec": {"replicas": count}})
                    wait_rolled_out(kube, ns, "deployment", name, count)
                with step("endpoints after " + label):
                    wait_endpoints(kube, ns, name, count)
            with step("delete"):
                for item in reversed(created):
                    kube.delete(item)
                created.clear()
            with step("gone"):
                _kube.wait_gone(kube, deployment_path, "deployment %s" % name)
                _kube.wait_gone(kube, service_path, "service %s" % name)
                wait_pods_gone(kube, ns, name)
        finally:
            if created:
                with _kube.cleanup_step(probe, "cleanup"):
                    for item in reversed(created):
                        kube.delete(item)


if __name__ == "__main__":
    main()
