"""Faults injected into real targets; the real case runs, reports, and the post-run
pipeline names the right root cause.

etcd: a real etcd stopped, and hung (SIGSTOP). Certificates: real TLS servers with
an expired and a wrong-host certificate. Kubernetes: the real control plane
(tests/kube.py) with an image that cannot be pulled (kwok's fault stage), every
node's CPU taken (unschedulable), NotReady nodes, and an RBAC denial through a
service account's kubeconfig. One etcd shared by three clusters, stopped, is one
incident naming etcd.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_local import LocalKube

from apps.alerts.models import AlertRule
from apps.diagnosis.models import Incident, RunDiagnosis
from tests.cases.kube_helpers import case_env
from tests.cases.servers import Etcd
from tests.cases.test_certificates import pki, servers  # noqa: F401 (fixtures)
from tests.cases.test_kube_nodes import gpu_nodes  # noqa: F401 (fixture)
from tests.cases.test_kube_pod_lifecycle import full_nodes  # noqa: F401 (fixture)
from tests.diagnosis.helpers import case_of, finish
from tests.factories import ClusterFactory
from tests.kube import fault_image
from tests.portal import run_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_failure_fires(db: None) -> None:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    server = Etcd(tmp_path)
    yield server
    server.stop()


def diagnosed(module: str, body: dict[str, Any], cluster: Any = None, case: Any = None) -> str:
    run, alert = finish(case or case_of(module), cluster or ClusterFactory(), body)
    assert body["ok"] is False
    assert alert is not None and alert.root_cause == run.root_cause  # the alert says it too
    return run.root_cause


def etcd_body(etcd: Etcd) -> dict[str, Any]:
    env = {"ETCD_ENDPOINTS": etcd.url, "ETCD_TIMEOUT_SECONDS": "1", "ETCD_OP_THRESHOLD_MS": "20000"}
    return run_case("etcd", env)[1]


def test_stopped_and_hung_etcd_are_etcd_not_the_api_server(
    etcd: Etcd, one_failure_fires: None
) -> None:
    os.kill(etcd.process.pid, signal.SIGSTOP)  # hung: accepts connections, answers nothing
    try:
        hung = etcd_body(etcd)
    finally:
        os.kill(etcd.process.pid, signal.SIGCONT)
    assert "timed out" in " ".join(hung["errors"]).lower()
    assert diagnosed("etcd", hung) == "etcd"
    etcd.stop()
    stopped = etcd_body(etcd)
    assert "refused" in " ".join(stopped["errors"]).lower()
    assert diagnosed("etcd", stopped) == "etcd"


def test_expired_and_wrong_host_certificates_are_certificates(
    pki: dict[str, Any],  # noqa: F811
    servers: dict[str, Any],  # noqa: F811
    one_failure_fires: None,
) -> None:
    for name in ("expired", "wronghost"):
        env = {"CERT_ENDPOINTS": f"localhost:{servers[name].port}", "CERT_CA_FILE": str(pki["ca"])}
        body = run_case("certificates", env)[1]
        assert diagnosed("certificates", body) == "certificates", body["errors"]


def test_one_stopped_etcd_behind_three_clusters_is_one_incident_naming_etcd(
    etcd: Etcd, one_failure_fires: None
) -> None:
    etcd.stop()
    case = case_of("etcd", "etcd-meta")
    for i in range(3):
        assert diagnosed("etcd", etcd_body(etcd), ClusterFactory(name=f"dc-{i}"), case) == "etcd"
    [incident] = Incident.objects.all()
    assert (incident.scope, incident.category, incident.case) == ("case", "etcd", case)
    assert incident.members.count() == 3


@pytest.mark.usefixtures("one_failure_fires")
class TestOnTheRealControlPlane:
    def test_image_that_cannot_be_pulled_is_the_registry(
        self, kube: LocalKube, kube_ns: str, tmp_path: Path
    ) -> None:
        env = case_env(
            kube.kubeconfig(),
            kube_ns,
            tmp_path,
            PROBE_IMAGE=fault_image("image-pull"),
            WAIT_TIMEOUT_SECONDS="8",
        )
        body = run_case("lifecycle", env)[1]
        assert diagnosed("lifecycle", body) == "image"

    @pytest.mark.usefixtures("full_nodes")
    def test_unschedulable_pod_is_the_scheduler(
        self,
        kube: LocalKube,
        kube_ns: str,
        tmp_path: Path,
    ) -> None:
        env = case_env(kube.kubeconfig(), kube_ns, tmp_path, WAIT_TIMEOUT_SECONDS="2")
        body = run_case("lifecycle", env)[1]
        assert diagnosed("lifecycle", body) == "scheduler", body["errors"]

    @pytest.mark.usefixtures("gpu_nodes")
    def test_not_ready_nodes_are_the_node(
        self,
        kube: LocalKube,
        kube_ns: str,
        tmp_path: Path,
    ) -> None:
        env = case_env(kube.kubeconfig(), kube_ns, tmp_path, NODES_SELECTOR="pool=gpu")
        body = run_case("nodes", env)[1]
        assert diagnosed("nodes", body) == "node"

    def test_rbac_denial_is_rbac(self, kube: LocalKube, kube_ns: str, tmp_path: Path) -> None:
        config = kube.service_account_kubeconfig(
            kube_ns,
            "no-create",
            [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]}],
        )
        body = run_case("lifecycle", case_env(config, kube_ns, tmp_path))[1]
        assert diagnosed("lifecycle", body) == "rbac"
        diagnosis = RunDiagnosis.objects.get()
        assert diagnosis.rule is not None and diagnosis.rule.name == "rbac-denied"
        assert "cannot create resource" in diagnosis.evidence["error"]
