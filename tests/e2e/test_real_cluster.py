"""Opt-in: the run loop against a real Kubernetes cluster.

Set KUBEPROBE_E2E_KUBECONFIG to a kubeconfig file (its current context is
used) and run `pytest -m e2e tests/e2e`. Probe pods are created in
KUBEPROBE_E2E_NAMESPACE (default kubeprobe-e2e, created if missing); images
come from KUBEPROBE_E2E_IMAGE (default busybox:1.36). Without the variable
these tests are skipped; in CI the same code paths are tested against the
local control plane that the suite starts (tests/kube.py), whose pods are
played by kwok, so this suite is where real images really run.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.catalog.models import Case, CaseTemplate
from apps.clusters.k8s import cluster_client
from apps.clusters.services import clusters_import_kubeconfig
from apps.runs import cleanup, dispatch, reaping
from apps.runs.models import ProbeRun, RunState
from tests.runs.helpers import make_run
from tests.utils import wait_for

KUBECONFIG = os.environ.get("KUBEPROBE_E2E_KUBECONFIG", "")
NAMESPACE = os.environ.get("KUBEPROBE_E2E_NAMESPACE", "kubeprobe-e2e")
IMAGE = os.environ.get("KUBEPROBE_E2E_IMAGE", "busybox:1.36")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db,
    pytest.mark.skipif(
        not KUBECONFIG, reason="set KUBEPROBE_E2E_KUBECONFIG to run against a real cluster"
    ),
]


@pytest.fixture
def cluster():  # type: ignore[no-untyped-def]
    [result] = clusters_import_kubeconfig(path=Path(KUBECONFIG), namespace=NAMESPACE)
    client = cluster_client(result.cluster)
    from kubernetes.client.exceptions import ApiException

    try:
        client.call(client.core.create_namespace, {"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    return result.cluster


def case(name: str, image: str, command: list[str], timeout: int = 60) -> Case:
    template = CaseTemplate.objects.create(
        name=f"{name}-t", image=image, command=command, timeout_seconds=timeout
    )
    return Case.objects.create(name=name, template=template)


def reap_until_closed(run: ProbeRun, timeout: float = 180) -> ProbeRun:
    def closed() -> ProbeRun | None:
        reaping.runs_reap_cluster(cluster_id=run.cluster_id)
        current = ProbeRun.objects.get(pk=run.pk)
        return current if current.state not in ("dispatched", "running") else None

    return wait_for(closed, timeout=timeout, interval=2, what=f"run {run.pk} to close")


def test_pod_that_exits_before_reporting_is_an_error_and_is_cleaned_up(cluster) -> None:  # type: ignore[no-untyped-def]
    run = make_run(case("e2e-exit", IMAGE, ["sh", "-c", "echo probing; exit 3"]), cluster)
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    closed = reap_until_closed(run)
    assert closed.state == RunState.ERROR
    assert "exit code 3" in closed.reason
    assert "probing" in closed.log_tail
    cleanup.runs_cleanup(run_ids=[run.pk], now=timezone.now() + timedelta(days=1))
    client = cluster_client(cluster)
    pods = client.call_json(
        client.core.list_namespaced_pod, NAMESPACE, label_selector=f"kubeprobe.io/run-id={run.pk}"
    )
    assert all(p["metadata"].get("deletionTimestamp") for p in pods["items"])


def test_missing_image_is_reported_before_the_deadline(cluster) -> None:  # type: ignore[no-untyped-def]
    run = make_run(
        case("e2e-noimage", "kubeprobe.invalid/no-such-image:0", ["true"], timeout=600), cluster
    )
    dispatch.run_dispatch(run_id=run.pk)
    closed = reap_until_closed(run)
    assert closed.state == RunState.ERROR
    assert "ImagePull" in closed.reason or "ErrImagePull" in closed.reason
