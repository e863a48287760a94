"""ProbeConfig → resident Deployment, and Deployment + pods → ProbeConfig status.

Pure functions over plain dicts (the JSON the API server speaks), so every
rule here is unit-tested without a cluster; handlers.py does the I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

GROUP = "kubeprobe.io"
VERSION = "v1alpha1"
PLURAL = "probeconfigs"
KIND = "ProbeConfig"

OPERATOR = "kubeprobe-operator"
MANAGED_BY = "app.kubernetes.io/managed-by"
CONFIG_LABEL = "kubeprobe.io/probeconfig"
CONTAINER = "resident"
DEFAULT_PROBE_IMAGE = "kubeprobe/probe:0.1.0"
RESIDENT_COMMAND = ["python", "-m", "probe_sdk.resident"]
SAMPLES_PATH = "/api/v1/resident/samples"

# The CRD's defaults, repeated so a spec read before defaulting (or in a unit
# test) reconciles the same way the API server would have filled it in.
DEFAULTS: dict[str, Any] = {
    "intervalMs": 1000,
    "sampleTimeoutMs": 5000,
    "denoise": {"k": 3, "n": 5},
    "report": {"rate": 1, "burst": 5, "batchWindowMs": 1000},
}
DEFAULT_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


def deployment_name(config_name: str) -> str:
    """The resident Deployment's name (the CRD keeps ProbeConfig names short enough)."""
    return f"{config_name}-resident"


def selector_labels(config_name: str) -> dict[str, str]:
    return {MANAGED_BY: OPERATOR, CONFIG_LABEL: config_name}


def _setting(spec: Mapping[str, Any], section: str, key: str) -> Any:
    value = (spec.get(section) or {}).get(key)
    return DEFAULTS[section][key] if value is None else value


def _number(value: Any) -> str:
    """Env values are strings; 1.0 is written as 1 so the pod spec does not churn."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def resident_env(name: str, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The env contract of the resident pod (docs/resident.md), then the spec's own env."""
    center = spec.get("center") or {}
    secret = center.get("tokenSecretRef") or {}
    probe = spec.get("probe") or {}
    interval = spec.get("intervalMs", DEFAULTS["intervalMs"])
    timeout = spec.get("sampleTimeoutMs", DEFAULTS["sampleTimeoutMs"])
    env: list[dict[str, Any]] = [
        {"name": "KUBEPROBE_RESIDENT_URL", "value": str(center.get("url", "")).rstrip("/")},
        # By reference: the token never appears in the Deployment.
        {
            "name": "KUBEPROBE_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": secret.get("name", ""), "key": secret.get("key", "token")}
            },
        },
        {"name": "KUBEPROBE_RESIDENT_PROBE", "value": spec.get("probeName") or name},
        {"name": "KUBEPROBE_CLUSTER", "value": str(spec.get("cluster", ""))},
        {"name": "KUBEPROBE_INTERVAL_MS", "value": _number(interval)},
        {"name": "KUBEPROBE_SAMPLE_TIMEOUT_MS", "value": _number(timeout)},
        {"name": "KUBEPROBE_DENOISE_K", "value": _number(_setting(spec, "denoise", "k"))},
        {"name": "KUBEPROBE_DENOISE_N", "value": _number(_setting(spec, "denoise", "n"))},
        {"name": "KUBEPROBE_REPORT_RATE", "value": _number(_setting(spec, "report", "rate"))},
        {"name": "KUBEPROBE_REPORT_BURST", "value": _number(_setting(spec, "report", "burst"))},
        {
            "name": "KUBEPROBE_BATCH_WINDOW_MS",
            "value": _number(_setting(spec, "report", "batchWindowMs")),
        },
        {"name": "KUBEPROBE_PROBECONFIG", "value": name},
        # The api-roundtrip case works in the pod's own namespace.
        {
            "name": "PROBE_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
    ]
    if probe.get("case"):
        env.append({"name": "KUBEPROBE_CASE", "value": probe["case"]})
    own = [dict(item) for item in probe.get("env") or []]
    # The CRD refuses KUBEPROBE_* names in spec.probe.env (the contract is the
    # operator's); anything else of the spec's, PROBE_NAMESPACE included, wins.
    own = [item for item in own if not str(item.get("name", "")).startswith("KUBEPROBE_")]
    overridden = {item.get("name") for item in own}
    return [item for item in env if item["name"] not in overridden] + own


def deployment_manifest(
    *,
    name: str,
    namespace: str,
    uid: str,
    spec: Mapping[str, Any],
    probe_image: str = DEFAULT_PROBE_IMAGE,
) -> dict[str, Any]:
    """The resident Deployment of one ProbeConfig, for server-side apply.

    One replica, owned by the ProbeConfig (the garbage collector deletes it
    with the CR), rolled by surge so that probing never pauses on an edit.
    """
    probe = spec.get("probe") or {}
    labels = {**selector_labels(name), "app.kubernetes.io/name": "kubeprobe-resident"}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": probe.get("image") or probe_image,
        "env": resident_env(name, spec),
        "resources": probe.get("resources") or DEFAULT_RESOURCES,
    }
    if probe.get("command"):
        container["command"] = list(probe["command"])
    elif probe.get("case"):
        container["command"] = list(RESIDENT_COMMAND)
    if probe.get("args"):
        container["args"] = list(probe["args"])
    pod_spec: dict[str, Any] = {
        "containers": [container],
        # The runner flushes its buffered windows on SIGTERM within this grace.
        "terminationGracePeriodSeconds": 15,
    }
    if spec.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = spec["serviceAccountName"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "name": name,
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector_labels(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _condition(pod: Mapping[str, Any], kind: str) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def pod_summary(pod: Mapping[str, Any]) -> str:
    """Why a pod is not ready, in one line: phase and container waiting/terminated reasons."""
    status = pod.get("status") or {}
    parts = [f"phase {status.get('phase', 'Unknown')}"]
    for container in status.get("containerStatuses") or []:
        for key in ("waiting", "terminated"):
            detail = (container.get("state") or {}).get(key)
            if detail and detail.get("reason"):
                message = detail.get("message") or ""
                parts.append(f"{key}: {detail['reason']}" + (f" ({message})" if message else ""))
    return "; ".join(parts)


def current_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest pod not being deleted: during a rollout, the new revision's."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not live:
        return None
    return max(
        live,
        key=lambda p: (
            (p.get("metadata") or {}).get("creationTimestamp") or "",
            (p.get("metadata") or {}).get("name") or "",
        ),
    )


def ready_condition(
    *,
    generation: int,
    observed_generation: int | None,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], str]:
    """(the Ready condition without its time, the resident pod's name)."""
    pod = current_pod(pods)
    pod_name = (pod.get("metadata") or {}).get("name", "") if pod else ""

    def cond(ok: bool, reason: str, message: str) -> tuple[dict[str, str], str]:
        status = "True" if ok else "False"
        return {"type": "Ready", "status": status, "reason": reason, "message": message}, pod_name

    if observed_generation != generation:
        if previous and previous.get("reason") == "ReconcileFailed":
            # Keep the error that explains why this generation is not applied.
            return cond(False, "ReconcileFailed", str(previous.get("message", "")))
        return cond(False, "Reconciling", f"generation {generation} is not applied yet")
    if deployment is None:
        return cond(False, "DeploymentMissing", "the resident Deployment does not exist")
    dep_status = deployment.get("status") or {}
    dep_generation = (deployment.get("metadata") or {}).get("generation", 0)
    if dep_status.get("observedGeneration", 0) < dep_generation:
        return cond(False, "RollingOut", "the Deployment controller has not seen the change yet")
    updated = dep_status.get("updatedReplicas", 0)
    total = dep_status.get("replicas", 0)
    if updated < 1 or total > updated:
        return cond(False, "RollingOut", f"{updated} of {total} pods run the current spec")
    if pod is None:
        return cond(False, "PodMissing", "no resident pod exists")
    if not _condition(pod, "Ready"):
        return cond(False, "PodNotReady", f"pod {pod_name}: {pod_summary(pod)}")
    return cond(True, "PodReady", f"pod {pod_name} is ready")


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_condition(
    conditions: Sequence[Mapping[str, Any]], new: Mapping[str, Any], now: str
) -> list[dict[str, Any]]:
    """Conditions with `new` replacing its type; the transition time moves only when
    the status changes, and conditions of other types (Reporting) are kept."""
    out: list[dict[str, Any]] = []
    replaced = False
    for condition in conditions:
        if condition.get("type") != new["type"]:
            out.append(dict(condition))
            continue
        replaced = True
        moved = condition.get("status") != new["status"]
        out.append(
            {
                **new,
                "lastTransitionTime": now if moved else condition.get("lastTransitionTime", now),
            }
        )
    if not replaced:
        out.append({**new, "lastTransitionTime": now})
    return out


def status_patch(
    *,
    config: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    """The status fields the operator owns, from the live objects; {} when nothing changed."""
    meta = config.get("metadata") or {}
    status = config.get("status") or {}
    conditions = list(status.get("conditions") or [])
    previous = next((c for c in conditions if c.get("type") == "Ready"), None)
    ready, pod_name = ready_condition(
        generation=meta.get("generation", 0),
        observed_generation=status.get("observedGeneration"),
        deployment=deployment,
        pods=pods,
        previous=previous,
    )
    patch: dict[str, Any] = {}
    if previous is None or any(
        previous.get(key) != ready[key] for key in ("status", "reason", "message")
    ):
        patch["conditions"] = merge_condition(conditions, ready, now)
    if status.get("pod", "") != pod_name:
        patch["pod"] = pod_name
    return patch
