"""kwok Stages for the local cluster: kwok's own defaults, kept off faulted objects,
plus the faults tests ask for (see kube_local.py's docstring and docs/development.md).

A Stage's `statusTemplate` is a Go template over the object that kwok writes
into its status; its selector uses jq-like expressions over the object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAULT_KEY = "kubeprobe.dev/fault"
FAULT_IMAGE_PREFIX = "fault.kubeprobe.dev/"

# Each fault: what kwok writes into the pod's status (a Go template over the pod).
_CONTAINERS_WAITING = """
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
        restartCount: {restarts}
        started: false
        state:
          waiting:
            reason: {reason}
            message: {message}
      {{{{ end }}}}
"""
_CONTAINERS_TERMINATED = """
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {code}
            reason: {reason}
            message: {message}
            startedAt: {{{{ $now | Quote }}}}
            finishedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
"""
_CONTAINERS_RUNNING = """
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
"""
_POD_HEAD = """{{ $now := Now }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      startTime: {{ $now | Quote }}
      conditions:
      - type: Initialized
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      - type: Ready
        status: "False"
        lastTransitionTime: {{ $now | Quote }}
      - type: ContainersReady
        status: "False"
        lastTransitionTime: {{ $now | Quote }}
"""
_IMAGE_MESSAGE = '{{ printf "Back-off pulling image %q" .image | Quote }}'

FAULTS: dict[str, dict[str, Any]] = {
    # The registry refuses the image: waiting ImagePullBackOff, as a kubelet shows it.
    "image-pull": {
        "status": _POD_HEAD
        + "      phase: Pending\n"
        + _CONTAINERS_WAITING.format(restarts=0, reason="ImagePullBackOff", message=_IMAGE_MESSAGE),
        "event": {
            "type": "Warning",
            "reason": "Failed",
            "message": "Failed to pull image: rpc error: code = NotFound desc = failed to pull and unpack image: not found",
        },
    },
    # The process exits non-zero (restartPolicy Never: the pod fails).
    "crash": {
        "status": _POD_HEAD
        + "      phase: Failed\n"
        + _CONTAINERS_TERMINATED.format(code=1, reason="Error", message='""'),
        "restart_policy": ["Never", "OnFailure"],
    },
    # The same crash under a Deployment (restartPolicy Always): CrashLoopBackOff.
    "crash-loop": {
        "status": _POD_HEAD
        + "      phase: Running\n"
        + _CONTAINERS_WAITING.format(
            restarts=3,
            reason="CrashLoopBackOff",
            message='"back-off 40s restarting failed container"',
        ),
        "fault": "crash",
        "restart_policy": ["Always"],
        "event": {
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container",
        },
    },
    # Over its memory limit: the kernel kills it, exit 137.
    "oom": {
        "status": _POD_HEAD
        + "      phase: Failed\n"
        + _CONTAINERS_TERMINATED.format(code=137, reason="OOMKilled", message='""'),
    },
    # The node ran short of memory and the kubelet evicted the pod.
    "evicted": {
        "status": _POD_HEAD
        + "      phase: Failed\n"
        + '      reason: Evicted\n      message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi. "\n'
        + _CONTAINERS_TERMINATED.format(
            code=137,
            reason="ContainerStatusUnknown",
            message='"The container could not be located when the pod was terminated"',
        ),
        "event": {
            "type": "Warning",
            "reason": "Evicted",
            "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi.",
        },
    },
    # The kubelet cannot build the container: its env names a Secret that does not exist.
    "config-error": {
        "status": _POD_HEAD
        + "      phase: Pending\n"
        + _CONTAINERS_WAITING.format(
            restarts=0,
            reason="CreateContainerConfigError",
            message='"secret \\"probe-creds\\" not found"',
        ),
        "event": {
            "type": "Warning",
            "reason": "Failed",
            "message": 'Error: secret "probe-creds" not found',
        },
    },
    # Starts but its readiness probe never passes.
    "not-ready": {"status": _POD_HEAD + "      phase: Running\n" + _CONTAINERS_RUNNING},
}


def _fault_selectors(fault: str) -> list[list[dict[str, Any]]]:
    """Two ways to ask for a fault: the pod's annotation, or its first image."""
    return [
        [{"key": f'.metadata.annotations["{FAULT_KEY}"]', "operator": "In", "values": [fault]}],
        [
            {
                "key": ".spec.containers.[0].image",
                "operator": "In",
                "values": [f"{FAULT_IMAGE_PREFIX}{fault}"],
            }
        ],
    ]


def _no_fault() -> list[dict[str, Any]]:
    images = sorted(
        {f"{FAULT_IMAGE_PREFIX}{spec.get('fault', name)}" for name, spec in FAULTS.items()}
    )
    return [
        {"key": f'.metadata.annotations["{FAULT_KEY}"]', "operator": "DoesNotExist"},
        {"key": ".spec.containers.[0].image", "operator": "NotIn", "values": images},
    ]


def fault_stages() -> list[dict[str, Any]]:
    stages = []
    for name, spec in FAULTS.items():
        fault = spec.get("fault", name)
        for i, selector in enumerate(_fault_selectors(fault)):
            expressions = [
                *selector,
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".spec.nodeName", "operator": "Exists"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ]
            if "restart_policy" in spec:
                expressions.append(
                    {
                        "key": ".spec.restartPolicy",
                        "operator": "In",
                        "values": spec["restart_policy"],
                    }
                )
            next_: dict[str, Any] = {"statusTemplate": spec["status"]}
            if "event" in spec:
                next_["event"] = spec["event"]
            stages.append(
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "Stage",
                    "metadata": {"name": f"kubeprobe-fault-{name}-{i}"},
                    "spec": {
                        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                        "selector": {"matchExpressions": expressions},
                        "next": next_,
                    },
                }
            )
    stages.append(
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": "kubeprobe-fault-node-not-ready"},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Node"},
                "selector": {
                    "matchExpressions": [
                        {
                            "key": f'.metadata.labels["{FAULT_KEY}"]',
                            "operator": "In",
                            "values": ["not-ready"],
                        },
                        {
                            "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                            "operator": "NotIn",
                            "values": ["False"],
                        },
                    ]
                },
                "next": {
                    "statusTemplate": """{{ $now := Now }}
      phase: Running
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        type: {{ .type | Quote }}
      {{ if eq .type "Ready" }}
        status: "False"
        reason: KubeletNotReady
        message: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"
      {{ else }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
      {{ end }}
      {{ end }}
""",
                    "event": {
                        "type": "Normal",
                        "reason": "NodeNotReady",
                        "message": "Node is not ready",
                    },
                },
            },
        }
    )
    return stages


def kwok_stages(stage_dir: Path) -> list[dict[str, Any]]:
    """kwok's own default Stages (copied by kube-build), kept off faulted objects, plus ours."""
    import yaml

    stages = []
    for path in sorted(stage_dir.glob("*.yaml")):
        stage = yaml.safe_load(path.read_text())
        expressions = stage["spec"].setdefault("selector", {}).setdefault("matchExpressions", [])
        kind = stage["spec"]["resourceRef"]["kind"]
        if kind == "Pod" and not stage["spec"]["next"].get("delete"):
            expressions.extend(_no_fault())
        elif kind == "Node":
            expressions.append(
                {"key": f'.metadata.labels["{FAULT_KEY}"]', "operator": "DoesNotExist"}
            )
        stages.append(stage)
    return stages + fault_stages()
