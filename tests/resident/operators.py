"""Running the ProbeOperator in tests: as a real `python -m kubeprobe_operator`
process, logged in with a service account that has the shipped manifest's RBAC."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kube import LocalKube
from tests.portal import ROOT
from tests.resident.apiproxy import Grant
from tests.resident.conftest import KUBERNETES, install_crd, manifests
from tests.utils import wait_for

OPERATOR_MANIFEST = KUBERNETES / "probe-operator.yaml"
PEERINGS = "/apis/kopf.dev/v1/clusterkopfpeerings"


def shipped_rules() -> list[dict[str, Any]]:
    role = next(d for d in manifests(OPERATOR_MANIFEST) if d["kind"] == "ClusterRole")
    return role["rules"]


def granted(rules: list[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def without(rules: list[dict[str, Any]], drop: Grant) -> list[dict[str, Any]]:
    out = copy.deepcopy(rules)
    for rule in out:
        if drop[0] in rule["apiGroups"] and drop[1] in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != drop[2]]
    return out


def operator_account(kube: LocalKube, namespace: str, rules: list[dict[str, Any]]) -> str:
    """The operator's service account in `namespace`, bound cluster-wide to `rules`
    (a per-test ClusterRole named after the namespace); its token kubeconfig."""
    install_crd(kube, OPERATOR_MANIFEST)  # kopf's peering resource
    return kube.service_account_kubeconfig(namespace, "kubeprobe-operator", cluster_rules=rules)


def remove_operator_account(kube: LocalKube, namespace: str) -> None:
    name = f"{namespace}-kubeprobe-operator"
    for kind in ("clusterrolebindings", "clusterroles"):
        kube.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/{kind}/{name}")


def create_peering(kube: LocalKube, name: str) -> None:
    install_crd(kube, OPERATOR_MANIFEST)
    kube.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    )


def peers(kube: LocalKube, name: str) -> dict[str, Any]:
    status, body = kube.request("GET", f"{PEERINGS}/{name}")
    return (body.get("status") or {}) if status == 200 else {}


@dataclass
class Operator:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def run_operator(
    kubeconfig: str,
    workdir: Path,
    name: str,
    peering: str,
    *args: str,
    kube: LocalKube | None = None,
) -> Iterator[Operator]:
    """`python -m kubeprobe_operator` with KUBECONFIG = the given kubeconfig (kopf's
    own login from it); when kube is given, wait until it joined the peering."""
    config = workdir / f"{name}.kubeconfig"
    config.write_text(kubeconfig)
    log_path = workdir / f"{name}.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KUBERNETES_", "KUBEPROBE_OPERATOR_"))
    }
    env.update(
        KUBECONFIG=str(config),
        PYTHONPATH=str(ROOT / "operator"),
        POD_ID=name,
        PYTHONUNBUFFERED="1",
        # Quick status resync and retries, so tests wait seconds, not the defaults.
        KUBEPROBE_OPERATOR_RESYNC_SECONDS="2",
        KUBEPROBE_OPERATOR_RETRY_SECONDS="2",
        KUBEPROBE_PROBE_IMAGE="registry.example/kubeprobe/probe:test",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubeprobe_operator", "--peering", peering, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    handle = Operator(name, process, log_path)
    try:
        if kube is not None:
            wait_for(
                lambda: name in peers(kube, peering) or process.poll() is not None,
                timeout=30,
                what=f"operator {name} to join the peering {peering}",
            )
            assert process.poll() is None, handle.log()[-3000:]
        yield handle
    finally:
        handle.stop()
        print(f"---- operator {name} log (tail)\n{handle.log()[-4000:]}")
