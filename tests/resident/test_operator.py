"""The ProbeOperator as a real process against the real control plane, logged in
with a service account that has exactly the RBAC of deploy/kubernetes/probe-operator.yaml.

kwok's pods run nothing but become Running/Ready, which is all the operator
looks at; the real Deployment, ReplicaSet and garbage-collector controllers do
the rollouts and the deletion.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.kube import LocalKube, fault_image
from tests.resident.apiproxy import RecordingProxy, grants_of
from tests.resident.conftest import CONFIGS, probeconfig
from tests.resident.operators import (
    create_peering,
    granted,
    operator_account,
    peers,
    remove_operator_account,
    run_operator,
    shipped_rules,
    without,
)
from tests.utils import wait_for

TOKEN = "resident-token-never-in-the-deployment"
MERGE = "application/merge-patch+json"


def deployment_path(ns: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}-resident"


def get(kube: LocalKube, path: str) -> Any:
    status, body = kube.request("GET", path)
    return body if status == 200 else None


def resident_pods(kube: LocalKube, ns: str, name: str) -> list[dict[str, Any]]:
    selector = f"kubeprobe.io/probeconfig={name}"
    return kube.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"]


def ready_status(kube: LocalKube, ns: str, name: str, generation: int) -> Any:
    """The CR's status once it is Ready at `generation`, else None."""
    config = get(kube, CONFIGS.format(ns=ns) + "/" + name) or {}
    status = config.get("status") or {}
    ready = {c["type"]: c for c in status.get("conditions") or []}.get("Ready") or {}
    if status.get("observedGeneration") == generation and ready.get("status") == "True":
        return status
    return None


def token_secret(kube: LocalKube, ns: str) -> None:
    kube.api(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "resident-token"}, "stringData": {"token": TOKEN}},
    )


def test_a_probeconfig_becomes_a_resident_deployment_rolled_on_edit_and_collected_with_it(
    probeconfig_crd: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    kube = probeconfig_crd
    ns, name = kube_ns, "etcd-main"
    proxy = RecordingProxy(kube)
    account = operator_account(kube, ns, shipped_rules())
    create_peering(kube, ns)
    token_secret(kube, ns)
    try:
        with run_operator(proxy.kubeconfig(account), tmp_path, "op-a", ns, kube=kube) as op:
            body = probeconfig(
                name,
                probe={
                    "case": "etcd",
                    "env": [{"name": "ETCD_ENDPOINTS", "value": "https://etcd:2379"}],
                    "resources": {"requests": {"cpu": "15m", "memory": "40Mi"}},
                },
                intervalMs=200,
                serviceAccountName="default",
            )
            created = kube.api("POST", CONFIGS.format(ns=ns), body)

            deployment = wait_for(lambda: get(kube, deployment_path(ns, name)), timeout=30)
            assert deployment["metadata"]["ownerReferences"] == [
                {
                    "apiVersion": "kubeprobe.io/v1alpha1",
                    "kind": "ProbeConfig",
                    "name": name,
                    "uid": created["metadata"]["uid"],
                    "controller": True,
                }
            ]
            assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == (
                "kubeprobe-operator"
            )
            assert deployment["spec"]["replicas"] == 1
            pod_spec = deployment["spec"]["template"]["spec"]
            assert pod_spec["serviceAccountName"] == "default"
            container = pod_spec["containers"][0]
            assert container["image"] == "registry.example/kubeprobe/probe:test"
            assert container["command"] == ["python", "-m", "probe_sdk.resident"]
            assert container["resources"] == {"requests": {"cpu": "15m", "memory": "40Mi"}}
            env = {e["name"]: e for e in container["env"]}
            assert env["KUBEPROBE_TOKEN"]["valueFrom"] == {
                "secretKeyRef": {"name": "resident-token", "key": "token"}
            }
            assert env["KUBEPROBE_INTERVAL_MS"]["value"] == "200"
            assert env["KUBEPROBE_CASE"]["value"] == "etcd"
            assert env["KUBEPROBE_RESIDENT_URL"]["value"] == "https://center.example"
            assert env["ETCD_ENDPOINTS"]["value"] == "https://etcd:2379"
            assert TOKEN not in json.dumps(deployment)

            # Ready once kwok has the pod Ready; status names the Deployment and the pod.
            status = wait_for(lambda: ready_status(kube, ns, name, 1), timeout=60)
            pods = resident_pods(kube, ns, name)
            assert [p["metadata"]["name"] for p in pods] == [status["pod"]]
            assert status["deployment"] == f"{name}-resident"
            first_pod = pods[0]

            # An edit rolls the Deployment: a new pod template, a new pod, Ready again.
            kube.api(
                "PATCH",
                CONFIGS.format(ns=ns) + "/" + name,
                {"spec": {"intervalMs": 500, "denoise": {"k": 2, "n": 3}}},
                content_type=MERGE,
            )
            status = wait_for(
                lambda: ready_status(kube, ns, name, 2), timeout=60, what="Ready at generation 2"
            )
            assert status["pod"] != first_pod["metadata"]["name"]
            new_pod = next(
                p for p in resident_pods(kube, ns, name) if p["metadata"]["name"] == status["pod"]
            )
            assert (
                new_pod["metadata"]["labels"]["pod-template-hash"]
                != first_pod["metadata"]["labels"]["pod-template-hash"]
            )
            env = {e["name"]: e.get("value") for e in new_pod["spec"]["containers"][0]["env"]}
            assert (env["KUBEPROBE_INTERVAL_MS"], env["KUBEPROBE_DENOISE_K"]) == ("500", "2")
            wait_for(lambda: len(resident_pods(kube, ns, name)) == 1, timeout=60)

            # Deleting the CR: the real garbage collector deletes the Deployment and its pods.
            kube.api("DELETE", CONFIGS.format(ns=ns) + "/" + name)
            wait_for(lambda: get(kube, deployment_path(ns, name)) is None, timeout=60)
            wait_for(lambda: not resident_pods(kube, ns, name), timeout=60)
            assert "Traceback" not in op.log()

        # What the operator called, all allowed, is exactly what the manifest grants.
        # (Only here and cluster-wide: it also sees other tests' terminating namespaces.)
        mine = [
            (method, path, status)
            for method, path, status in proxy.seen
            if f"/namespaces/{ns}/" in path or "/namespaces/" not in path
        ]
        assert not [s for s in mine if s[2] == 403], mine
        used = grants_of(mine)
        assert used == granted(shipped_rules())
    finally:
        proxy.close()
        remove_operator_account(kube, ns)


def test_edited_and_deleted_while_the_pod_starts_converges_without_an_error_loop(
    probeconfig_crd: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    kube = probeconfig_crd
    ns, name = kube_ns, "edited"
    account = operator_account(kube, ns, shipped_rules())
    create_peering(kube, ns)
    try:
        with run_operator(account, tmp_path, "op-a", ns, kube=kube) as op:
            # The first pod cannot pull its image: status says so, not Ready.
            body = probeconfig(name, probe={"image": fault_image("image-pull")})
            kube.api("POST", CONFIGS.format(ns=ns), body)

            def not_ready_reason() -> Any:
                config = get(kube, CONFIGS.format(ns=ns) + "/" + name) or {}
                for c in (config.get("status") or {}).get("conditions") or []:
                    if c["type"] == "Ready" and "ImagePull" in c.get("message", ""):
                        return c["message"]
                return None

            message = wait_for(not_ready_reason, timeout=60, what="the pull error in status")
            assert message.startswith(f"pod {name}-resident-")
            # Two edits in a row while that pod is stuck: the last one wins.
            for interval in (300, 400):
                kube.api(
                    "PATCH",
                    CONFIGS.format(ns=ns) + "/" + name,
                    {"spec": {"intervalMs": interval, "probe": {"image": "registry.example/ok:1"}}},
                    content_type=MERGE,
                )
            status = wait_for(lambda: ready_status(kube, ns, name, 3), timeout=60)
            deployment = get(kube, deployment_path(ns, name))
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert (container["image"], env["KUBEPROBE_INTERVAL_MS"]) == (
                "registry.example/ok:1",
                "400",
            )
            wait_for(lambda: len(resident_pods(kube, ns, name)) == 1, timeout=60)
            assert resident_pods(kube, ns, name)[0]["metadata"]["name"] == status["pod"]

            # Created and deleted at once: whatever the operator got to do is collected.
            kube.api("POST", CONFIGS.format(ns=ns), probeconfig("gone"))
            kube.api("DELETE", CONFIGS.format(ns=ns) + "/gone")
            kube.api("POST", CONFIGS.format(ns=ns), probeconfig("gone-later"))
            wait_for(lambda: get(kube, deployment_path(ns, "gone-later")), timeout=30)
            kube.api("DELETE", CONFIGS.format(ns=ns) + "/gone-later")

            def collected() -> bool:
                return all(
                    get(kube, deployment_path(ns, g)) is None and not resident_pods(kube, ns, g)
                    for g in ("gone", "gone-later")
                )

            wait_for(collected, timeout=60, what="the Deployments of deleted CRs collected")
            # The first CR is untouched and still Ready.
            assert ready_status(kube, ns, name, 3)
            log = op.log()
            assert "Traceback" not in log
            assert not re.findall(r"\[ERROR\s*\].*" + ns, log), log[-3000:]
    finally:
        remove_operator_account(kube, ns)


def applied_lines(log: str, ns: str) -> list[str]:
    return re.findall(rf"applied Deployment {ns}/\S+ for generation \d+", log)


def test_of_two_replicas_only_one_reconciles_and_the_other_takes_over(
    probeconfig_crd: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    kube = probeconfig_crd
    ns, name = kube_ns, "peered"
    account = operator_account(kube, ns, shipped_rules())
    create_peering(kube, ns)
    try:
        with (
            run_operator(account, tmp_path, "op-high", ns, "--priority=200", kube=kube) as high,
            run_operator(account, tmp_path, "op-low", ns, "--priority=100", kube=kube) as low,
        ):
            assert {"op-high", "op-low"} <= set(peers(kube, ns))
            # With peering required, a replica starts paused and resumes only when it
            # sees no live peer of a higher priority.
            wait_for(lambda: "Resuming operations" in high.log(), timeout=30)
            kube.api("POST", CONFIGS.format(ns=ns), probeconfig(name))
            wait_for(lambda: ready_status(kube, ns, name, 1), timeout=60)
            assert "Resuming operations" not in low.log()
            assert applied_lines(high.log(), ns) == [
                f"applied Deployment {ns}/{name}-resident for generation 1"
            ]
            assert applied_lines(low.log(), ns) == []

            # The active replica stops cleanly: it leaves the peering, the other resumes.
            before = get(kube, deployment_path(ns, name))["metadata"]["generation"]
            high.stop()
            wait_for(lambda: "op-high" not in peers(kube, ns), timeout=30)
            wait_for(lambda: "Resuming operations" in low.log(), timeout=30)
            # On taking over it re-applies what it finds, which changes nothing ...
            line = f"applied Deployment {ns}/{name}-resident for generation"
            wait_for(lambda: applied_lines(low.log(), ns) == [f"{line} 1"], timeout=30)
            assert get(kube, deployment_path(ns, name))["metadata"]["generation"] == before
            # ... and handles the next edit.
            kube.api(
                "PATCH",
                CONFIGS.format(ns=ns) + "/" + name,
                {"spec": {"intervalMs": 700}},
                content_type=MERGE,
            )
            wait_for(lambda: ready_status(kube, ns, name, 2), timeout=60)
            assert applied_lines(low.log(), ns) == [f"{line} 1", f"{line} 2"]
            assert len(applied_lines(high.log(), ns)) == 1
    finally:
        remove_operator_account(kube, ns)


def test_a_missing_rbac_verb_is_a_clear_error_in_status_and_log_not_a_crash_loop(
    probeconfig_crd: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    kube = probeconfig_crd
    ns, name = kube_ns, "forbidden"
    rules = without(shipped_rules(), ("apps", "deployments", "patch"))
    account = operator_account(kube, ns, rules)
    create_peering(kube, ns)
    try:
        with run_operator(account, tmp_path, "op-a", ns, kube=kube) as op:
            kube.api("POST", CONFIGS.format(ns=ns), probeconfig(name))
            expected = (
                f"cannot apply Deployment {ns}/{name}-resident: PATCH "
                f"/apis/apps/v1/namespaces/{ns}/deployments/{name}-resident: HTTP 403: "
                f'deployments.apps "{name}-resident" is forbidden: User '
                f'"system:serviceaccount:{ns}:kubeprobe-operator" cannot patch resource '
                f'"deployments" in API group "apps"'
            )

            def failed_condition() -> Any:
                config = get(kube, CONFIGS.format(ns=ns) + "/" + name) or {}
                for c in (config.get("status") or {}).get("conditions") or []:
                    if c["type"] == "Ready" and c.get("reason") == "ReconcileFailed":
                        return c
                return None

            condition = wait_for(failed_condition, timeout=30, what="ReconcileFailed in status")
            assert condition["status"] == "False"
            assert condition["message"].startswith(expected), condition["message"]
            # Retried with a delay (2 s in tests), not in a tight loop; the process lives on.
            wait_for(lambda: op.log().count(expected) >= 2, timeout=30, what="a second attempt")
            attempts = op.log().count(expected)
            assert attempts <= 4, op.log()[-3000:]
            assert op.process.poll() is None
            assert get(kube, deployment_path(ns, name)) is None
    finally:
        remove_operator_account(kube, ns)
