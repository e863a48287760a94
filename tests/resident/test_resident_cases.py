"""Built-in cases in resident mode: the runner process sampling the real thing
(the local API server, a real etcd) and reporting to the recording center."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cases.servers import Etcd
from tests.kube import LocalKube
from tests.resident.center import Center
from tests.resident.test_runner import runner, stop
from tests.utils import wait_for

CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps?labelSelector=kubeprobe.io/case=api-roundtrip"


def delivered(center: Center, samples: int) -> list[dict[str, Any]]:
    windows = center.windows()
    return windows if sum(w["count"] for w in windows) >= samples else []


def test_api_roundtrip_samples_the_api_server_and_leaves_nothing(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "delete"]}]
    config = tmp_path / "kubeconfig"
    config.write_text(kube.service_account_kubeconfig(kube_ns, "resident", rules))
    center = Center()
    env = {
        "KUBEPROBE_SAMPLE": "",
        "KUBEPROBE_CASE": "api-roundtrip",
        "KUBECONFIG": str(config),
        "PROBE_NAMESPACE": kube_ns,
        "KUBEPROBE_INTERVAL_MS": "100",
    }
    with runner(center, tmp_path, **env) as (process, _, _log):
        windows = wait_for(lambda: delivered(center, 10), timeout=30, what="10 samples")
        assert stop(process) == 0
    windows = center.windows()
    assert sum(w["failures"] for w in windows) == 0, windows
    assert {w["state"] for w in windows} == {"up"}
    assert all(w["latency_ms"]["max"] < 1000 for w in windows)
    assert kube.api("GET", CONFIGMAPS.format(ns=kube_ns))["items"] == []


def test_api_roundtrip_names_the_failing_step_and_goes_down(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    # No delete: every sample fails at its last step, with the API server's answer.
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get"]}]
    config = tmp_path / "kubeconfig"
    config.write_text(kube.service_account_kubeconfig(kube_ns, "resident", rules))
    center = Center()
    env = {
        "KUBEPROBE_SAMPLE": "",
        "KUBEPROBE_CASE": "api-roundtrip",
        "KUBECONFIG": str(config),
        "PROBE_NAMESPACE": kube_ns,
        "KUBEPROBE_INTERVAL_MS": "100",
    }
    with runner(center, tmp_path, **env) as (process, _, _log):
        wait_for(
            lambda: any(w["state"] == "down" for w in center.windows()),
            timeout=30,
            what="the state down",
        )
        assert stop(process) == 0
    failing = [w for w in center.windows() if w["failures"]]
    error = failing[0]["errors"][0]
    assert error["step"] == "delete"
    assert error["error"].startswith("RestError: DELETE /api/v1/namespaces/")
    assert 'cannot delete resource "configmaps"' in error["error"]


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    server = Etcd(tmp_path)
    yield server
    server.stop()


def test_etcd_samples_a_real_etcd_and_goes_down_when_it_stops(etcd: Etcd, tmp_path: Path) -> None:
    center = Center()
    env = {
        "KUBEPROBE_SAMPLE": "",
        "KUBEPROBE_CASE": "etcd",
        "ETCD_ENDPOINTS": etcd.url,
        "ETCD_TIMEOUT_SECONDS": "1",
        "KUBEPROBE_INTERVAL_MS": "100",
    }
    with runner(center, tmp_path, **env) as (process, _, _log):
        wait_for(lambda: delivered(center, 10), timeout=30, what="10 samples")
        assert sum(w["failures"] for w in center.windows()) == 0
        etcd.stop()
        wait_for(
            lambda: any(w["state"] == "down" for w in center.windows()),
            timeout=30,
            what="the state down",
        )
        assert stop(process) == 0
    error = next(w for w in center.windows() if w["failures"])["errors"][0]
    assert error["step"] == f"put {etcd.url}"
    assert "Connection refused" in error["error"]
