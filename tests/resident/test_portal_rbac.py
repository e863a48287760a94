"""deploy/kubernetes/portal-rbac.yaml is exactly what applying resident probes needs.

The manifest is applied to the real control plane and the portal applies,
updates, reads the status of and removes ProbeConfigs (and their token
Secrets) with its service account's token, not as admin; without any single
one of the resident rights, the step that needs it records an error naming the
missing permission, shown on the probe's admin page.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.clusters.models import Cluster
from apps.resident import applying
from apps.resident.models import ResidentProbe, ResidentRemoval, ResidentTarget
from apps.resident.services import resident_probe_delete, resident_probe_update
from tests.kube import LocalKube
from tests.resident.helpers import make_probe
from tests.resident.test_apply import config_of, secret_token
from tests.runs.helpers import kube_cluster
from tests.runs.test_portal_rbac import apply_portal_rbac, forbidden, portal_rbac

pytestmark = pytest.mark.django_db
NAME = "etcd-resident"
SECRET = applying.secret_name(NAME)
CONFIGS = "/apis/kubeprobe.io/v1alpha1/namespaces/{ns}/probeconfigs"
RESIDENT_RIGHTS = [
    (resource, verb)
    for resource in ("probeconfigs", "secrets")
    for verb in ("create", "patch", "delete")
]


def portal_cluster(kube: LocalKube, namespace: str, **kwargs: Any) -> Cluster:
    config = apply_portal_rbac(kube, namespace, **kwargs)
    return kube_cluster(kube, namespace=namespace, kubeconfig=config, name="prod-1")


def admin_page(probe: ResidentProbe) -> str:
    admin = User.objects.create_superuser("root", password="pw-For-tests-1")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/resident/residentprobe/{probe.pk}/change/")
    assert page.status_code == 200
    return page.content.decode()


def test_the_manifest_grants_resident_probes_exactly_these_rights(kube_ns: str) -> None:
    [role] = [doc for doc in portal_rbac(kube_ns) if doc["kind"] == "Role"]
    granted = {
        (resource, verb)
        for rule in role["rules"]
        if rule["resources"] in (["probeconfigs"], ["secrets"])
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == set(RESIDENT_RIGHTS)


def test_the_shipped_rbac_applies_updates_reads_and_removes(
    probeconfig_crd: LocalKube, kube_ns: str
) -> None:
    kube = probeconfig_crd
    cluster = portal_cluster(kube, kube_ns)
    probe, _ = make_probe(NAME, clusters=[cluster])
    assert applying.resident_probe_sync(probe_id=probe.pk) == {"prod-1": "applied"}  # create
    assert config_of(kube, kube_ns, NAME)[1]["spec"]["intervalMs"] == 1000
    assert secret_token(kube, kube_ns, SECRET)

    resident_probe_update(probe=probe, fields={"interval_ms": 500})  # patch
    # The operator's status, as the portal reads it back in its apply's answer.
    answer = kube.request(
        "PATCH",
        f"{CONFIGS.format(ns=kube_ns)}/{NAME}/status",
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "PodReady"}]}},
        content_type="application/merge-patch+json",
    )
    assert answer[0] == 200, answer
    assert applying.resident_probe_sync(probe_id=probe.pk) == {"prod-1": "applied"}
    assert config_of(kube, kube_ns, NAME)[1]["spec"]["intervalMs"] == 500
    target = ResidentTarget.objects.get(probe=probe)
    assert (target.ready, target.apply_error) == ("True", "")

    resident_probe_delete(probe=probe)  # delete, from the removal queue
    assert applying.probeconfigs_remove_pending() == 1
    assert config_of(kube, kube_ns, NAME)[0] == 404
    assert secret_token(kube, kube_ns, SECRET) is None
    assert not ResidentRemoval.objects.exists()


@pytest.mark.parametrize(("resource", "verb"), RESIDENT_RIGHTS)
def test_without_one_right_the_error_names_it(
    probeconfig_crd: LocalKube, kube_ns: str, resource: str, verb: str
) -> None:
    kube = probeconfig_crd
    cluster = portal_cluster(kube, kube_ns, without=(resource, verb))
    probe, _ = make_probe(NAME, clusters=[cluster])
    missing = forbidden(kube_ns, verb, resource)
    outcome = applying.resident_probe_sync(probe_id=probe.pk)
    if verb == "delete":  # applying works; removing is what fails
        assert outcome == {"prod-1": "applied"}
        resident_probe_delete(probe=probe)
        assert applying.probeconfigs_remove_pending() == 0  # kept, to be retried
        removal = ResidentRemoval.objects.get()
        assert removal.error.startswith("403: ") and missing in removal.error
        page = Client()
        page.force_login(User.objects.create_superuser("root", password="pw-For-tests-1"))
        listing = page.get("/admin/resident/residentremoval/")
        assert listing.status_code == 200
        detail = page.get(f"/admin/resident/residentremoval/{removal.pk}/change/")
        assert detail.status_code == 200 and "cannot delete resource" in detail.content.decode()
        return
    assert outcome["prod-1"].startswith("403: ") and missing in outcome["prod-1"]
    target = ResidentTarget.objects.get(probe=probe)
    assert target.applied_hash == "" and missing in target.apply_error
    html = admin_page(probe)
    assert "Traceback" not in html and f"cannot {verb} resource" in html
