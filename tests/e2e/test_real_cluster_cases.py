"""Opt-in: the built-in Kubernetes cases against a real cluster.

Set KUBEPROBE_E2E_KUBECONFIG (and optionally KUBEPROBE_E2E_NAMESPACE, which
must exist, and KUBEPROBE_E2E_PAUSE_IMAGE) and run `pytest -m e2e tests/e2e`.
The cases run as processes on this machine with that kubeconfig, as they
would in a probe pod, and report to a stand-in portal. Skipped otherwise: in
CI the same cases run against the local control plane (tests/kube.py).
"""

from __future__ import annotations

import os

import pytest

from tests.portal import run_case

KUBECONFIG = os.environ.get("KUBEPROBE_E2E_KUBECONFIG", "")
ENV = {
    "KUBECONFIG": KUBECONFIG,
    "PROBE_NAMESPACE": os.environ.get("KUBEPROBE_E2E_NAMESPACE", "kubeprobe-e2e"),
    "PROBE_IMAGE": os.environ.get("KUBEPROBE_E2E_PAUSE_IMAGE", "registry.k8s.io/pause:3.10"),
    "WAIT_TIMEOUT_SECONDS": "180",
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not KUBECONFIG, reason="set KUBEPROBE_E2E_KUBECONFIG to run against a real cluster"
    ),
]


@pytest.mark.parametrize(
    ("module", "env"),
    [
        ("lifecycle", {"LIFECYCLE_KIND": "pod"}),
        ("lifecycle", {"LIFECYCLE_KIND": "deployment"}),
        ("lifecycle", {"LIFECYCLE_KIND": "statefulset"}),
        ("canary", {}),
        ("nodes", {"NODES_MAX": "3"}),
        (
            "config_coverage",
            {
                "COVERAGE_RESOURCE": "v1/namespaces",
                "COVERAGE_NAME": "kube-system",
                "COVERAGE_EXPECT": ".status.phase=Active",
            },
        ),
    ],
)
def test_case_passes_on_a_healthy_cluster(module: str, env: dict[str, str]) -> None:
    result, body = run_case(module, {**ENV, **env}, timeout=600)
    assert body["ok"] is True, (body["errors"], result.stderr[-2000:])
