"""Applying resident probes as ProbeConfigs on the real API server (14a's CRD)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.clusters.models import Cluster
from apps.resident import applying
from apps.resident.models import ResidentProbe, ResidentRemoval, ResidentTarget
from apps.resident.services import (
    resident_probe_delete,
    resident_probe_rotate_token,
    resident_probe_update,
)
from tests.factories import CaseFactory, CaseTemplateFactory, ClusterFactory, ClusterGroupFactory
from tests.kube import LocalKube
from tests.resident.helpers import make_probe
from tests.runs.helpers import kube_cluster

pytestmark = pytest.mark.django_db
CONFIGS = "/apis/kubeprobe.io/v1alpha1/namespaces/{ns}/probeconfigs"


def config_of(kube: LocalKube, ns: str, name: str) -> tuple[int, dict[str, Any]]:
    return kube.request("GET", f"{CONFIGS.format(ns=ns)}/{name}")


def secret_token(kube: LocalKube, ns: str, name: str) -> str | None:
    status, secret = kube.request("GET", f"/api/v1/namespaces/{ns}/secrets/{name}")
    if status != 200:
        return None
    return base64.b64decode(secret["data"]["token"]).decode()


@pytest.fixture
def cluster(probeconfig_crd: LocalKube, kube_ns: str) -> Cluster:
    return kube_cluster(probeconfig_crd, namespace=kube_ns, name="prod-1")


@pytest.fixture
def etcd_case() -> Any:
    template = CaseTemplateFactory(
        name="etcd-blackbox",
        command=["python", "-m", "probe_sdk.cases.etcd"],
        default_env={"ETCD_ENDPOINTS": "https://etcd:2379", "ETCD_OP_THRESHOLD_MS": "500"},
    )
    return CaseFactory(name="etcd-meta", template=template)


def test_apply_update_status_and_remove(
    kube: LocalKube, kube_ns: str, cluster: Cluster, etcd_case: Any, settings: Any
) -> None:
    settings.KUBEPROBE_PUBLIC_URL = "https://kubeprobe.example.com"
    probe, token = make_probe(
        "etcd-resident",
        clusters=[cluster],
        image="",
        case=etcd_case,
        env={"ETCD_OP_THRESHOLD_MS": "200"},
        interval_ms=250,
        resources={"requests": {"cpu": "10m", "memory": "32Mi"}},
    )
    assert applying.resident_probe_sync(probe_id=probe.pk) == {"prod-1": "applied"}

    status, config = config_of(kube, kube_ns, "etcd-resident")
    assert status == 200, config
    spec = config["spec"]
    assert spec["probe"] == {
        "case": "etcd",
        "env": [
            {"name": "ETCD_ENDPOINTS", "value": "https://etcd:2379"},
            {"name": "ETCD_OP_THRESHOLD_MS", "value": "200"},  # the probe's env wins
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    assert spec["intervalMs"] == 250
    assert spec["denoise"] == {"k": 3, "n": 5}
    assert spec["report"] == {"rate": 1, "burst": 5, "batchWindowMs": 1000}
    assert spec["center"] == {
        "url": "https://kubeprobe.example.com",
        "tokenSecretRef": {"name": "kubeprobe-resident-etcd-resident", "key": "token"},
    }
    assert (spec["probeName"], spec["cluster"]) == ("etcd-resident", "prod-1")
    managers = {m["manager"] for m in config["metadata"]["managedFields"]}
    assert managers == {"kubeprobe"}
    assert config["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeprobe"
    assert secret_token(kube, kube_ns, "kubeprobe-resident-etcd-resident") == token
    target = ResidentTarget.objects.get(probe=probe, cluster=cluster)
    assert target.applied_at is not None and target.apply_error == ""

    # An edit rolls out; a rotated token reaches the Secret.
    resident_probe_update(probe=probe, fields={"interval_ms": 500, "denoise_k": 2})
    new_token = resident_probe_rotate_token(probe=probe)
    applying.resident_probe_sync(probe_id=probe.pk)
    spec = config_of(kube, kube_ns, "etcd-resident")[1]["spec"]
    assert (spec["intervalMs"], spec["denoise"]) == (500, {"k": 2, "n": 5})
    assert secret_token(kube, kube_ns, "kubeprobe-resident-etcd-resident") == new_token

    # The operator writes status; the next sync reads it back.
    kube_status = {
        "status": {
            "observedGeneration": 2,
            "deployment": "kubeprobe-resident-etcd-resident",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "PodReady",
                    "message": "resident pod is ready",
                    "lastTransitionTime": "2026-12-07T10:00:00Z",
                }
            ],
        }
    }
    answer = kube.request(
        "PATCH",
        f"{CONFIGS.format(ns=kube_ns)}/etcd-resident/status",
        kube_status,
        content_type="application/merge-patch+json",
    )
    assert answer[0] == 200, answer
    applying.resident_probe_sync(probe_id=probe.pk)
    target.refresh_from_db()
    assert target.ready == "True"
    assert target.config_status["deployment"] == "kubeprobe-resident-etcd-resident"

    # Disabled: the ProbeConfig and its Secret go.
    resident_probe_update(probe=probe, fields={"enabled": False})
    assert applying.resident_probe_sync(probe_id=probe.pk) == {"prod-1": "removed"}
    assert config_of(kube, kube_ns, "etcd-resident")[0] == 404
    assert secret_token(kube, kube_ns, "kubeprobe-resident-etcd-resident") is None
    target.refresh_from_db()
    assert (target.applied_hash, target.config_status) == ("", {})
    # And back.
    resident_probe_update(probe=probe, fields={"enabled": True})
    assert applying.resident_probe_sync(probe_id=probe.pk) == {"prod-1": "applied"}
    assert config_of(kube, kube_ns, "etcd-resident")[0] == 200


def test_clusters_leaving_the_target_and_deleted_probes(
    kube: LocalKube, kube_ns: str, cluster: Cluster
) -> None:
    other_ns = f"{kube_ns}-b"
    kube.create_namespace(other_ns)
    other = kube_cluster(kube, namespace=other_ns, name="prod-2", labels={"tier": "one"})
    group = ClusterGroupFactory(name="tier-one", selector={"tier": "one"})
    probe, _ = make_probe("api-rt", clusters=[cluster], groups=[group])
    outcome = applying.resident_probe_sync(probe_id=probe.pk)
    assert outcome == {"prod-1": "applied", "prod-2": "applied"}
    assert config_of(kube, other_ns, "api-rt")[0] == 200
    spec = config_of(kube, other_ns, "api-rt")[1]["spec"]
    assert spec["probe"] == {"image": "registry.example/resident:1"}
    assert spec["cluster"] == "prod-2"

    # prod-2 leaves the group: its ProbeConfig goes, prod-1's stays.
    Cluster.objects.filter(pk=other.pk).update(labels={})
    assert applying.resident_probe_sync(probe_id=probe.pk) == {
        "prod-1": "applied",
        "prod-2": "removed",
    }
    assert config_of(kube, other_ns, "api-rt")[0] == 404
    assert config_of(kube, kube_ns, "api-rt")[0] == 200

    # Deleting the probe leaves a removal that the task works off.
    resident_probe_delete(probe=ResidentProbe.objects.get(pk=probe.pk))
    assert ResidentRemoval.objects.count() == 1
    assert applying.probeconfigs_remove_pending() == 1
    assert config_of(kube, kube_ns, "api-rt")[0] == 404
    assert secret_token(kube, kube_ns, "kubeprobe-resident-api-rt") is None
    assert not ResidentRemoval.objects.exists()


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    from kubeprobe_site.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_saving_through_the_api_applies_after_commit(
    kube: LocalKube,
    kube_ns: str,
    cluster: Cluster,
    admin_api: APIClient,
    eager_tasks: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_api.post(
            "/api/v1/resident/",
            {"name": "from-api", "image": "registry.example/r:2", "clusters": ["prod-1"]},
            format="json",
        )
    assert answer.status_code == 201, answer.content
    assert config_of(kube, kube_ns, "from-api")[0] == 200
    detail = admin_api.get("/api/v1/resident/from-api/").json()
    assert detail["targets"][0]["applied_at"] is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_api.delete("/api/v1/resident/from-api/").status_code == 204
    assert config_of(kube, kube_ns, "from-api")[0] == 404


def test_an_unreachable_cluster_is_recorded_and_the_breaker_respected(
    db: None, settings: Any
) -> None:
    from tests.factories import make_kubeconfig

    settings.KUBEPROBE_BREAKER_FAILURES = 2
    down = ClusterFactory(
        name="down-1",
        kubeconfig=make_kubeconfig(server="https://127.0.0.1:9"),
        api_timeout_seconds=2,
    )
    probe, _ = make_probe("lonely", clusters=[down])
    first = applying.resident_probe_sync(probe_id=probe.pk)["down-1"]
    assert "unreachable" in first and "Connection refused" in first
    applying.resident_probe_sync(probe_id=probe.pk)
    down.refresh_from_db()
    assert down.breaker_open  # two failures opened it
    third = applying.resident_probe_sync(probe_id=probe.pk)["down-1"]
    assert third.startswith("cluster unreachable since")  # refused without a call
    target = ResidentTarget.objects.get(probe=probe)
    assert target.apply_error == third and target.applied_at is None
