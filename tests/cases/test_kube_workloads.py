"""Deployment and StatefulSet lifecycles and the canary, rolled and scaled by the real controllers, with real EndpointSlices.

See tests/cases/kube_helpers.py for how the cases run and what they run against.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_local import LocalKube

from tests.cases.kube_helpers import (
    PodWatch,
    assert_swept,
    case_env,
    events,
    leftovers,
    steps,
)
from tests.kube import fault_image
from tests.portal import run_case
from tests.utils import wait_for


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
