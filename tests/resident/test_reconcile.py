"""The operator's pure rules (operator/kubeprobe_operator/reconcile.py): ProbeConfig
spec → Deployment manifest, and Deployment + pods → the status the operator writes."""

from __future__ import annotations

from typing import Any

from kubeprobe_operator import reconcile

SPEC: dict[str, Any] = {
    "probe": {
        "case": "etcd",
        "env": [{"name": "ETCD_ENDPOINTS", "value": "https://etcd:2379"}],
        "resources": {"requests": {"cpu": "20m"}},
    },
    "intervalMs": 250,
    "sampleTimeoutMs": 2000,
    "denoise": {"k": 2, "n": 4},
    "report": {"rate": 0.5, "burst": 3, "batchWindowMs": 5000},
    "center": {"url": "https://center.example/", "tokenSecretRef": {"name": "tok", "key": "t"}},
    "serviceAccountName": "kubeprobe-probe",
    "probeName": "etcd-main",
    "cluster": "prod-1",
}


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_deployment_carries_the_env_contract_and_the_token_by_reference() -> None:
    manifest = reconcile.deployment_manifest(
        name="etcd", namespace="probes", uid="u-1", spec=SPEC, probe_image="reg/probe:9"
    )
    assert manifest["metadata"]["name"] == "etcd-resident"
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "kubeprobe.io/v1alpha1",
            "kind": "ProbeConfig",
            "name": "etcd",
            "uid": "u-1",
            "controller": True,
        }
    ]
    spec = manifest["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "kubeprobe-operator",
        "kubeprobe.io/probeconfig": "etcd",
    }
    # No pause in probing while a new revision starts.
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "kubeprobe-probe"
    container = pod["containers"][0]
    assert container["image"] == "reg/probe:9"
    assert container["command"] == ["python", "-m", "probe_sdk.resident"]
    assert container["resources"] == {"requests": {"cpu": "20m"}}
    assert env_of(manifest) == {
        "KUBEPROBE_RESIDENT_URL": "https://center.example",
        "KUBEPROBE_TOKEN": {"secretKeyRef": {"name": "tok", "key": "t"}},
        "KUBEPROBE_RESIDENT_PROBE": "etcd-main",
        "KUBEPROBE_CLUSTER": "prod-1",
        "KUBEPROBE_INTERVAL_MS": "250",
        "KUBEPROBE_SAMPLE_TIMEOUT_MS": "2000",
        "KUBEPROBE_DENOISE_K": "2",
        "KUBEPROBE_DENOISE_N": "4",
        "KUBEPROBE_REPORT_RATE": "0.5",
        "KUBEPROBE_REPORT_BURST": "3",
        "KUBEPROBE_BATCH_WINDOW_MS": "5000",
        "KUBEPROBE_PROBECONFIG": "etcd",
        "KUBEPROBE_CASE": "etcd",
        "PROBE_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "ETCD_ENDPOINTS": "https://etcd:2379",
    }


def test_a_custom_image_keeps_its_command_and_unset_fields_get_the_crd_defaults() -> None:
    spec = {
        "probe": {
            "image": "reg/mine:1",
            "args": ["--fast"],
            "env": [{"name": "PROBE_NAMESPACE", "value": "elsewhere"}],
        },
        "center": {"url": "http://c", "tokenSecretRef": {"name": "tok"}},
        "cluster": "c1",
        "report": {"rate": 2.0},
    }
    manifest = reconcile.deployment_manifest(name="mine", namespace="n", uid="u", spec=spec)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg/mine:1"
    assert "command" not in container  # the image's own entrypoint runs the runner
    assert container["args"] == ["--fast"]
    assert container["resources"] == reconcile.DEFAULT_RESOURCES
    assert "serviceAccountName" not in manifest["spec"]["template"]["spec"]
    env = env_of(manifest)
    assert env["KUBEPROBE_TOKEN"] == {"secretKeyRef": {"name": "tok", "key": "token"}}
    assert env["KUBEPROBE_RESIDENT_PROBE"] == "mine"
    assert (env["KUBEPROBE_INTERVAL_MS"], env["KUBEPROBE_SAMPLE_TIMEOUT_MS"]) == ("1000", "5000")
    assert (env["KUBEPROBE_DENOISE_K"], env["KUBEPROBE_DENOISE_N"]) == ("3", "5")
    assert env["KUBEPROBE_REPORT_RATE"] == "2"  # not "2.0": no churn between 2 and 2.0
    assert env["PROBE_NAMESPACE"] == "elsewhere"
    assert "KUBEPROBE_CASE" not in env


def test_only_spec_changes_change_the_pod_template() -> None:
    def template(spec: dict[str, Any]) -> Any:
        return reconcile.deployment_manifest(name="etcd", namespace="n", uid="u", spec=spec)[
            "spec"
        ]["template"]

    assert template(SPEC) == template(dict(SPEC))
    assert template(SPEC) != template({**SPEC, "intervalMs": 500})
    assert template(SPEC) != template({**SPEC, "denoise": {"k": 3, "n": 4}})


def pod(name: str, created: str, ready: bool, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {
            "phase": "Running" if ready else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **status,
        },
    }


def deployment(generation: int = 1, observed: int = 1, replicas: int = 1, updated: int = 1) -> Any:
    return {
        "metadata": {"generation": generation},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
        },
    }


def ready(**kwargs: Any) -> tuple[dict[str, str], str]:
    args: dict[str, Any] = {"generation": 2, "observed_generation": 2, "pods": []}
    args.update(kwargs)
    return reconcile.ready_condition(**args)


def test_ready_needs_the_applied_generation_a_rolled_out_deployment_and_a_ready_pod() -> None:
    condition, pod_name = ready(deployment=deployment(), pods=[pod("a", "t1", True)])
    assert (condition["status"], condition["reason"], pod_name) == ("True", "PodReady", "a")

    condition, _ = ready(observed_generation=1, deployment=deployment(), pods=[])
    assert (condition["status"], condition["reason"]) == ("False", "Reconciling")
    condition, _ = ready(deployment=None)
    assert condition["reason"] == "DeploymentMissing"
    condition, _ = ready(deployment=deployment(generation=2, observed=1))
    assert condition["reason"] == "RollingOut"
    # Mid-rollout: the old pod is still there next to the new one.
    condition, pod_name = ready(
        deployment=deployment(replicas=2, updated=1),
        pods=[pod("old", "t1", True), pod("new", "t2", False)],
    )
    assert (condition["reason"], pod_name) == ("RollingOut", "new")
    waiting = {
        "containerStatuses": [
            {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
        ]
    }
    condition, _ = ready(deployment=deployment(), pods=[pod("p", "t1", False, **waiting)])
    assert condition["reason"] == "PodNotReady"
    assert condition["message"] == "pod p: phase Pending; waiting: ImagePullBackOff (not found)"


def test_a_reconcile_error_stays_in_status_until_the_generation_is_applied() -> None:
    failed = {"type": "Ready", "status": "False", "reason": "ReconcileFailed", "message": "403"}
    condition, _ = ready(observed_generation=1, deployment=deployment(), previous=failed)
    assert (condition["reason"], condition["message"]) == ("ReconcileFailed", "403")
    condition, _ = ready(deployment=deployment(), pods=[pod("a", "t", True)], previous=failed)
    assert condition["reason"] == "PodReady"


def test_status_patch_moves_the_transition_time_only_on_a_change_and_keeps_reporting() -> None:
    reporting = {"type": "Reporting", "status": "True", "lastTransitionTime": "t0"}
    config: dict[str, Any] = {
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "conditions": [reporting]},
    }
    patch = reconcile.status_patch(
        config=config, deployment=deployment(), pods=[pod("a", "t", True)], now="t1"
    )
    assert patch["pod"] == "a"
    assert patch["conditions"][0] == reporting
    assert patch["conditions"][1]["lastTransitionTime"] == "t1"
    config["status"].update(patch)
    # Same state later: nothing to write.
    assert (
        reconcile.status_patch(
            config=config, deployment=deployment(), pods=[pod("a", "t", True)], now="t2"
        )
        == {}
    )
    # Not ready any more: the time moves.
    patch = reconcile.status_patch(
        config=config, deployment=deployment(), pods=[pod("a", "t", False)], now="t3"
    )
    assert patch["conditions"][1]["status"] == "False"
    assert patch["conditions"][1]["lastTransitionTime"] == "t3"
