"""The Helm charts (deploy/helm): `helm lint` and `helm template` with default and
production-like values, the rendered manifests applied to the real control plane
(tests/kube.py; CRDs established), and the service accounts able to do exactly
what the operator and the portal's executor need (SubjectAccessReviews)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeprobe_site.queues import queue_names
from tests.kube import LocalKube
from tests.resident.conftest import probeconfig
from tests.utils import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "deploy" / "helm"
CENTER, AGENT = CHARTS / "kubeprobe", CHARTS / "kubeprobe-agent"
STATIC = ROOT / "deploy" / "kubernetes"
VALUES = {"default": None, "production": "values-production.yaml"}


@pytest.fixture(scope="module")
def helm() -> str:
    path = subprocess.run(
        ["bash", str(ROOT / "deploy/dev/helm-build"), "--print"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(path).is_file(), f"no Helm at {path}: run `make helm-build` (CI does)"
    return path


def values_args(chart: Path, values: str) -> list[str]:
    return ["-f", str(chart / VALUES[values])] if VALUES[values] else []


def render(
    helm: str, chart: Path, values: str, release: str, namespace: str, *extra: str
) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            *(helm, "template", release, str(chart), "-n", namespace, "--include-crds"),
            *values_args(chart, values),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize("chart", [CENTER, AGENT], ids=["kubeprobe", "kubeprobe-agent"])
def test_helm_lint_is_clean(helm: str, chart: Path, values: str) -> None:
    done = subprocess.run(
        [helm, "lint", "--strict", str(chart), *values_args(chart, values)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("values", VALUES)
def test_the_center_runs_every_process_with_every_queue_consumed(helm: str, values: str) -> None:
    docs = render(helm, CENTER, values, "kp", "kubeprobe")
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {
        "kp-kubeprobe-web",
        "kp-kubeprobe-websockets",
        "kp-kubeprobe-beat",
        "kp-kubeprobe-watcher",
        *(
            f"kp-kubeprobe-worker-{kind}"
            for kind in ("ticks", "dispatch", "alerts", "housekeeping")
        ),
    }
    for name in ("kp-kubeprobe-beat", "kp-kubeprobe-watcher"):
        assert deployments[name]["spec"]["replicas"] == 1
        assert deployments[name]["spec"]["strategy"] == {"type": "Recreate"}
    # Every queue of the installation has a worker, and no worker names another queue.
    consumed: list[str] = []
    for name, deployment in deployments.items():
        if "-worker-" in name:
            command = container(deployment)["command"]
            consumed += command[command.index("-Q") + 1].split(",")
    assert sorted(consumed) == sorted(queue_names("celery"))
    # One image; the command picks the process; nothing runs as root or writes to /.
    for deployment in deployments.values():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        assert container(deployment)["securityContext"]["readOnlyRootFilesystem"] is True
        assert container(deployment)["image"].endswith(":0.1.0")
        env = {item["name"]: item for item in container(deployment)["env"]}
        assert env["SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kubeprobe"
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    web = container(deployments["kp-kubeprobe-web"])
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert {"name": "PROMETHEUS_MULTIPROC_DIR", "value": "/tmp/prometheus"} in web["env"]
    (job,) = by_kind(docs, "Job").values()
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert container({"spec": job["spec"]})["command"] == [
        "python",
        "manage.py",
        "migrate",
        "--noinput",
    ]
    if values == "production":
        (ingress,) = by_kind(docs, "Ingress").values()
        paths = {
            path["path"]: path["backend"]["service"]["name"]
            for path in ingress["spec"]["rules"][0]["http"]["paths"]
        }
        assert paths == {"/ws/": "kp-kubeprobe-websockets", "/": "kp-kubeprobe-web"}
        assert set(by_kind(docs, "HorizontalPodAutoscaler")) == {
            "kp-kubeprobe-web",
            "kp-kubeprobe-worker-dispatch",
            "kp-kubeprobe-worker-alerts",
        }
        assert "replicas" not in deployments["kp-kubeprobe-web"]["spec"]  # the HPA's
        assert by_kind(docs, "ServiceMonitor")


def test_the_schema_names_a_bad_value(helm: str) -> None:
    done = subprocess.run(
        [helm, "template", "kp", str(CENTER), "--set", "workers.dispatch.queues[0]=dispach"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "/workers/dispatch/queues/0" in done.stderr
    done = subprocess.run(
        [helm, "template", "a", str(AGENT), "--set", "operator.replicas=0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "/operator/replicas" in done.stderr


def static(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((STATIC / name).read_text()) if doc]


def grants(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (group, resource, name, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames", ["*"])
        for verb in rule["verbs"]
    }


def test_the_agent_grants_what_the_static_manifests_grant(helm: str) -> None:
    """deploy/kubernetes/*.yaml are checked against real runs by their own tests;
    the chart must grant exactly the same, and ship the same CRDs."""
    docs = render(helm, AGENT, "default", "agent", "kubeprobe")
    rendered = {
        doc["metadata"]["name"]: grants(doc)
        for doc in docs
        if doc["kind"] in ("Role", "ClusterRole")
    }
    shipped = {
        doc["metadata"]["name"]: grants(doc)
        for name in ("probe-rbac.yaml", "portal-rbac.yaml", "probe-operator.yaml")
        for doc in static(name)
        if doc["kind"] in ("Role", "ClusterRole")
    }
    assert rendered == {
        "kubeprobe-probe": shipped["kubeprobe-probe"],
        "kubeprobe-portal": shipped["kubeprobe-portal"],
        "agent-probe-coverage": shipped["kubeprobe-probe-coverage"],
        "agent-probe-kubeconfig-reader": shipped["kubeprobe-probe-kubeconfig-reader"],
        "agent-operator": shipped["kubeprobe-operator"],
    }
    crds = by_kind(docs, "CustomResourceDefinition")
    shipped_crds = {
        doc["metadata"]["name"]: doc
        for name in ("probeconfig-crd.yaml", "probe-operator.yaml")
        for doc in static(name)
        if doc["kind"] == "CustomResourceDefinition"
    }
    assert crds == shipped_crds


def test_resident_probe_rights_are_behind_a_value(helm: str) -> None:
    """portal.residentProbes (default on) adds exactly the ProbeConfig and Secret rules."""
    resident = {
        (group, resource, "*", verb)
        for group, resource in (("kubeprobe.io", "probeconfigs"), ("", "secrets"))
        for verb in ("create", "patch", "delete")
    }
    on = grants(
        by_kind(render(helm, AGENT, "default", "agent", "kubeprobe"), "Role")["kubeprobe-portal"]
    )
    off_docs = render(
        helm, AGENT, "default", "agent", "kubeprobe", "--set", "portal.residentProbes=false"
    )
    off = grants(by_kind(off_docs, "Role")["kubeprobe-portal"])
    assert resident <= on and not resident & off
    assert on - off == resident


# ----------------------------------------------------------------- real apiserver

SERVICE_MONITOR_CRD = {
    # Stand-in for the Prometheus Operator's CRD (not installed here): the same
    # group, kind and scope, any spec.
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "plural": "servicemonitors"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def established(kube: LocalKube, name: str) -> bool:
    crd = kube.api("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    # A CRD the apiserver has just taken may have no conditions yet (null).
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def apply_all(kube: LocalKube, docs: list[dict[str, Any]], namespace: str) -> None:
    """CRDs first (waiting until established), then everything else, as kubectl would."""
    crds = [doc for doc in docs if doc["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        kube.apply(crd)
    for crd in crds:
        wait_for(lambda crd=crd: established(kube, crd["metadata"]["name"]), timeout=30)
    for doc in docs:
        if doc["kind"] != "CustomResourceDefinition":
            kube.apply(doc, namespace=namespace)


def read_back(kube: LocalKube, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    api_version, kind, name = doc["apiVersion"], doc["kind"], doc["metadata"]["name"]
    plural, namespaced = kube.plural(api_version, kind)
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = (
        f"{base}/namespaces/{namespace}/{plural}/{name}"
        if namespaced
        else f"{base}/{plural}/{name}"
    )
    return kube.api("GET", path)


@pytest.fixture
def cleanup_cluster_objects(kube: LocalKube) -> Iterator[list[dict[str, Any]]]:
    """Cluster-wide objects a test applied (CRDs stay: other tests share them)."""
    applied: list[dict[str, Any]] = []
    yield applied
    for doc in applied:
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"):
            plural, _ = kube.plural(doc["apiVersion"], doc["kind"])
            version = doc["apiVersion"]
            kube.request("DELETE", f"/apis/{version}/{plural}/{doc['metadata']['name']}")


@pytest.mark.parametrize("values", VALUES)
def test_the_center_is_accepted_by_a_real_apiserver(
    helm: str, kube: LocalKube, kube_ns: str, values: str
) -> None:
    docs = render(helm, CENTER, values, kube_ns, kube_ns)
    if values == "production":
        apply_all(kube, [SERVICE_MONITOR_CRD], kube_ns)
    apply_all(kube, docs, kube_ns)
    for doc in docs:
        stored = read_back(kube, doc, kube_ns)
        assert stored["metadata"]["name"] == doc["metadata"]["name"]
    # The real controllers take the Deployments: the beat's one pod is created.
    (beat,) = [name for name in by_kind(docs, "Deployment") if name.endswith("-beat")]
    wait_for(
        lambda: (
            kube.api("GET", f"/apis/apps/v1/namespaces/{kube_ns}/deployments/{beat}")
            .get("status", {})
            .get("replicas")
            == 1
        ),
        timeout=60,
        what="the beat Deployment's pod",
    )


def review(kube: LocalKube, account: str, home: str, attributes: dict[str, str]) -> bool:
    """Whether the service account may do this, asked of the real authorizer."""
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{home}:{account}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{home}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    answer = kube.api("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
    return bool(answer["status"].get("allowed"))


@pytest.mark.parametrize("values", VALUES)
def test_the_agent_is_accepted_and_its_accounts_can_do_exactly_what_they_need(
    helm: str,
    kube: LocalKube,
    kube_ns: str,
    values: str,
    cleanup_cluster_objects: list[dict[str, Any]],
) -> None:
    docs = render(helm, AGENT, values, kube_ns, kube_ns)
    cleanup_cluster_objects += docs
    apply_all(kube, docs, kube_ns)
    assert established(kube, "probeconfigs.kubeprobe.io")
    assert established(kube, "clusterkopfpeerings.kopf.dev")
    for doc in docs:
        assert read_back(kube, doc, kube_ns)["metadata"]["name"] == doc["metadata"]["name"]
    # The CRD serves ProbeConfigs: one is accepted, with the server's defaults.
    created = kube.apply(probeconfig("etcd-resident"), namespace=kube_ns)
    assert created["spec"]["intervalMs"] > 0

    ns = kube_ns
    other = "default"

    def can(account: str, verb: str, resource: str, namespace: str = ns, **more: str) -> bool:
        """resource: "pods", "pods/log", "apps/deployments", "kubeprobe.io/probeconfigs/status"."""
        parts = resource.split("/")
        group = parts.pop(0) if parts[0] == "apps" or "." in parts[0] else ""
        attributes = {"verb": verb, "group": group, "resource": parts[0], **more}
        if len(parts) > 1:
            attributes["subresource"] = parts[1]
        if namespace:
            attributes["namespace"] = namespace
        return review(kube, account, ns, attributes)

    portal = "kubeprobe-portal"
    for verb in ("create", "get", "list", "delete"):
        assert can(portal, verb, "pods")
    assert can(portal, "get", "pods/log") and can(portal, "list", "events")
    # Nothing more: no watch, no other kinds, no other namespace, nothing cluster-wide.
    assert not can(portal, "watch", "pods")
    assert not can(portal, "create", "apps/deployments")
    assert not can(portal, "get", "secrets")
    assert not can(portal, "create", "pods", namespace=other)
    assert not can(portal, "list", "nodes", namespace="")

    operator = "kubeprobe-operator"
    for verb in ("get", "list", "watch", "patch"):
        assert can(operator, verb, "kubeprobe.io/probeconfigs", namespace="")
    assert can(operator, "patch", "kubeprobe.io/probeconfigs/status", namespace=other)
    for verb in ("get", "list", "watch", "create", "patch"):
        assert can(operator, verb, "apps/deployments", namespace=other)
    assert can(operator, "list", "pods", namespace="") and can(operator, "create", "events")
    assert can(operator, "patch", "kopf.dev/clusterkopfpeerings", namespace="")
    assert not can(operator, "delete", "apps/deployments")
    assert not can(operator, "update", "kubeprobe.io/probeconfigs")
    assert not can(operator, "get", "secrets")
    assert not can(operator, "create", "pods")

    probe = "kubeprobe-probe"
    assert can(probe, "create", "pods") and can(probe, "patch", "apps/deployments")
    assert can(probe, "list", "nodes", namespace="")
    assert can(probe, "get", "apps/deployments", namespace="kube-system", name="coredns")
    assert not can(probe, "get", "apps/deployments", namespace="kube-system", name="other")
    assert not can(probe, "get", "secrets") and not can(probe, "create", "pods", namespace=other)
