"""What the Kubernetes case tests share (tests/cases/test_kube_*.py).

The built-in Kubernetes cases against the real control plane (tests/kube.py), over real HTTP.

Each case runs as its own process with the official kubernetes client, like
in a probe pod, and reports to a stand-in portal (tests/portal.py). The
cluster is a real kube-apiserver, controller-manager and scheduler with kwok
playing the kubelets; faults come from kwok Stages (`fault_image`), the real
scheduler, real RBAC, a stopped controller-manager or a MutatingAdmissionPolicy.
Where the happy paths run, they run as a service account holding exactly the
RBAC of deploy/kubernetes/probe-rbac.yaml, so that manifest is proven too.

Virtual and member clusters are more local API servers (`extra_clusters`),
lighter than the main one: `vc-a` has a scheduler and one kwok node but no
controller-manager, `vc-b` is etcd and kube-apiserver alone. KubeFed does not
run here: the federation tests play its sync controller (`FederationSync`).

What the tests against the fake asserted and these do not: the request log
(the create went to PROBE_NAMESPACE, one statefulset POST, two PATCHes, no
call before a configuration error, the pod path asked of a virtual cluster).
They assert what the cluster shows instead: events the real scheduler and
controllers wrote, a watch of the pods, the objects left, or, for
configuration errors, that no step ran.
"""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_local import LocalKube, free_port
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config import load_kube_config_from_dict

from tests.portal import ROOT
from tests.utils import wait_for

MANAGED = "app.kubernetes.io/managed-by=kubeprobe"
GROUPS = {
    "pods": "/api/v1",
    "services": "/api/v1",
    "configmaps": "/api/v1",
    "deployments": "/apis/apps/v1",
    "replicasets": "/apis/apps/v1",
    "statefulsets": "/apis/apps/v1",
}
RBAC = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "probe-rbac.yaml").read_text()))


def rbac_rules(kind: str, name: str) -> list[dict[str, Any]]:
    [doc] = [d for d in RBAC if d["kind"] == kind and d["metadata"]["name"] == name]
    return list(doc["rules"])


def case_env(kubeconfig: str, ns: str, tmp_path: Path, **env: str) -> dict[str, str]:
    config = tmp_path / f"kubeconfig-{uuid.uuid4().hex[:8]}"
    config.write_text(kubeconfig)
    return {
        "KUBECONFIG": str(config),
        "PROBE_NAMESPACE": ns,
        "WAIT_TIMEOUT_SECONDS": "20",
        **env,
    }


def steps(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in body["steps"]}


def query(**params: str) -> str:
    return "?" + urllib.parse.urlencode(params)


def leftovers(kube: LocalKube, ns: str, *resources: str) -> list[str]:
    """What the cases created (their label) and is still there, terminating or not."""
    return [
        f"{resource}/{obj['metadata']['name']}"
        for resource in resources
        for obj in kube.api(
            "GET", f"{GROUPS[resource]}/namespaces/{ns}/{resource}" + query(labelSelector=MANAGED)
        )["items"]
    ]


def assert_swept(kube: LocalKube, ns: str, *resources: str) -> None:
    """Everything the case made is really gone (the garbage collector and kwok included)."""
    wait_for(
        lambda: not leftovers(kube, ns, *resources),
        timeout=30,
        interval=0.2,
        what=f"{', '.join(resources)} of the case to be gone from {ns}",
    )


def events(kube: LocalKube, ns: str, reason: str) -> list[dict[str, Any]]:
    items = kube.api("GET", f"/api/v1/namespaces/{ns}/events")["items"]
    return [e for e in items if e.get("reason") == reason]


def closed_port_kubeconfig(kube: LocalKube) -> str:
    """The admin kubeconfig, pointed at a port nothing listens on."""
    return kube.kubeconfig().replace(kube.server, f"https://127.0.0.1:{free_port()}")


def api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    load_kube_config_from_dict(yaml.safe_load(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
def probe_account(kube: LocalKube, kube_ns: str) -> Iterator[str]:
    """A kubeconfig of `kubeprobe-probe` with exactly the RBAC of probe-rbac.yaml."""
    config = kube.service_account_kubeconfig(
        kube_ns,
        "kubeprobe-probe",
        rbac_rules("Role", "kubeprobe-probe"),
        cluster_rules=rbac_rules("ClusterRole", "kubeprobe-probe-coverage"),
    )
    yield config
    cluster_name = f"{kube_ns}-kubeprobe-probe"
    kube.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{cluster_name}")
    kube.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{cluster_name}")


class PodWatch:
    """A real watch of one namespace's pods, from a thread: what happened, in order."""

    def __init__(self, kube: LocalKube, ns: str) -> None:
        self.core = client.CoreV1Api(api_client(kube.kubeconfig()))
        self.ns = ns
        self.seen: list[tuple[str, dict[str, Any]]] = []  # (ADDED/MODIFIED/DELETED, pod)
        self.stopped = threading.Event()
        # Listed here, not in the thread: nothing that happens after __init__ is missed.
        self.version = self.core.list_namespaced_pod(ns).metadata.resource_version
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                stream = watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    self.ns,
                    resource_version=self.version,
                    timeout_seconds=1,  # the server ends it each second: stop() is heard
                )
                for event in stream:
                    pod = event["raw_object"]
                    self.version = pod["metadata"]["resourceVersion"]
                    self.seen.append((event["type"], pod))
            except ApiException as exc:
                if exc.status != 410:
                    raise
                self.version = self.core.list_namespaced_pod(self.ns).metadata.resource_version

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)

    def first(self, name: str, ready: bool = False) -> int:
        """Index of the first event of pod `name` (that shows it Ready, if asked)."""
        for index, (kind, pod) in enumerate(self.seen):
            if pod["metadata"]["name"] != name or kind == "DELETED":
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not ready or any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return index
        raise AssertionError(f"no event of pod {name}{' Ready' if ready else ''}")

    def added(self) -> list[dict[str, Any]]:
        return [pod for kind, pod in self.seen if kind == "ADDED"]


CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd(group: str, version: str, kind: str, scope: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A CustomResourceDefinition of one version whose objects' `spec` has this schema."""
    plural = kind.lower() + "s"
    schema = {"type": "object", "properties": {"spec": spec}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def install_crd(kube: LocalKube, manifest: dict[str, Any]) -> None:
    """Create a CRD and wait until it is Established and its resource is served."""
    kube.api("POST", CRDS, manifest)
    name, spec = manifest["metadata"]["name"], manifest["spec"]

    def established() -> bool:
        conditions = kube.api("GET", f"{CRDS}/{name}").get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=30, interval=0.1, what=f"CRD {name} Established")
    version = spec["versions"][0]["name"]
    served = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
    wait_for(lambda: kube.request("GET", served)[0] == 200, timeout=30, what=f"{served} served")


def remove_crd(kube: LocalKube, name: str) -> None:
    """Delete a CRD (its objects go with it) and wait until it is gone."""
    kube.request("DELETE", f"{CRDS}/{name}")
    wait_for(
        lambda: kube.request("GET", f"{CRDS}/{name}")[0] == 404,
        timeout=60,
        interval=0.2,
        what=f"CRD {name} to be gone",
    )
