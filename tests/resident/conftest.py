"""Fixtures of the resident-probe tests: the ProbeConfig CRD on the real control plane."""

from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any

import pytest
import yaml

from tests.kube import LocalKube
from tests.portal import ROOT
from tests.utils import wait_for

KUBERNETES = ROOT / "deploy" / "kubernetes"
CRD = KUBERNETES / "probeconfig-crd.yaml"
CONFIGS = "/apis/kubeprobe.io/v1alpha1/namespaces/{ns}/probeconfigs"


def manifests(path: Any) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def established(kube: LocalKube, name: str) -> bool:
    status, crd = kube.request(
        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    )
    if status != 200:
        return False
    conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
    return conditions.get("Established") == "True"


def install_crd(kube: LocalKube, path: Any = CRD) -> list[str]:
    """Apply the CRDs in a file and wait until the API server serves them."""
    names = []
    for doc in manifests(path):
        if doc["kind"] != "CustomResourceDefinition":
            continue
        kube.apply(doc)
        names.append(doc["metadata"]["name"])
    wait_for(
        lambda: all(established(kube, name) for name in names),
        timeout=30,
        what=f"CRDs {names} Established",
    )
    return names


@pytest.fixture
def probeconfig_crd(kube: LocalKube) -> LocalKube:
    install_crd(kube)
    return kube


def probeconfig(name: str, **spec: Any) -> dict[str, Any]:
    """A valid ProbeConfig; keyword arguments replace top-level spec fields."""
    body: dict[str, Any] = {
        "probe": {"case": "api-roundtrip"},
        "center": {"url": "https://center.example", "tokenSecretRef": {"name": "resident-token"}},
        "cluster": "prod-1",
    }
    body.update(spec)
    return {
        "apiVersion": "kubeprobe.io/v1alpha1",
        "kind": "ProbeConfig",
        "metadata": {"name": name},
        "spec": body,
    }


def get_table(kube: LocalKube, path: str) -> dict[str, Any]:
    """The API server's Table rendering of a list (what `kubectl get` prints)."""
    context = ssl.create_default_context(cafile=str(kube.ca_path))
    context.load_cert_chain(*map(str, kube.admin_cert))
    request = urllib.request.Request(
        kube.server + path,
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
        return json.loads(answer.read())
