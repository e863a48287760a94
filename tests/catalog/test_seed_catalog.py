"""`manage.py seed_catalog`: the built-in cases as catalog rows, idempotent, never deleting."""

from __future__ import annotations

import importlib.util
import io
import re

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.catalog.builtin import (
    BUILTIN_CASE_SET,
    BUILTIN_TEMPLATES,
    builtin_case_set_members,
    builtin_template,
)
from apps.catalog.models import Case, CaseSet, CaseTemplate, RenderConfig

pytestmark = pytest.mark.django_db

ALL_CASES = [c.name for t in BUILTIN_TEMPLATES for c in t.cases]


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_catalog", *args, stdout=out)
    return out.getvalue()


def test_the_shipped_names() -> None:
    assert {t.name: t.module for t in BUILTIN_TEMPLATES} == {
        "workload-lifecycle": "lifecycle",
        "etcd-blackbox": "etcd",
        "canary-release": "canary",
        "node-probe": "nodes",
        "virtual-cluster": "vcluster",
        "federation-link": "federation",
        "certificate-inspection": "certificates",
        "config-coverage": "config_coverage",
    }
    assert {"pod-lifecycle", "deployment-lifecycle", "statefulset-lifecycle"} <= set(ALL_CASES)
    assert len(ALL_CASES) == len(set(ALL_CASES))


def test_running_twice_leaves_one_copy_of_each() -> None:
    first = seed()
    assert "template workload-lifecycle: created" in first
    assert "  case pod-lifecycle: created" in first
    assert f"case set {BUILTIN_CASE_SET}: created" in first
    second = seed()
    assert "created" not in second
    assert "template etcd-blackbox: unchanged" in second and "  case etcd-kubeadm: kept" in second
    assert (
        f"Built-in catalog: {len(ALL_CASES)} kept, {len(BUILTIN_TEMPLATES) + 1} unchanged."
        in second
    )

    assert CaseTemplate.objects.count() == len(BUILTIN_TEMPLATES)
    assert Case.objects.count() == RenderConfig.objects.count() == len(ALL_CASES)
    assert CaseSet.objects.get().name == BUILTIN_CASE_SET
    members = sorted(CaseSet.objects.get().cases.values_list("name", flat=True))
    assert members == sorted(builtin_case_set_members())


def test_rows_follow_the_shipped_definition() -> None:
    seed()
    lifecycle = CaseTemplate.objects.get(name="workload-lifecycle")
    assert lifecycle.kind == "probe"
    assert lifecycle.image == settings.KUBEPROBE_PROBE_IMAGE
    assert lifecycle.image.startswith("kubeprobe/probe:")
    assert lifecycle.command == ["python", "-m", "probe_sdk.cases.lifecycle"]
    assert lifecycle.service_account == "kubeprobe-probe"
    assert lifecycle.default_env == {"LIFECYCLE_KIND": "pod", "LIFECYCLE_REPLICAS": "2"}
    assert "KUBECONFIG" in lifecycle.description and "WAIT_TIMEOUT_SECONDS" in lifecycle.description
    deployment = Case.objects.get(name="deployment-lifecycle")
    assert deployment.effective_env == {"LIFECYCLE_KIND": "deployment", "LIFECYCLE_REPLICAS": "2"}

    assert CaseTemplate.objects.get(name="certificate-inspection").kind == "inspection"
    assert Case.objects.get(name="apiserver-certificates").effective_env["CERT_ENDPOINTS"] == (
        "kubernetes.default.svc:443"
    )
    etcd = Case.objects.get(name="etcd-kubeadm")
    assert etcd.effective_env["ETCD_ENDPOINTS"] == "https://127.0.0.1:2379"
    assert "kubeadm" in etcd.description
    federation = CaseTemplate.objects.get(name="federation-link").default_env
    assert federation["FEDERATION_API_VERSION"] == "types.kubefed.io/v1beta1"
    assert federation["FEDERATION_DEADLINE_SECONDS"] == "60"
    coverage = Case.objects.get(name="etcd-backup-coverage").effective_env
    assert coverage["COVERAGE_RESOURCE"] == "batch/v1/cronjobs"
    for template in CaseTemplate.objects.all():
        template.full_clean()


def test_operator_edits_are_kept_and_update_resets_templates_only() -> None:
    seed()
    template = CaseTemplate.objects.get(name="etcd-blackbox")
    template.image = "registry.example.com/probes:7"
    template.default_env = {"ETCD_OP_THRESHOLD_MS": "50"}
    template.save()
    render = RenderConfig.objects.get(case__name="etcd-kubeadm")
    render.env = {"ETCD_ENDPOINTS": "https://etcd-0:2379"}
    render.save()
    Case.objects.get(name="node-probe-all").delete()
    Case.objects.create(name="my-own-case", template=template)
    CaseSet.objects.get().cases.remove(Case.objects.get(name="pod-lifecycle"))

    out = seed()
    assert (
        "template etcd-blackbox: kept  (differs in image, default_env; --update resets it)" in out
    )
    assert "  case node-probe-all: created" in out  # a missing default case comes back
    assert (
        f"case set {BUILTIN_CASE_SET}: updated  (added node-probe-all; "
        "without pod-lifecycle; --update adds them)"
    ) in out
    template.refresh_from_db()
    assert template.image == "registry.example.com/probes:7"

    out = seed("--update")
    assert "template etcd-blackbox: updated  (image, default_env)" in out
    assert f"case set {BUILTIN_CASE_SET}: updated  (added pod-lifecycle)" in out
    template.refresh_from_db()
    shipped = builtin_template("etcd-blackbox")
    assert template.image == settings.KUBEPROBE_PROBE_IMAGE
    assert template.default_env == shipped.default_env
    # Cases are the operator's: their render configs stay, and nothing is deleted.
    assert RenderConfig.objects.get(case__name="etcd-kubeadm").env == {
        "ETCD_ENDPOINTS": "https://etcd-0:2379"
    }
    assert Case.objects.filter(name="my-own-case").exists()
    assert "updated" not in seed("--update")


def test_image_flag() -> None:
    seed("--image", "registry.example.com/kubeprobe/probe:1.2")
    assert set(CaseTemplate.objects.values_list("image", flat=True)) == {
        "registry.example.com/kubeprobe/probe:1.2"
    }


@pytest.mark.parametrize("shipped", BUILTIN_TEMPLATES, ids=lambda t: t.name)
def test_env_comes_from_the_case_module(shipped) -> None:  # type: ignore[no-untyped-def]
    """The template's env is parsed from its module's docstring table, literal defaults only."""
    doc = importlib.import_module(f"probe_sdk.cases.{shipped.module}").__doc__
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", doc, re.M))
    names = {v.name for v in shipped.env}
    assert documented and documented <= names
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_<>]*", name) for name in names)
    for var in shipped.env:
        assert var.default == "" or f"`{var.default}`" in doc, var
    if shipped.kubernetes:
        assert {"KUBECONFIG", "PROBE_NAMESPACE", "WAIT_TIMEOUT_SECONDS"} <= {
            v.name for v in shipped.all_env
        }
