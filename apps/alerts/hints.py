"""Root-cause hints: from a failing step's error text to the component most likely at fault.

A first, table-driven step towards diagnosis: the patterns are the failure
signatures operators learn to read in pod events and probe errors. The first
matching signature wins, so specific ones come before general ones.
"""

from __future__ import annotations

import re

SIGNATURES: tuple[tuple[str, str], ...] = (
    (
        r"FailedCreatePodSandBox|Failed to create pod sandbox|network plugin|CNI",
        "container runtime / network plugin (CNI) on the node: the pod sandbox could not be "
        "created; check the node's CNI pods and container runtime logs",
    ),
    (
        r"ImagePullBackOff|ErrImagePull|pull access denied|manifest unknown",
        "image registry: the image cannot be pulled; check the image name, registry "
        "reachability and pull secrets",
    ),
    (
        r"CreateContainerConfigError|secret .* not found|configmap .* not found",
        "pod configuration: a referenced Secret or ConfigMap is missing",
    ),
    (
        r"OOMKilled",
        "memory limit: the container was OOM-killed; raise its memory limit or find the leak",
    ),
    (r"Evicted", "node pressure: the kubelet evicted the pod (memory, disk or PID pressure)"),
    (
        r"Unschedulable|FailedScheduling|Insufficient (cpu|memory)|didn't match",
        "scheduler / capacity: no node fits the pod (resources, taints, selectors)",
    ),
    (
        r"etcdserver|context deadline exceeded.*etcd|etcd .*(timeout|unavailable)",
        "etcd: requests time out or fail; check etcd member health, disk latency and leader "
        "elections",
    ),
    (
        r"certificate (has )?expired|expires in|x509",
        "certificates: a certificate is expired, about to expire or not trusted",
    ),
    (
        r"ProgressDeadlineExceeded|rollout stuck",
        "controller / workload: the rollout made no progress; check the new pods' events",
    ),
    (
        r"HTTP 401|HTTP 403|Unauthorized|forbidden",
        "credentials / RBAC: the probe's service account or kubeconfig is not allowed to do this",
    ),
    (
        r"HTTP 5\d\d|apiserver|Connection refused|Max retries exceeded|timed out|unreachable",
        "API server: it is unreachable, slow or erroring; check the apiserver and its load "
        "balancer",
    ),
    (
        r"not covered|drift:",
        "configuration coverage: the expected resource is missing or drifted on this cluster",
    ),
    (
        r"stopped running|no result for",
        "KubeProbe itself: the probe has not finished a run in time; check the workers, the "
        "cluster's executor and skipped runs on the binding",
    ),
)

_COMPILED = tuple((re.compile(pattern, re.I), hint) for pattern, hint in SIGNATURES)


def hint_for(*texts: str) -> str:
    """The hint for the first signature found in the texts (step error, run reason...)."""
    joined = "\n".join(t for t in texts if t)
    for pattern, hint in _COMPILED:
        if pattern.search(joined):
            return hint
    return ""
