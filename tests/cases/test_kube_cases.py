"""The Kubernetes cases against the fake API server (tests/fakekube.py), over real HTTP.

Each case runs as its own process with the official kubernetes client, like
in a probe pod, and reports to a stand-in portal (tests/portal.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fakekube import FakeKube
from tests.portal import run_case

MANAGED = "app.kubernetes.io/managed-by=kubeprobe"


def kube_env(fake: FakeKube, tmp_path: Path, **env: str) -> dict[str, str]:
    config = tmp_path / f"kubeconfig-{fake.server.server_port}"
    config.write_text(fake.kubeconfig())
    return {
        "KUBECONFIG": str(config),
        "PROBE_NAMESPACE": "kubeprobe",
        "WAIT_TIMEOUT_SECONDS": "20",
        **env,
    }


def steps(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in body["steps"]}


def leftovers(fake: FakeKube, *resources: str) -> list[str]:
    return [
        f"{resource}/{obj['metadata']['name']}"
        for resource in resources
        for obj in fake.list(resource)
        if (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "kubeprobe"
    ]


# ------------------------------------------------------------------ pod lifecycle


def test_pod_lifecycle_passes_every_step(fake_kube: FakeKube, tmp_path: Path) -> None:
    result, body = run_case("lifecycle", kube_env(fake_kube, tmp_path, LIFECYCLE_KIND="pod"))
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
    assert leftovers(fake_kube, "pods") == []
    created = next(r for r in fake_kube.requests if r[0] == "POST" and r[1].endswith("/pods"))
    assert created[1] == "/api/v1/namespaces/kubeprobe/pods"


def test_pod_that_cannot_pull_fails_ready_with_the_reason_and_is_deleted(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    env = kube_env(
        fake_kube,
        tmp_path,
        PROBE_IMAGE="fake/imagepullbackoff",
        WAIT_TIMEOUT_SECONDS="2",
    )
    result, body = run_case("lifecycle", env)
    assert result.returncode != 0
    assert body["ok"] is False
    failed = steps(body)["running"]
    assert failed["ok"] is False
    assert "ImagePullBackOff" in failed["error"]
    assert 'Back-off pulling image "fake/imagepullbackoff"' in failed["error"]  # the event
    assert steps(body)["cleanup"]["ok"] is True
    assert leftovers(fake_kube, "pods") == []


def test_unschedulable_pod_fails_scheduled_naming_the_scheduler_reason(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    env = kube_env(fake_kube, tmp_path, PROBE_IMAGE="fake/unschedulable", WAIT_TIMEOUT_SECONDS="2")
    _, body = run_case("lifecycle", env)
    failed = steps(body)["scheduled"]
    assert failed["ok"] is False
    assert "Unschedulable" in failed["error"] and "Insufficient cpu" in failed["error"]
    assert leftovers(fake_kube, "pods") == []


def test_pod_that_crashes_fails_at_once_without_waiting_out_the_timeout(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    env = kube_env(fake_kube, tmp_path, PROBE_IMAGE="fake/oomkilled", WAIT_TIMEOUT_SECONDS="60")
    _, body = run_case("lifecycle", env)
    failed = next(s for s in body["steps"] if not s["ok"])
    assert "OOMKilled" in failed["error"]
    assert failed["duration_ms"] < 30_000


def test_refused_creation_fails_the_create_step_with_the_api_answer(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    fake_kube.fail_next("POST", "pods", 403)
    _, body = run_case("lifecycle", kube_env(fake_kube, tmp_path))
    create = steps(body)["create"]
    assert create["ok"] is False
    assert "HTTP 403: pods is forbidden" in create["error"]
    # A refused create may still have stored the pod (a lost answer): cleanup runs anyway.
    assert steps(body)["cleanup"]["ok"] is True


def test_slow_step_fails_with_the_measured_time(fake_kube: FakeKube, tmp_path: Path) -> None:
    fake_kube.scheduler_delay = 0.3
    env = kube_env(fake_kube, tmp_path, THRESHOLD_SCHEDULED_MS="100")
    _, body = run_case("lifecycle", env)
    scheduled = steps(body)["scheduled"]
    assert scheduled["ok"] is False
    assert "over the 100 ms threshold" in scheduled["error"]
    assert scheduled["duration_ms"] > 100
    assert leftovers(fake_kube, "pods") == []


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
    fake_kube: FakeKube, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    _, body = run_case("lifecycle", kube_env(fake_kube, tmp_path, **env))
    assert body["ok"] is False
    assert message in body["errors"][0]


def test_unreachable_api_server_fails_quickly_with_the_reason(tmp_path: Path) -> None:
    fake = FakeKube()
    env = kube_env(fake, tmp_path, REQUEST_TIMEOUT_SECONDS="2")
    fake.stop()
    _, body = run_case("lifecycle", env)
    assert body["ok"] is False
    assert "POST /api/v1/namespaces/kubeprobe/pods" in steps(body)["create"]["error"]


# ------------------------------------------------------------------ config coverage


def backup_cronjob(fake: FakeKube, **spec: Any) -> None:
    fake.register_kind("batch/v1", "cronjobs", "CronJob")
    fake.add(
        "cronjobs",
        "kube-system",
        {
            "metadata": {"name": "etcd-backup", "labels": {"app": "etcd-backup"}},
            "spec": {"schedule": "0 */6 * * *", "suspend": False, "successfulJobsHistoryLimit": 3}
            | spec,
        },
    )


COVERAGE = {
    "COVERAGE_RESOURCE": "batch/v1/cronjobs",
    "COVERAGE_NAMESPACE": "kube-system",
    "COVERAGE_NAME": "etcd-backup",
}


def test_coverage_passes_when_every_field_matches(fake_kube: FakeKube, tmp_path: Path) -> None:
    backup_cronjob(fake_kube)
    expect = (
        ".spec.schedule=0 */6 * * *; .spec.suspend=false\n"
        "{.spec.successfulJobsHistoryLimit}=3; $.metadata.labels.app=etcd-backup; .spec.schedule"
    )
    result, body = run_case(
        "config_coverage", kube_env(fake_kube, tmp_path, **COVERAGE, COVERAGE_EXPECT=expect)
    )
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    assert [s["name"] for s in body["steps"]] == [
        "get cronjobs kube-system/etcd-backup",
        "check .spec.schedule",
        "check .spec.suspend",
        "check {.spec.successfulJobsHistoryLimit}",
        "check $.metadata.labels.app",
        "check .spec.schedule",
    ]
    assert body["metrics"]["fields_drifted"] == 0


def test_coverage_reports_drift_field_by_field(fake_kube: FakeKube, tmp_path: Path) -> None:
    backup_cronjob(fake_kube, suspend=True, schedule="@daily")
    expect = ".spec.schedule=0 */6 * * *; .spec.suspend=false; .spec.successfulJobsHistoryLimit=3; .spec.timeZone"
    _, body = run_case(
        "config_coverage", kube_env(fake_kube, tmp_path, **COVERAGE, COVERAGE_EXPECT=expect)
    )
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


def test_coverage_fails_when_the_object_is_missing(fake_kube: FakeKube, tmp_path: Path) -> None:
    _, body = run_case("config_coverage", kube_env(fake_kube, tmp_path, **COVERAGE))
    assert body["ok"] is False
    assert (
        "not covered: batch/v1 cronjobs kube-system/etcd-backup does not exist"
        in steps(body)["get cronjobs kube-system/etcd-backup"]["error"]
    )


def test_coverage_reads_custom_and_cluster_scoped_resources(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    fake_kube.register_kind("kubedefender.io/v1", "globallimits", "GlobalLimit", namespaced=False)
    fake_kube.add(
        "globallimits",
        "",
        {
            "metadata": {"name": "default"},
            "spec": {"rules": [{"verb": "delete", "resource": "pods", "qps": 5}]},
        },
    )
    env = kube_env(
        fake_kube,
        tmp_path,
        COVERAGE_RESOURCE="kubedefender.io/v1/globallimits",
        COVERAGE_NAME="default",
        COVERAGE_EXPECT="$.spec.rules[?(@.resource=='pods')].qps=5",
    )
    _, body = run_case("config_coverage", env)
    assert body["ok"] is True, body["errors"]
    assert "check $.spec.rules[?(@.resource=='pods')].qps" in steps(body)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COVERAGE_RESOURCE": "cronjobs"}, "COVERAGE_RESOURCE must look like"),
        ({"COVERAGE_EXPECT": ".spec.[[=1"}, "COVERAGE_EXPECT: bad JSONPath"),
        ({"COVERAGE_NAME": ""}, "COVERAGE_NAME is required"),
    ],
)
def test_coverage_configuration_errors_name_the_variable(
    fake_kube: FakeKube, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    _, body = run_case("config_coverage", kube_env(fake_kube, tmp_path, **(COVERAGE | env)))
    assert body["ok"] is False
    assert message in body["errors"][0]
    assert not [r for r in fake_kube.requests if "cronjobs" in r[1]]  # failed before any call


# ------------------------------------------------------------------ virtual clusters


def test_virtual_clusters_each_run_the_pod_lifecycle_and_failures_are_named(
    tmp_path: Path,
) -> None:
    good, broken = FakeKube(), FakeKube()
    try:
        for fake in (good, broken):
            fake.add("namespaces", "", {"metadata": {"name": "default"}})
        broken.fail_next("POST", "pods", 500)
        configs = tmp_path / "vclusters"
        configs.mkdir()
        (configs / "team-a").write_text(good.kubeconfig())
        (configs / "team-b").write_text(broken.kubeconfig())
        (configs / "..data").mkdir()  # what a mounted Secret also holds
        env = {"VCLUSTER_KUBECONFIG_DIR": str(configs), "WAIT_TIMEOUT_SECONDS": "20"}
        _, body = run_case("vcluster", env)
        by_name = steps(body)
        assert body["ok"] is False
        assert all(by_name[f"team-a: {s}"]["ok"] for s in ("connect", "create", "ready", "gone"))
        assert "HTTP 500" in by_name["team-b: create"]["error"]
        assert body["errors"][-1].endswith("1 of 2 virtual clusters failed: team-b")
        assert body["metrics"]["virtual_clusters"] == 2
        assert leftovers(good, "pods") == leftovers(broken, "pods") == []
    finally:
        good.stop()
        broken.stop()


def test_virtual_cluster_kubeconfigs_from_a_host_secret(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    import base64

    inner = FakeKube()
    try:
        inner.add("namespaces", "", {"metadata": {"name": "default"}})
        fake_kube.add(
            "secrets",
            "kubeprobe",
            {
                "metadata": {"name": "vclusters"},
                "data": {"tenant-1": base64.b64encode(inner.kubeconfig().encode()).decode()},
            },
        )
        env = kube_env(fake_kube, tmp_path, VCLUSTER_SECRET="kubeprobe/vclusters")
        env.pop("PROBE_NAMESPACE")
        _, body = run_case("vcluster", env)
        assert body["ok"] is True, body["errors"]
        assert "tenant-1: ready" in steps(body)
        assert any(r[1] == "/api/v1/namespaces/default/pods" for r in inner.requests)
    finally:
        inner.stop()


def test_virtual_cluster_without_kubeconfigs_is_a_configuration_error(tmp_path: Path) -> None:
    _, body = run_case("vcluster", {})
    assert "no kubeconfigs: set VCLUSTER_KUBECONFIG_DIR or VCLUSTER_SECRET" in body["errors"][0]


# ------------------------------------------------------------------ deployments and statefulsets


@pytest.mark.parametrize(
    ("kind", "ready_step"), [("deployment", "available"), ("statefulset", "ready")]
)
def test_workload_lifecycle_passes_every_step(
    fake_kube: FakeKube, tmp_path: Path, kind: str, ready_step: str
) -> None:
    env = kube_env(fake_kube, tmp_path, LIFECYCLE_KIND=kind, LIFECYCLE_REPLICAS="2")
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
    assert leftovers(fake_kube, "pods", "deployments", "statefulsets", "services") == []
    patches = [r[1] for r in fake_kube.requests if r[0] == "PATCH"]
    assert len(patches) == 2  # the rollout and the scale


def test_statefulset_pods_come_up_in_order(fake_kube: FakeKube, tmp_path: Path) -> None:
    env = kube_env(fake_kube, tmp_path, LIFECYCLE_KIND="statefulset", LIFECYCLE_REPLICAS="3")
    _, body = run_case("lifecycle", env)
    assert body["ok"] is True, body["errors"]
    created = [
        r[1]
        for r in fake_kube.requests
        if r[0] == "POST" and r[1].startswith("/apis/apps/v1/") and r[1].endswith("statefulsets")
    ]
    assert len(created) == 1


def test_deployment_whose_pods_cannot_pull_fails_available_with_the_pod_reason(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    env = kube_env(
        fake_kube,
        tmp_path,
        LIFECYCLE_KIND="deployment",
        PROBE_IMAGE="fake/imagepullbackoff",
        WAIT_TIMEOUT_SECONDS="3",
    )
    _, body = run_case("lifecycle", env)
    available = steps(body)["available"]
    assert available["ok"] is False
    assert "0/2 updated" in available["error"] or "0 ready" in available["error"]
    assert "ImagePullBackOff" in available["error"]
    assert steps(body)["cleanup"]["ok"] is True
    assert leftovers(fake_kube, "pods", "deployments", "replicasets") == []


def test_statefulset_stuck_on_its_first_pod_names_that_pod(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    env = kube_env(
        fake_kube,
        tmp_path,
        LIFECYCLE_KIND="statefulset",
        PROBE_IMAGE="fake/createerror",
        WAIT_TIMEOUT_SECONDS="3",
    )
    _, body = run_case("lifecycle", env)
    ready = steps(body)["ready"]
    assert ready["ok"] is False
    assert "-0: " in ready["error"]  # ordinal 0 blocks the rest (OrderedReady)
    assert "CreateContainerConfigError" in ready["error"]
    assert leftovers(fake_kube, "pods", "statefulsets", "services") == []


def test_deployment_never_available_when_controllers_stop(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    fake_kube.controllers_paused = True
    env = kube_env(fake_kube, tmp_path, LIFECYCLE_KIND="deployment", WAIT_TIMEOUT_SECONDS="2")
    _, body = run_case("lifecycle", env)
    available = steps(body)["available"]
    assert available["ok"] is False
    assert "controller has not seen generation" in available["error"]
    fake_kube.controllers_paused = False


# ------------------------------------------------------------------ canary


def test_canary_rollout_scale_and_endpoints(fake_kube: FakeKube, tmp_path: Path) -> None:
    env = kube_env(
        fake_kube,
        tmp_path,
        CANARY_IMAGE="example/app:1",
        CANARY_NEW_IMAGE="example/app:2",
        CANARY_SCALE_TO="3",
    )
    result, body = run_case("canary", env)
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
    images = {
        obj["spec"]["containers"][0]["image"]
        for _, kind, resource, obj in fake_kube.history
        if resource == "pods" and kind == "ADDED"
    }
    assert images == {"example/app:1", "example/app:2"}
    assert leftovers(fake_kube, "pods", "deployments", "services", "replicasets") == []


def test_canary_new_version_that_cannot_start_fails_the_rollout(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    env = kube_env(
        fake_kube,
        tmp_path,
        CANARY_IMAGE="example/app:1",
        CANARY_NEW_IMAGE="fake/imagepullbackoff",
        WAIT_TIMEOUT_SECONDS="3",
    )
    _, body = run_case("canary", env)
    by_name = steps(body)
    assert by_name["endpoints"]["ok"] is True
    assert by_name["rollout"]["ok"] is False
    assert "ImagePullBackOff" in by_name["rollout"]["error"]
    assert leftovers(fake_kube, "pods", "deployments", "services") == []


def test_canary_configuration_is_checked(fake_kube: FakeKube, tmp_path: Path) -> None:
    _, body = run_case("canary", kube_env(fake_kube, tmp_path, CANARY_SCALE_TO="1"))
    assert "CANARY_SCALE_TO > CANARY_REPLICAS" in body["errors"][0]


# ------------------------------------------------------------------ per node


def test_every_ready_schedulable_node_gets_a_pinned_pod(tmp_path: Path) -> None:
    fake = FakeKube(nodes=4)
    try:
        fake.node_not_ready("node-3")
        fake.cordon("node-4")
        result, body = run_case("nodes", kube_env(fake, tmp_path))
        assert result.returncode == 0, result.stderr
        assert body["ok"] is True, body["errors"]
        assert sorted(s["name"] for s in body["steps"]) == [
            "cleanup",
            "list nodes",
            "node node-1",
            "node node-2",
        ]
        assert body["metrics"]["nodes_not_ready"] == 1
        assert body["metrics"]["nodes_unschedulable"] == 1
        pinned = [
            obj["spec"].get("nodeName")
            for _, kind, resource, obj in fake.history
            if resource == "pods" and kind == "ADDED"
        ]
        assert sorted(pinned) == ["node-1", "node-2"]  # bound at creation, not scheduled
        assert leftovers(fake, "pods") == []
    finally:
        fake.stop()


def test_a_broken_node_is_named_with_its_reason(tmp_path: Path) -> None:
    fake = FakeKube(nodes=3)
    try:
        fake.break_node("node-2", "Failed to create pod sandbox: rpc error: code = Unknown")
        _, body = run_case("nodes", kube_env(fake, tmp_path, WAIT_TIMEOUT_SECONDS="2"))
        by_name = steps(body)
        assert body["ok"] is False
        assert by_name["node node-1"]["ok"] and by_name["node node-3"]["ok"]
        assert "Failed to create pod sandbox" in by_name["node node-2"]["error"]
        assert body["errors"][-1].endswith("1 of 3 nodes failed: node-2")
        assert body["metrics"]["nodes_failed"] == 1
        assert leftovers(fake, "pods") == []
    finally:
        fake.stop()


def test_no_eligible_node_fails_listing(tmp_path: Path) -> None:
    fake = FakeKube(nodes=1)
    try:
        fake.cordon("node-1")
        _, body = run_case("nodes", kube_env(fake, tmp_path, NODES_SELECTOR="pool=gpu"))
        assert "no Ready, schedulable node matches 'pool=gpu'" in steps(body)["list nodes"]["error"]
    finally:
        fake.stop()


# ------------------------------------------------------------------ federation


class Federation:
    """Stands in for KubeFed's sync controller: copies FederatedConfigMaps to members."""

    def __init__(self, host: FakeKube, members: dict[str, FakeKube], lag: float = 0.0) -> None:
        self.host, self.members, self.lag = host, members, lag
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(0.05):
            wanted: dict[str, set[tuple[str, str]]] = {name: set() for name in self.members}
            for fed in self.host.list("federatedconfigmaps"):
                meta = fed["metadata"]
                for placement in fed["spec"]["placement"]["clusters"]:
                    if placement["name"] in wanted:
                        wanted[placement["name"]].add((meta["namespace"], meta["name"]))
                        member = self.members[placement["name"]]
                        if member.get("configmaps", meta["namespace"], meta["name"]) is None:
                            member.add(
                                "configmaps",
                                meta["namespace"],
                                {
                                    "metadata": {"name": meta["name"]},
                                    "data": fed["spec"]["template"]["data"],
                                },
                            )
            for name, member in self.members.items():
                for cm in member.list("configmaps"):
                    key = (cm["metadata"]["namespace"], cm["metadata"]["name"])
                    if key not in wanted[name]:
                        member.remove("configmaps", *key)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)


def test_federated_object_reaches_and_leaves_every_member(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    fake_kube.register_kind("types.kubefed.io/v1beta1", "federatedconfigmaps", "FederatedConfigMap")
    members = {"east": FakeKube(), "west": FakeKube(), "lost": FakeKube()}
    configs = tmp_path / "members"
    configs.mkdir()
    for name, member in members.items():
        (configs / name).write_text(member.kubeconfig())
    federation = Federation(fake_kube, {k: v for k, v in members.items() if k != "lost"})
    try:
        env = kube_env(
            fake_kube,
            tmp_path,
            FEDERATION_MEMBER_KUBECONFIG_DIR=str(configs),
            FEDERATION_DEADLINE_SECONDS="3",
        )
        _, body = run_case("federation", env)
        by_name = steps(body)
        assert by_name["create federated object"]["ok"] is True
        assert by_name["propagated to east"]["ok"] and by_name["propagated to west"]["ok"]
        assert by_name["removed from east"]["ok"] and by_name["removed from west"]["ok"]
        assert "not done after 3 s" in by_name["propagated to lost"]["error"]
        assert body["errors"][-1].endswith(
            "federation link broken: not propagated to [lost], not removed from []"
        )
        assert fake_kube.list("federatedconfigmaps") == []
        assert all(m.list("configmaps") == [] for m in members.values())
    finally:
        federation.stop()
        for member in members.values():
            member.stop()


def test_federation_passes_when_every_member_syncs(fake_kube: FakeKube, tmp_path: Path) -> None:
    fake_kube.register_kind("types.kubefed.io/v1beta1", "federatedconfigmaps", "FederatedConfigMap")
    members = {"east": FakeKube(), "west": FakeKube()}
    configs = tmp_path / "members"
    configs.mkdir()
    for name, member in members.items():
        (configs / name).write_text(member.kubeconfig())
    federation = Federation(fake_kube, members)
    try:
        env = kube_env(fake_kube, tmp_path, FEDERATION_MEMBER_KUBECONFIG_DIR=str(configs))
        result, body = run_case("federation", env)
        assert result.returncode == 0, result.stderr
        assert body["ok"] is True, body["errors"]
        assert body["metrics"]["members"] == 2
    finally:
        federation.stop()
        for member in members.values():
            member.stop()


def test_federation_without_the_crd_fails_creation_with_the_api_answer(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    member = FakeKube()
    try:
        configs = tmp_path / "members"
        configs.mkdir()
        (configs / "east").write_text(member.kubeconfig())
        env = kube_env(fake_kube, tmp_path, FEDERATION_MEMBER_KUBECONFIG_DIR=str(configs))
        _, body = run_case("federation", env)
        create = steps(body)["create federated object"]
        assert create["ok"] is False and "HTTP 404" in create["error"]
    finally:
        member.stop()


def test_a_pod_stored_although_its_create_answer_was_lost_is_still_deleted(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    fake_kube.lose_next_answer("POST", "pods", 504)
    _, body = run_case("lifecycle", kube_env(fake_kube, tmp_path))
    assert "HTTP 504" in steps(body)["create"]["error"]
    assert steps(body)["cleanup"]["ok"] is True
    assert leftovers(fake_kube, "pods") == []


def test_coverage_does_not_take_a_number_for_a_boolean(fake_kube: FakeKube, tmp_path: Path) -> None:
    backup_cronjob(fake_kube)
    env = kube_env(fake_kube, tmp_path, **COVERAGE, COVERAGE_EXPECT=".spec.suspend=0")
    _, body = run_case("config_coverage", env)
    assert body["ok"] is False
    assert steps(body)["check .spec.suspend"]["error"].endswith(
        "drift: .spec.suspend is false, expected 0"
    )
