"""Virtual clusters and federation: more local API servers as the virtual and member clusters.

`extra_clusters` starts lighter ones than the main cluster: `vc-a` has a
scheduler and one kwok node but no controller-manager, `vc-b` is etcd and
kube-apiserver alone. KubeFed does not run here: the federation tests play its
sync controller (`FederationSync`).

See tests/cases/kube_helpers.py for how the cases run and what they run against.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_local import KubeError, LocalKube

from tests.cases.kube_helpers import (
    CRDS,
    MANAGED,
    case_env,
    crd,
    events,
    install_crd,
    query,
    rbac_rules,
    remove_crd,
    steps,
)
from tests.portal import run_case
from tests.utils import wait_for


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
