"""`make run KUBE=1`: the local control plane registered as `local-kube`, and the
pod player that runs kwok probe pods' commands on this host."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from kube_local import kubeconfig_yaml

from apps.clusters.models import Executor
from apps.scheduling.local_demo import KUBE_CASES, KUBE_CLUSTER
from apps.scheduling.models import Binding
from tests.kube import LocalKube
from tests.portal import ROOT
from tests.utils import wait_for


def admin_kubeconfig(kube: LocalKube, tmp_path: Path, name: str) -> Path:
    cert, key = kube.admin_cert
    user = {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(kubeconfig_yaml(kube.server, kube.ca_path, user, name))
    return path


@pytest.mark.django_db
def test_seed_local_kube_registers_the_cluster_and_binds_the_kubernetes_cases(
    kube: LocalKube, tmp_path: Path
) -> None:
    path = admin_kubeconfig(kube, tmp_path, KUBE_CLUSTER)
    call_command("seed_local_kube", "--kubeconfig", str(path), "--no-run-now")
    binding = Binding.objects.get(name="local-kube-demo")
    [cluster] = binding.clusters.all()
    assert (cluster.name, cluster.executor, cluster.namespace) == (
        KUBE_CLUSTER,
        Executor.KUBERNETES,
        "kubeprobe",
    )
    assert sorted(c.name for c in binding.cases.all()) == sorted(KUBE_CASES)
    assert binding.interval_seconds == 60
    # Again: nothing doubles.
    call_command("seed_local_kube", "--kubeconfig", str(path), "--no-run-now")
    assert Binding.objects.filter(name="local-kube-demo").count() == 1


@pytest.mark.django_db
def test_seed_local_kube_refuses_another_clusters_kubeconfig(
    kube: LocalKube, tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match="--name local-kube"):
        call_command("seed_local_kube", "--kubeconfig", str(admin_kubeconfig(kube, tmp_path, "x")))
    with pytest.raises(CommandError, match="No kubeconfig at"):
        call_command("seed_local_kube", "--kubeconfig", str(tmp_path / "missing"))


@pytest.fixture
def player(kube: LocalKube, kube_ns: str, tmp_path: Path) -> Iterator[Path]:
    config = admin_kubeconfig(kube, tmp_path, "local")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "deploy" / "dev" / "kube_player.py"),
            "--kubeconfig",
            str(config),
            "--namespace",
            kube_ns,
            "--log",
            str(tmp_path / "probes.log"),
        ]
    )
    yield config
    proc.terminate()
    proc.wait(timeout=10)


def probe_pod(name: str, marker: Path, labels: dict[str, str]) -> dict[str, object]:
    script = "import os, pathlib; pathlib.Path(os.environ['MARKER']).write_text(os.environ['KUBECONFIG'])"
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": "kubeprobe/probe:dev",
                    "command": ["python", "-c", script],
                    "env": [{"name": "MARKER", "value": str(marker)}],
                }
            ],
        },
    }


def test_the_player_runs_probe_pods_commands_with_their_env(
    kube: LocalKube, kube_ns: str, player: Path, tmp_path: Path
) -> None:
    played, ignored = tmp_path / "played", tmp_path / "ignored"
    pods = f"/api/v1/namespaces/{kube_ns}/pods"
    kube.api("POST", pods, probe_pod("kp-x-1", played, {"kubeprobe.io/run-id": "1"}))
    # A pod a case created (no run id) is the case's business, not a probe to play.
    kube.api("POST", pods, probe_pod("case-pod", ignored, {"app": "x"}))
    wait_for(played.exists, timeout=30, what="the player to run the probe pod's command")
    assert played.read_text() == str(player)  # the cluster's kubeconfig, as in-cluster config
    assert not ignored.exists()
