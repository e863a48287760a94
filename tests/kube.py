"""The real Kubernetes control plane in the tests (deploy/dev/kube_local.py).

One cluster per pytest process, started the first time a test asks for it:
etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with
three fake nodes (the last one tainted). Each test works in its own namespace
(`kube_ns`). The binaries come from `deploy/dev/kube-build`; `.ci/run` builds
them before the tests.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_local import FAULT_IMAGE_PREFIX, FAULT_KEY, KubeError, LocalKube

from apps.runs.executors.base import dns_label

__all__ = ["FAULT_IMAGE_PREFIX", "FAULT_KEY", "LocalKube", "fault_image"]


def fault_image(fault: str) -> str:
    """An image name that makes kwok play the fault (image-pull, config-error, crash, oom, evicted, not-ready)."""
    return f"{FAULT_IMAGE_PREFIX}{fault}"


@pytest.fixture(scope="session")
def kube(
    pytestconfig: pytest.Config,
) -> Iterator[LocalKube]:
    # Not under pytest's temporary folders: another pytest process starting on this
    # machine prunes older ones, which would pull the running cluster's files away.
    workdir = Path(tempfile.mkdtemp(prefix="kubeprobe-test-kube-"))
    cluster = LocalKube(workdir, nodes=3)
    started = time.monotonic()
    try:
        cluster.start()
    except KubeError as exc:
        pytest.fail(f"the local Kubernetes control plane did not start: {exc}", pytrace=False)
    # Said in the test log, so a CI log shows which control plane the tests ran against.
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        _, version = cluster.request("GET", "/version")
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nkube: Kubernetes {version['gitVersion']} control plane up in "
                f"{time.monotonic() - started:.1f} s at {cluster.server} (etcd, kube-apiserver, "
                f"kube-controller-manager, kube-scheduler, kwok with {cluster.nodes} nodes; "
                f"logs in {cluster.logs})"
            )
    yield cluster
    cluster.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def kube_ns(kube: LocalKube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (in the background) after it."""
    name = f"{dns_label(request.node.name, 40)}-{uuid.uuid4().hex[:6]}"
    kube.create_namespace(name)
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")
