"""The built-in Kubernetes cases against the real control plane (tests/kube.py), over real HTTP.

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

import base64
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_local import KubeError, LocalKube, free_port
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config import load_kube_config_from_dict

from tests.kube import FAULT_KEY, fault_image
from tests.kubeproxy import FaultProxy
from tests.portal import ROOT, run_case
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


# ------------------------------------------------------------------ pod lifecycle


def test_pod_lifecycle_passes_every_step(
    kube: LocalKube, kube_ns: str, probe_account: str, tmp_path: Path
) -> None:
    result, body = run_case("lifecycle", case_env(probe_account, kube_ns, tmp_path))
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    assert [s["name"] for s in body["steps"]] == [
        "create",
        "scheduled",
        "running",
        "ready",
        "delete",
        "gone",
    ]
    assert all(s["ok"] for s in body["steps"])
    assert leftovers(kube, kube_ns, "pods") == []  # "gone" waited for it
    # The pod was made in PROBE_NAMESPACE and placed by the real scheduler, never on
    # the tainted node.
    [scheduled] = wait_for(lambda: events(kube, kube_ns, "Scheduled"), what="Scheduled event")
    assert scheduled["involvedObject"]["name"].startswith("kubeprobe-pod-")
    assert scheduled["message"].startswith(f"Successfully assigned {kube_ns}/kubeprobe-pod-")
    assert scheduled["message"].split()[-1] in {"kwok-node-0", "kwok-node-1"}


def test_pod_that_cannot_pull_fails_running_with_the_reason_and_is_deleted(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    image = fault_image("image-pull")
    env = case_env(
        kube.kubeconfig(), kube_ns, tmp_path, PROBE_IMAGE=image, WAIT_TIMEOUT_SECONDS="8"
    )
    result, body = run_case("lifecycle", env)
    assert result.returncode != 0
    assert body["ok"] is False
    assert steps(body)["scheduled"]["ok"] is True
    failed = steps(body)["running"]
    assert failed["ok"] is False
    assert "not reached after 8 s; last seen: phase Pending" in failed["error"]
    assert f'ImagePullBackOff Back-off pulling image "{image}"' in failed["error"]
    assert "events: Failed: Failed to pull image" in failed["error"]  # the kubelet's event
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods")


@pytest.fixture
def full_nodes(kube: LocalKube, kube_ns: str) -> Iterator[None]:
    """Every node's CPU taken by a pod bound to it: the scheduler has room for nothing more."""
    pods = f"/api/v1/namespaces/{kube_ns}/pods"
    names = []
    for node in kube.api("GET", "/api/v1/nodes")["items"]:
        name = f"hog-{node['metadata']['name']}"
        cpu = node["status"]["allocatable"]["cpu"]
        container = {"name": "hog", "image": "hog", "resources": {"requests": {"cpu": cpu}}}
        spec = {
            "nodeName": node["metadata"]["name"],
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [container],
        }
        kube.api("POST", pods, {"metadata": {"name": name}, "spec": spec})
        names.append(name)

    def running() -> bool:
        phases = [kube.api("GET", f"{pods}/{n}")["status"].get("phase") for n in names]
        return phases == ["Running"] * len(names)

    wait_for(running, timeout=30, what="the hog pods to run")
    yield
    for name in names:
        kube.request("DELETE", f"{pods}/{name}")
    wait_for(
        lambda: all(kube.request("GET", f"{pods}/{n}")[0] == 404 for n in names),
        timeout=30,
        what="the hog pods to be gone",
    )


def test_unschedulable_pod_fails_scheduled_naming_the_scheduler_reason(
    kube: LocalKube, kube_ns: str, full_nodes: None, tmp_path: Path
) -> None:
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, WAIT_TIMEOUT_SECONDS="2")
    _, body = run_case("lifecycle", env)
    failed = steps(body)["scheduled"]
    assert failed["ok"] is False
    # The real scheduler's condition and its FailedScheduling event.
    assert "PodScheduled=False (Unschedulable: 0/3 nodes are available" in failed["error"]
    assert "Insufficient cpu" in failed["error"]
    assert "events: FailedScheduling: 0/3 nodes are available" in failed["error"]
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods")


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("crash", "terminated: Error exit code 1"), ("oom", "terminated: OOMKilled exit code 137")],
)
def test_pod_that_crashes_fails_at_once_without_waiting_out_the_timeout(
    kube: LocalKube, kube_ns: str, tmp_path: Path, fault: str, reason: str
) -> None:
    env = case_env(
        kube.kubeconfig(),
        kube_ns,
        tmp_path,
        PROBE_IMAGE=fault_image(fault),
        WAIT_TIMEOUT_SECONDS="60",
    )
    started = time.monotonic()
    _, body = run_case("lifecycle", env)
    failed = next(s for s in body["steps"] if not s["ok"])
    assert "ended: phase Failed" in failed["error"]
    assert f"container probe {reason}" in failed["error"]
    assert failed["duration_ms"] < 30_000
    assert time.monotonic() - started < 30
    assert_swept(kube, kube_ns, "pods")


def test_refused_creation_fails_the_create_step_with_the_api_answer(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    # Real RBAC: this account may do everything the case does except create pods.
    config = kube.service_account_kubeconfig(
        kube_ns,
        "no-create",
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        ],
    )
    _, body = run_case("lifecycle", case_env(config, kube_ns, tmp_path))
    create = steps(body)["create"]
    assert create["ok"] is False
    assert (
        f'HTTP 403: pods is forbidden: User "system:serviceaccount:{kube_ns}:no-create" '
        f'cannot create resource "pods" in API group "" in the namespace "{kube_ns}"'
    ) in create["error"]
    # A refused create may still have stored the pod (a lost answer): cleanup runs anyway.
    assert steps(body)["cleanup"]["ok"] is True
    assert "scheduled" not in steps(body)


def test_a_pod_stored_although_its_create_answer_was_lost_is_still_deleted(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    # The one fault here a real API server cannot play: it stores the pod, the answer is lost.
    proxy = FaultProxy(kube)
    try:
        proxy.lose_next_answer("POST", f"/namespaces/{kube_ns}/pods", 504)
        _, body = run_case("lifecycle", case_env(proxy.kubeconfig(), kube_ns, tmp_path))
        assert "HTTP 504" in steps(body)["create"]["error"]
        assert steps(body)["cleanup"]["ok"] is True
        deletes = [r for r in proxy.requests if r[0] == "DELETE" and "/pods/kubeprobe-pod-" in r[1]]
        assert [status for *_, status in deletes] == [200]  # the pod existed, and went
        assert_swept(kube, kube_ns, "pods")
    finally:
        proxy.stop()


def test_slow_step_fails_with_the_measured_time(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    # No real scheduler binds a pod within 1 ms of its creation being answered.
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, THRESHOLD_SCHEDULED_MS="1")
    _, body = run_case("lifecycle", env)
    assert steps(body)["create"]["ok"] is True  # STEP_THRESHOLD_MS (60 s) for the others
    scheduled = steps(body)["scheduled"]
    assert scheduled["ok"] is False
    assert "over the 1 ms threshold" in scheduled["error"]
    assert scheduled["duration_ms"] >= 1
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIFECYCLE_KIND": "job"}, "LIFECYCLE_KIND must be one of pod, deployment, statefulset"),
        ({"LIFECYCLE_REPLICAS": "0"}, "LIFECYCLE_REPLICAS must be at least 1"),
        ({"LIFECYCLE_REPLICAS": "many"}, "LIFECYCLE_REPLICAS must be a number"),
        ({"KUBECONFIG": "/nonexistent/kubeconfig"}, "cannot load KUBECONFIG=/nonexistent"),
    ],
)
def test_bad_configuration_fails_naming_the_variable(
    kube: LocalKube, kube_ns: str, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    _, body = run_case("lifecycle", case_env(kube.kubeconfig(), kube_ns, tmp_path, **env))
    assert body["ok"] is False
    assert message in body["errors"][0]
    assert body["steps"] == []  # stopped before anything touched the cluster


def test_unreachable_api_server_fails_quickly_with_the_reason(
    kube: LocalKube, tmp_path: Path
) -> None:
    env = case_env(closed_port_kubeconfig(kube), "kubeprobe", tmp_path, REQUEST_TIMEOUT_SECONDS="2")
    started = time.monotonic()
    _, body = run_case("lifecycle", env)
    assert body["ok"] is False
    create = steps(body)["create"]["error"]
    assert "POST /api/v1/namespaces/kubeprobe/pods" in create
    assert "Connection refused" in create
    assert time.monotonic() - started < 20


# ------------------------------------------------------------------ config coverage


def backup_cronjob(kube: LocalKube, ns: str, **spec: Any) -> None:
    """A real batch/v1 CronJob; the API server defaults what is not given."""
    command = ["etcdctl", "snapshot", "save", "/backup/snap.db"]
    container = {"name": "backup", "image": "registry.k8s.io/etcd:3.6.0", "command": command}
    job = {
        "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [container]}}}
    }
    kube.api(
        "POST",
        f"/apis/batch/v1/namespaces/{ns}/cronjobs",
        {
            "metadata": {"name": "etcd-backup", "labels": {"app": "etcd-backup"}},
            "spec": {"schedule": "0 */6 * * *", "suspend": False, "jobTemplate": job} | spec,
        },
    )


def coverage(ns: str) -> dict[str, str]:
    return {
        "COVERAGE_RESOURCE": "batch/v1/cronjobs",
        "COVERAGE_NAMESPACE": ns,
        "COVERAGE_NAME": "etcd-backup",
    }


def test_coverage_passes_when_every_field_matches(
    kube: LocalKube, kube_ns: str, probe_account: str, tmp_path: Path
) -> None:
    backup_cronjob(kube, kube_ns)
    # successfulJobsHistoryLimit was not given: 3 is the API server's default.
    expect = (
        ".spec.schedule=0 */6 * * *; .spec.suspend=false\n"
        "{.spec.successfulJobsHistoryLimit}=3; $.metadata.labels.app=etcd-backup; .spec.schedule"
    )
    env = case_env(probe_account, kube_ns, tmp_path, **coverage(kube_ns), COVERAGE_EXPECT=expect)
    result, body = run_case("config_coverage", env)
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    assert [s["name"] for s in body["steps"]] == [
        f"get cronjobs {kube_ns}/etcd-backup",
        "check .spec.schedule",
        "check .spec.suspend",
        "check {.spec.successfulJobsHistoryLimit}",
        "check $.metadata.labels.app",
        "check .spec.schedule",
    ]
    assert body["metrics"]["fields_drifted"] == 0


def test_coverage_reports_drift_field_by_field(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    backup_cronjob(kube, kube_ns, suspend=True, schedule="@daily")
    expect = (
        ".spec.schedule=0 */6 * * *; .spec.suspend=false; "
        ".spec.successfulJobsHistoryLimit=3; .spec.timeZone"
    )
    env = case_env(
        kube.kubeconfig(), kube_ns, tmp_path, **coverage(kube_ns), COVERAGE_EXPECT=expect
    )
    _, body = run_case("config_coverage", env)
    assert body["ok"] is False
    by_name = steps(body)
    assert by_name["check .spec.schedule"]["error"].endswith(
        'drift: .spec.schedule is "@daily", expected 0 */6 * * *'
    )
    assert by_name["check .spec.suspend"]["error"].endswith(
        "drift: .spec.suspend is true, expected false"
    )
    assert by_name["check .spec.successfulJobsHistoryLimit"]["ok"] is True
    assert by_name["check .spec.timeZone"]["error"].endswith("drift: .spec.timeZone is missing")
    assert body["metrics"]["fields_drifted"] == 3


def test_coverage_fails_when_the_object_is_missing(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    _, body = run_case(
        "config_coverage", case_env(kube.kubeconfig(), kube_ns, tmp_path, **coverage(kube_ns))
    )
    assert body["ok"] is False
    assert (
        f"not covered: batch/v1 cronjobs {kube_ns}/etcd-backup does not exist"
        in steps(body)[f"get cronjobs {kube_ns}/etcd-backup"]["error"]
    )


def test_coverage_does_not_take_a_number_for_a_boolean(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    backup_cronjob(kube, kube_ns)
    env = case_env(
        kube.kubeconfig(), kube_ns, tmp_path, **coverage(kube_ns), COVERAGE_EXPECT=".spec.suspend=0"
    )
    _, body = run_case("config_coverage", env)
    assert body["ok"] is False
    assert steps(body)["check .spec.suspend"]["error"].endswith(
        "drift: .spec.suspend is false, expected 0"
    )


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


@pytest.fixture(scope="module")
def global_limit(kube: LocalKube) -> Iterator[None]:
    """KubeDefender's cluster-scoped GlobalLimit as a real CRD, with its `default` object."""
    fields = {"verb": "string", "resource": "string", "qps": "integer"}
    rule = {"type": "object", "properties": {k: {"type": t} for k, t in fields.items()}}
    rules = {"type": "object", "properties": {"rules": {"type": "array", "items": rule}}}
    install_crd(kube, crd("kubedefender.io", "v1", "GlobalLimit", "Cluster", rules))
    kube.api(
        "POST",
        "/apis/kubedefender.io/v1/globallimits",
        {
            "apiVersion": "kubedefender.io/v1",
            "kind": "GlobalLimit",
            "metadata": {"name": "default"},
            "spec": {
                "rules": [
                    {"verb": "delete", "resource": "pods", "qps": 5},
                    {"verb": "list", "resource": "secrets", "qps": 20},
                ]
            },
        },
    )
    yield
    remove_crd(kube, "globallimits.kubedefender.io")


PODS_QPS = "$.spec.rules[?(@.resource=='pods')].qps"


@pytest.mark.parametrize(
    ("qps", "drift"), [("5", ""), ("10", f"drift: {PODS_QPS} is 5, expected 10")]
)
def test_coverage_reads_custom_and_cluster_scoped_resources(
    kube: LocalKube, global_limit: None, tmp_path: Path, qps: str, drift: str
) -> None:
    env = case_env(
        kube.kubeconfig(),
        "kubeprobe",
        tmp_path,
        COVERAGE_RESOURCE="kubedefender.io/v1/globallimits",
        COVERAGE_NAME="default",
        COVERAGE_EXPECT=f"{PODS_QPS}={qps}",
    )
    _, body = run_case("config_coverage", env)
    assert steps(body)["get globallimits default"]["ok"] is True
    check = steps(body)[f"check {PODS_QPS}"]
    assert check["ok"] is (not drift)
    assert body["ok"] is (not drift), body["errors"]
    if drift:
        assert check["error"].endswith(drift)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COVERAGE_RESOURCE": "cronjobs"}, "COVERAGE_RESOURCE must look like"),
        ({"COVERAGE_EXPECT": ".spec.[[=1"}, "COVERAGE_EXPECT: bad JSONPath"),
        ({"COVERAGE_NAME": ""}, "COVERAGE_NAME is required"),
    ],
)
def test_coverage_configuration_errors_name_the_variable(
    kube: LocalKube, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    # Pointed at nothing: a case that called the cluster first would fail on that instead.
    config = closed_port_kubeconfig(kube)
    _, body = run_case(
        "config_coverage", case_env(config, "kubeprobe", tmp_path, **(coverage("kubeprobe") | env))
    )
    assert body["ok"] is False
    assert message in body["errors"][0]
    assert body["steps"] == []  # failed before any call


# ------------------------------------------------------------------ deployments and statefulsets


@pytest.mark.parametrize(
    ("kind", "ready_step"), [("deployment", "available"), ("statefulset", "ready")]
)
def test_workload_lifecycle_passes_every_step(
    kube: LocalKube,
    kube_ns: str,
    probe_account: str,
    tmp_path: Path,
    kind: str,
    ready_step: str,
) -> None:
    env = case_env(probe_account, kube_ns, tmp_path, LIFECYCLE_KIND=kind, LIFECYCLE_REPLICAS="2")
    result, body = run_case("lifecycle", env)
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    assert [s["name"] for s in body["steps"]] == [
        "create",
        ready_step,
        "update",
        "scale",
        "delete",
        "gone",
    ]
    assert leftovers(kube, kube_ns, "pods", "deployments", "statefulsets", "services") == []
    assert_swept(kube, kube_ns, "replicasets")  # the garbage collector's part
    # What the real controllers did, from their events: a rollout, then a scale to 3.
    if kind == "deployment":

        def rollout_and_scale() -> list[str]:
            scaled = [e["message"] for e in events(kube, kube_ns, "ScalingReplicaSet")]
            return scaled if any(m.endswith("from 2 to 3") for m in scaled) else []

        scaled = wait_for(rollout_and_scale, what="the deployment controller's events")
        ups = {m.split()[4] for m in scaled if m.startswith("Scaled up replica set")}
        assert len(ups) == 2, scaled  # the update made a second ReplicaSet
    else:

        def recreated_and_scaled() -> list[str]:
            made = [e["message"] for e in events(kube, kube_ns, "SuccessfulCreate")]
            gone = events(kube, kube_ns, "SuccessfulDelete")
            return made if gone and any("-2 in StatefulSet" in m for m in made) else []

        made = wait_for(recreated_and_scaled, what="the statefulset controller's events")
        assert {m.split()[2].rsplit("-", 1)[1] for m in made} == {"0", "1", "2"}


def test_statefulset_pods_come_up_in_order(kube: LocalKube, kube_ns: str, tmp_path: Path) -> None:
    pods = PodWatch(kube, kube_ns)
    try:
        env = case_env(
            kube.kubeconfig(),
            kube_ns,
            tmp_path,
            LIFECYCLE_KIND="statefulset",
            LIFECYCLE_REPLICAS="3",
        )
        _, body = run_case("lifecycle", env)
    finally:
        pods.stop()
    assert body["ok"] is True, body["errors"]
    [name] = {p["metadata"]["name"].rsplit("-", 1)[0] for p in pods.added()}
    # OrderedReady: the controller creates ordinal n only once n-1 is Ready.
    for ordinal in (1, 2):
        assert pods.first(f"{name}-{ordinal}") > pods.first(f"{name}-{ordinal - 1}", ready=True)


def test_deployment_whose_pods_cannot_pull_fails_available_with_the_pod_reason(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    env = case_env(
        kube.kubeconfig(),
        kube_ns,
        tmp_path,
        LIFECYCLE_KIND="deployment",
        PROBE_IMAGE=fault_image("image-pull"),
        WAIT_TIMEOUT_SECONDS="3",
    )
    _, body = run_case("lifecycle", env)
    available = steps(body)["available"]
    assert available["ok"] is False
    assert "2/2 updated, 0 ready, 2 total" in available["error"]
    assert "2 of 2 pods not ready" in available["error"]
    assert "ImagePullBackOff" in available["error"]
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods", "deployments", "replicasets")


def test_statefulset_stuck_on_its_first_pod_names_that_pod(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    env = case_env(
        kube.kubeconfig(),
        kube_ns,
        tmp_path,
        LIFECYCLE_KIND="statefulset",
        PROBE_IMAGE=fault_image("crash"),
        WAIT_TIMEOUT_SECONDS="3",
    )
    _, body = run_case("lifecycle", env)
    ready = steps(body)["ready"]
    assert ready["ok"] is False
    # Ordinal 0 crash-loops and holds back the rest (OrderedReady): it is the only pod.
    assert "1 of 1 pods not ready" in ready["error"]
    assert "-0: phase Running" in ready["error"]
    assert "container probe waiting: CrashLoopBackOff" in ready["error"]
    assert steps(body)["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods", "statefulsets", "services")


def test_deployment_never_available_when_the_controllers_are_down(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    kube.stop_component("kube-controller-manager")
    try:
        env = case_env(
            kube.kubeconfig(),
            kube_ns,
            tmp_path,
            LIFECYCLE_KIND="deployment",
            WAIT_TIMEOUT_SECONDS="2",
        )
        _, body = run_case("lifecycle", env)
        available = steps(body)["available"]
        assert available["ok"] is False
        assert "controller has not seen generation 1 yet" in available["error"]
        assert leftovers(kube, kube_ns, "deployments", "replicasets", "pods") == []
    finally:
        kube.start_component("kube-controller-manager")
        wait_controllers_back(kube, kube_ns)


def wait_controllers_back(kube: LocalKube, ns: str) -> None:
    """Later tests need the controllers: wait until one observes a new Deployment."""
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    template = {
        "metadata": {"labels": {"app": "canary"}},
        "spec": {"containers": [{"name": "c", "image": "c"}]},
    }
    spec = {"replicas": 0, "selector": {"matchLabels": {"app": "canary"}}, "template": template}
    kube.api("POST", path, {"metadata": {"name": "controllers-back"}, "spec": spec})
    wait_for(
        lambda: (
            kube.api("GET", f"{path}/controllers-back").get("status", {}).get("observedGeneration")
        ),
        timeout=60,
        interval=0.2,
        what="the restarted controller-manager to observe a Deployment",
    )


# ------------------------------------------------------------------ canary


def test_canary_rollout_scale_and_endpoints(
    kube: LocalKube, kube_ns: str, probe_account: str, tmp_path: Path
) -> None:
    pods = PodWatch(kube, kube_ns)
    try:
        env = case_env(
            probe_account,
            kube_ns,
            tmp_path,
            CANARY_IMAGE="example/app:1",
            CANARY_NEW_IMAGE="example/app:2",
            CANARY_SCALE_TO="3",
        )
        result, body = run_case("canary", env)
    finally:
        pods.stop()
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    assert [s["name"] for s in body["steps"]] == [
        "deploy",
        "ready",
        "endpoints",
        "rollout",
        "endpoints after rollout",
        "scale up",
        "endpoints after scale up",
        "scale down",
        "endpoints after scale down",
        "delete",
        "gone",
    ]
    images = [p["spec"]["containers"][0]["image"] for p in pods.added()]
    # One pod of the first version, then the rollout's and the scale-up's of the new one.
    assert images == ["example/app:1"] + ["example/app:2"] * 3
    assert_swept(kube, kube_ns, "pods", "deployments", "services", "replicasets")


def test_canary_new_version_that_cannot_start_fails_the_rollout(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    env = case_env(
        kube.kubeconfig(),
        kube_ns,
        tmp_path,
        CANARY_IMAGE="example/app:1",
        CANARY_NEW_IMAGE=fault_image("image-pull"),
        WAIT_TIMEOUT_SECONDS="10",
    )
    _, body = run_case("canary", env)
    by_name = steps(body)
    assert by_name["endpoints"]["ok"] is True
    assert by_name["rollout"]["ok"] is False
    assert "ImagePullBackOff" in by_name["rollout"]["error"]
    assert by_name["cleanup"]["ok"] is True
    assert_swept(kube, kube_ns, "pods", "deployments", "services", "replicasets")


def test_canary_configuration_is_checked(kube: LocalKube, kube_ns: str, tmp_path: Path) -> None:
    _, body = run_case(
        "canary", case_env(kube.kubeconfig(), kube_ns, tmp_path, CANARY_SCALE_TO="1")
    )
    assert "CANARY_SCALE_TO > CANARY_REPLICAS" in body["errors"][0]
    assert body["steps"] == []


# ------------------------------------------------------------------ per node


def node_ready(kube: LocalKube, name: str) -> str:
    node = kube.api("GET", f"/api/v1/nodes/{name}")
    conditions = node.get("status", {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


@pytest.fixture
def gpu_nodes(kube: LocalKube) -> Iterator[None]:
    """Two more nodes in pool=gpu: one NotReady (kwok's fault Stage), one Ready but cordoned."""
    kube.add_node("kwok-gpu-broken", {"pool": "gpu", FAULT_KEY: "not-ready"})
    kube.add_node("kwok-gpu-cordoned", {"pool": "gpu"})
    try:
        kube.api(
            "PATCH",
            "/api/v1/nodes/kwok-gpu-cordoned",
            {"spec": {"unschedulable": True}},
            content_type="application/merge-patch+json",
        )
        wait_for(
            lambda: node_ready(kube, "kwok-gpu-broken") == "False", timeout=30, what="NotReady"
        )
        wait_for(lambda: node_ready(kube, "kwok-gpu-cordoned") == "True", timeout=30, what="Ready")
        yield
    finally:
        for name in ("kwok-gpu-broken", "kwok-gpu-cordoned"):
            kube.request("DELETE", f"/api/v1/nodes/{name}")
        wait_for(
            lambda: all(
                kube.request("GET", f"/api/v1/nodes/{n}")[0] == 404
                for n in ("kwok-gpu-broken", "kwok-gpu-cordoned")
            ),
            timeout=30,
            what="the added nodes to be gone",
        )


def test_every_ready_schedulable_node_gets_a_pinned_pod(
    kube: LocalKube, kube_ns: str, probe_account: str, gpu_nodes: None, tmp_path: Path
) -> None:
    pods = PodWatch(kube, kube_ns)
    try:
        result, body = run_case("nodes", case_env(probe_account, kube_ns, tmp_path))
    finally:
        pods.stop()
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    # kwok-node-2 is tainted NoSchedule: the case tolerates every taint, so it is probed too.
    assert sorted(s["name"] for s in body["steps"]) == [
        "cleanup",
        "list nodes",
        "node kwok-node-0",
        "node kwok-node-1",
        "node kwok-node-2",
    ]
    assert body["metrics"]["nodes_probed"] == 3
    assert body["metrics"]["nodes_not_ready"] == 1
    assert body["metrics"]["nodes_unschedulable"] == 1
    # Bound at creation (spec.nodeName in the first event), not by the scheduler.
    pinned = [p["spec"].get("nodeName") for p in pods.added()]
    assert sorted(pinned) == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    assert events(kube, kube_ns, "Scheduled") == []
    assert_swept(kube, kube_ns, "pods")


@pytest.fixture
def broken_node(kube: LocalKube, kube_ns: str) -> Iterator[str]:
    """kwok-node-1 evicts every pod of this namespace (a MutatingAdmissionPolicy sets
    kwok's `evicted` fault on pods bound to it): a node low on memory."""
    node, name = "kwok-node-1", f"{kube_ns}-broken-node"
    policies = "/apis/admissionregistration.k8s.io/v1"
    mutation = "Object{metadata: Object.metadata{annotations: {'" + FAULT_KEY + "': 'evicted'}}}"
    kube.api(
        "POST",
        f"{policies}/mutatingadmissionpolicies",
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "matchConditions": [
                    {
                        "name": "on-node",
                        "expression": f"has(object.spec.nodeName) && object.spec.nodeName == '{node}'",
                    }
                ],
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {"expression": mutation},
                    }
                ],
            },
        },
    )
    kube.api(
        "POST",
        f"{policies}/mutatingadmissionpolicybindings",
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube_ns}}
                },
            },
        },
    )
    try:
        probe = {
            "metadata": {"name": "dry-run"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "c"}]},
        }

        def in_force() -> bool:
            pod = kube.api("POST", f"/api/v1/namespaces/{kube_ns}/pods?dryRun=All", probe)
            return FAULT_KEY in (pod["metadata"].get("annotations") or {})

        wait_for(in_force, timeout=30, interval=0.1, what="the admission policy to apply")
        yield node
    finally:
        kube.request("DELETE", f"{policies}/mutatingadmissionpolicybindings/{name}")
        kube.request("DELETE", f"{policies}/mutatingadmissionpolicies/{name}")


def test_a_broken_node_is_named_with_its_reason(
    kube: LocalKube, kube_ns: str, broken_node: str, tmp_path: Path
) -> None:
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, WAIT_TIMEOUT_SECONDS="10")
    _, body = run_case("nodes", env)
    by_name = steps(body)
    assert body["ok"] is False
    assert by_name["node kwok-node-0"]["ok"] and by_name["node kwok-node-2"]["ok"]
    error = by_name[f"node {broken_node}"]["error"]
    assert "ended: phase Failed; Evicted: The node was low on resource: memory" in error
    assert "events: Evicted: The node was low on resource: memory" in error
    assert body["errors"][-1].endswith(f"1 of 3 nodes failed: {broken_node}")
    assert body["metrics"]["nodes_failed"] == 1
    assert_swept(kube, kube_ns, "pods")


def test_no_eligible_node_fails_listing(
    kube: LocalKube, kube_ns: str, gpu_nodes: None, tmp_path: Path
) -> None:
    env = case_env(kube.kubeconfig(), kube_ns, tmp_path, NODES_SELECTOR="pool=gpu")
    _, body = run_case("nodes", env)
    assert body["ok"] is False
    assert (
        "no Ready, schedulable node matches 'pool=gpu' (1 NotReady, 1 cordoned)"
        in steps(body)["list nodes"]["error"]
    )
    assert leftovers(kube, kube_ns, "pods") == []


# ------------------------------------------------------------------ virtual clusters


@pytest.fixture(scope="module")
def extra_clusters(
    kube: LocalKube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, LocalKube]]:
    """Two more API servers, lighter than the main one, started side by side:

    `vc-a`: scheduler and one kwok node, no controller-manager (like a virtual
    cluster whose pods run on shared nodes); `vc-b`: etcd and kube-apiserver only
    (a virtual cluster whose syncer is down: pods are stored, never scheduled).
    """
    clusters = {
        "vc-a": LocalKube(
            tmp_path_factory.mktemp("vc-a"),
            nodes=1,
            name="vc-a",
            components=("kube-scheduler", "kwok"),
        ),
        "vc-b": LocalKube(tmp_path_factory.mktemp("vc-b"), nodes=0, name="vc-b", components=()),
    }
    failures: list[BaseException] = []

    def start(cluster: LocalKube) -> None:
        try:
            cluster.start()
        except BaseException as exc:  # reported below, from the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(c,)) for c in clusters.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        if failures:
            pytest.fail(f"an extra API server did not start: {failures[0]}", pytrace=False)
        yield clusters
    finally:
        for cluster in clusters.values():
            cluster.stop()


def default_pods(kube: LocalKube) -> list[str]:
    path = "/api/v1/namespaces/default/pods" + query(labelSelector=MANAGED)
    return [p["metadata"]["name"] for p in kube.api("GET", path)["items"]]


def test_virtual_clusters_each_run_the_pod_lifecycle_and_failures_are_named(
    extra_clusters: dict[str, LocalKube], tmp_path: Path
) -> None:
    vc_a, vc_b = extra_clusters["vc-a"], extra_clusters["vc-b"]
    refused = vc_a.service_account_kubeconfig(
        "default",
        "no-create",
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]}],
    )
    configs = tmp_path / "vclusters"
    configs.mkdir()
    (configs / "team-a").write_text(vc_a.kubeconfig())
    (configs / "team-b").write_text(vc_b.kubeconfig())
    (configs / "team-c").write_text(refused)
    (configs / "..data").mkdir()  # what a mounted Secret also holds
    env = {"VCLUSTER_KUBECONFIG_DIR": str(configs), "WAIT_TIMEOUT_SECONDS": "3"}
    _, body = run_case("vcluster", env)
    by_name = steps(body)
    assert body["ok"] is False
    assert all(
        by_name[f"team-a: {s}"]["ok"]
        for s in ("connect", "create", "scheduled", "running", "ready", "delete", "gone")
    )
    # No scheduler behind team-b: its pod is stored but stays Pending.
    assert by_name["team-b: create"]["ok"] is True
    pending = by_name["team-b: scheduled"]["error"]
    assert "scheduled: not reached after 3 s; last seen: phase Pending" in pending
    assert "HTTP 403" in by_name["team-c: create"]["error"]
    assert 'cannot create resource "pods"' in by_name["team-c: create"]["error"]
    assert body["errors"][-1].endswith("2 of 3 virtual clusters failed: team-b, team-c")
    assert body["metrics"]["virtual_clusters"] == 3
    assert default_pods(vc_a) == default_pods(vc_b) == []


def test_virtual_cluster_kubeconfigs_from_a_host_secret(
    kube: LocalKube, kube_ns: str, extra_clusters: dict[str, LocalKube], tmp_path: Path
) -> None:
    vc_a = extra_clusters["vc-a"]
    kube.api(
        "POST",
        f"/api/v1/namespaces/{kube_ns}/secrets",
        {
            "metadata": {"name": "vclusters"},
            "data": {"tenant-1": base64.b64encode(vc_a.kubeconfig().encode()).decode()},
        },
    )
    # On the host, the probe may only read that Secret (probe-rbac.yaml's reader role).
    reader = kube.service_account_kubeconfig(
        kube_ns, "reader", rbac_rules("ClusterRole", "kubeprobe-probe-kubeconfig-reader")
    )

    def scheduled_pods() -> set[str]:
        items = vc_a.api("GET", "/api/v1/namespaces/default/events")["items"]
        return {e["involvedObject"]["name"] for e in items if e["reason"] == "Scheduled"}

    before = scheduled_pods()
    env = case_env(reader, kube_ns, tmp_path, VCLUSTER_SECRET=f"{kube_ns}/vclusters")
    env.pop("PROBE_NAMESPACE")
    _, body = run_case("vcluster", env)
    assert body["ok"] is True, body["errors"]
    assert "tenant-1: ready" in steps(body)
    # The pod ran inside the virtual cluster (its own scheduler placed it), not the host.
    [new] = wait_for(lambda: scheduled_pods() - before, what="a Scheduled event in vc-a")
    assert new.startswith("kubeprobe-pod-")
    assert events(kube, kube_ns, "Scheduled") == []


def test_virtual_cluster_without_kubeconfigs_is_a_configuration_error() -> None:
    _, body = run_case("vcluster", {})
    assert "no kubeconfigs: set VCLUSTER_KUBECONFIG_DIR or VCLUSTER_SECRET" in body["errors"][0]


# ------------------------------------------------------------------ federation

FEDERATED = "/apis/types.kubefed.io/v1beta1"
SYNCED = "kubefed.io/managed=true"


@pytest.fixture
def kubefed_crd(kube: LocalKube) -> Iterator[None]:
    """KubeFed's FederatedConfigMap type on the host (the CRD only: no controller)."""
    anything = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    install_crd(
        kube, crd("types.kubefed.io", "v1beta1", "FederatedConfigMap", "Namespaced", anything)
    )
    yield
    remove_crd(kube, "federatedconfigmaps.types.kubefed.io")


class FederationSync:
    """Plays KubeFed's sync controller, which is not available here.

    Every 0.1 s it copies each FederatedConfigMap of the host namespace, as a
    ConfigMap, to the members its placement names and that this controller
    knows, and deletes from those members the copies no federated object
    wants any more. Members it does not know are never synced: a broken link.
    """

    def __init__(self, host: LocalKube, ns: str, members: dict[str, LocalKube]) -> None:
        self.host, self.ns, self.members = host, ns, members
        self.errors: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(0.1):
            try:
                self.sync()
            except (KubeError, OSError) as exc:  # the next round tries again
                self.errors.append(str(exc))

    def sync(self) -> None:
        wanted: dict[str, dict[str, dict[str, str]]] = {name: {} for name in self.members}
        federated = f"{FEDERATED}/namespaces/{self.ns}/federatedconfigmaps"
        for fed in self.host.api("GET", federated)["items"]:
            if fed["metadata"].get("deletionTimestamp"):
                continue
            data = fed["spec"]["template"].get("data") or {}
            for placement in fed["spec"]["placement"]["clusters"]:
                if placement["name"] in wanted:
                    wanted[placement["name"]][fed["metadata"]["name"]] = data
        for name, member in self.members.items():
            configmaps = f"/api/v1/namespaces/{self.ns}/configmaps"
            have = {
                cm["metadata"]["name"]
                for cm in member.api("GET", configmaps + query(labelSelector=SYNCED))["items"]
            }
            for cm, data in wanted[name].items():
                if cm not in have:
                    labels = {"kubefed.io/managed": "true"}
                    member.api(
                        "POST",
                        configmaps,
                        {"metadata": {"name": cm, "labels": labels}, "data": data},
                    )
            for cm in have - wanted[name].keys():
                member.api("DELETE", f"{configmaps}/{cm}", ok=(200, 202, 404))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)


def member_dir(tmp_path: Path, members: dict[str, LocalKube]) -> Path:
    configs = tmp_path / "members"
    configs.mkdir()
    for name, member in members.items():
        (configs / name).write_text(member.kubeconfig())
    return configs


def synced_copies(member: LocalKube, ns: str) -> list[str]:
    path = f"/api/v1/namespaces/{ns}/configmaps" + query(labelSelector=SYNCED)
    status, answer = member.request("GET", path)
    return [cm["metadata"]["name"] for cm in answer["items"]] if status == 200 else []


@pytest.fixture
def members(
    kube: LocalKube, kube_ns: str, extra_clusters: dict[str, LocalKube]
) -> dict[str, LocalKube]:
    """east and west are the extra API servers; `lost` is the host itself, joined as a
    member (as KubeFed hosts often are) but never synced."""
    for cluster in extra_clusters.values():
        cluster.create_namespace(kube_ns)  # the probe namespace must exist on every member
    return {"east": extra_clusters["vc-a"], "west": extra_clusters["vc-b"], "lost": kube}


def test_federated_object_reaches_and_leaves_every_member(
    kube: LocalKube,
    kube_ns: str,
    kubefed_crd: None,
    members: dict[str, LocalKube],
    probe_account: str,
    tmp_path: Path,
) -> None:
    synced = {k: v for k, v in members.items() if k != "lost"}
    federation = FederationSync(kube, kube_ns, synced)
    try:
        env = case_env(
            probe_account,
            kube_ns,
            tmp_path,
            FEDERATION_MEMBER_KUBECONFIG_DIR=str(member_dir(tmp_path, members)),
            FEDERATION_DEADLINE_SECONDS="3",
        )
        _, body = run_case("federation", env)
    finally:
        federation.stop()
    by_name = steps(body)
    assert by_name["create federated object"]["ok"] is True
    assert by_name["propagated to east"]["ok"], federation.errors
    assert by_name["propagated to west"]["ok"], federation.errors
    assert by_name["removed from east"]["ok"] and by_name["removed from west"]["ok"]
    assert "not done after 3 s" in by_name["propagated to lost"]["error"]
    assert body["errors"][-1].endswith(
        "federation link broken: not propagated to [lost], not removed from []"
    )
    assert kube.api("GET", f"{FEDERATED}/namespaces/{kube_ns}/federatedconfigmaps")["items"] == []
    assert all(synced_copies(m, kube_ns) == [] for m in members.values())


def test_federation_passes_when_every_member_syncs(
    kube: LocalKube,
    kube_ns: str,
    kubefed_crd: None,
    members: dict[str, LocalKube],
    tmp_path: Path,
) -> None:
    synced = {k: v for k, v in members.items() if k != "lost"}
    federation = FederationSync(kube, kube_ns, synced)
    try:
        env = case_env(
            kube.kubeconfig(),
            kube_ns,
            tmp_path,
            FEDERATION_MEMBER_KUBECONFIG_DIR=str(member_dir(tmp_path, synced)),
        )
        result, body = run_case("federation", env)
    finally:
        federation.stop()
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, (body["errors"], federation.errors)
    assert body["metrics"]["members"] == 2
    assert [s["name"] for s in body["steps"]] == [
        "create federated object",
        "propagated to east",
        "propagated to west",
        "delete federated object",
        "removed from east",
        "removed from west",
    ]


def test_federation_without_the_crd_fails_creation_with_the_api_answer(
    kube: LocalKube, kube_ns: str, members: dict[str, LocalKube], tmp_path: Path
) -> None:
    assert kube.request("GET", f"{CRDS}/federatedconfigmaps.types.kubefed.io")[0] == 404
    configs = member_dir(tmp_path, {"east": members["east"]})
    env = case_env(
        kube.kubeconfig(), kube_ns, tmp_path, FEDERATION_MEMBER_KUBECONFIG_DIR=str(configs)
    )
    _, body = run_case("federation", env)
    create = steps(body)["create federated object"]
    assert create["ok"] is False
    # An API group that is not served answers in plain text, not with a Status.
    assert create["error"].endswith("federatedconfigmaps: HTTP 404: 404 page not found")
