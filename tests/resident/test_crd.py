"""deploy/kubernetes/probeconfig-crd.yaml on the real API server: it is established,
fills its defaults, refuses invalid ProbeConfigs naming the problem, prints its
columns and serves the status subresource."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.kube import LocalKube
from tests.resident.conftest import CONFIGS, get_table, probeconfig


def test_a_valid_probeconfig_gets_the_server_side_defaults(
    probeconfig_crd: LocalKube, kube_ns: str
) -> None:
    kube = probeconfig_crd
    created = kube.api("POST", CONFIGS.format(ns=kube_ns), probeconfig("etcd-resident"))
    spec = created["spec"]
    assert spec["intervalMs"] == 1000
    assert spec["sampleTimeoutMs"] == 5000
    assert spec["denoise"] == {"k": 3, "n": 5}
    assert spec["report"] == {"rate": 1, "burst": 5, "batchWindowMs": 1000}
    assert spec["center"]["tokenSecretRef"] == {"name": "resident-token", "key": "token"}
    # Given values are kept, missing siblings still defaulted.
    partial = probeconfig("custom", intervalMs=100, denoise={"n": 9}, report={"rate": 0.5})
    partial["spec"]["probe"] = {"image": "registry.example/probe:1", "command": ["run"]}
    spec = kube.api("POST", CONFIGS.format(ns=kube_ns), partial)["spec"]
    assert spec["intervalMs"] == 100
    assert spec["denoise"] == {"k": 3, "n": 9}
    assert spec["report"] == {"rate": 0.5, "burst": 5, "batchWindowMs": 1000}
    # The short name is served.
    resources = kube.api("GET", "/apis/kubeprobe.io/v1alpha1")["resources"]
    probeconfigs = next(r for r in resources if r["name"] == "probeconfigs")
    assert probeconfigs["shortNames"] == ["pc"] and probeconfigs["namespaced"] is True


def _invalid(body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["spec"].update(spec)
    return out


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"intervalMs": 50}, "spec.intervalMs", "should be greater than or equal to 100"),
        ({"denoise": {"k": 6, "n": 5}}, "spec.denoise", "denoise.k must not be greater than"),
        ({"probe": {"env": []}}, "spec.probe", "needs exactly one of image or case"),
        (
            {"probe": {"case": "etcd", "image": "x/y:1"}},
            "spec.probe",
            "needs exactly one of image or case",
        ),
        ({"probe": {"case": "nope"}}, "spec.probe.case", "supported values"),
        (
            {"probe": {"case": "etcd", "env": [{"name": "KUBEPROBE_TOKEN", "value": "x"}]}},
            "spec.probe.env",
            "cannot set KUBEPROBE_* variables",
        ),
        ({"center": {"url": "ftp://x", "tokenSecretRef": {"name": "s"}}}, "spec.center.url", ""),
        ({"center": {"url": "https://x"}}, "spec.center.tokenSecretRef", "Required value"),
        ({"report": {"rate": 0}}, "spec.report.rate", "should be greater than 0"),
    ],
)
def test_invalid_probeconfigs_are_refused_naming_the_field(
    probeconfig_crd: LocalKube, kube_ns: str, change: dict[str, Any], field: str, message: str
) -> None:
    kube = probeconfig_crd
    status, answer = kube.request(
        "POST", CONFIGS.format(ns=kube_ns), _invalid(probeconfig("bad"), change)
    )
    assert status == 422, answer
    assert field in answer["message"] and message in answer["message"], answer["message"]
    # Nothing was stored.
    assert kube.api("GET", CONFIGS.format(ns=kube_ns))["items"] == []


def test_missing_cluster_and_long_names_are_refused(
    probeconfig_crd: LocalKube, kube_ns: str
) -> None:
    kube = probeconfig_crd
    body = probeconfig("no-cluster")
    del body["spec"]["cluster"]
    status, answer = kube.request("POST", CONFIGS.format(ns=kube_ns), body)
    assert status == 422 and "spec.cluster: Required value" in answer["message"]
    status, answer = kube.request("POST", CONFIGS.format(ns=kube_ns), probeconfig("x" * 51))
    assert status == 422 and "metadata.name must be at most 50 characters" in answer["message"]


def test_status_is_a_subresource_and_the_printer_columns_show_it(
    probeconfig_crd: LocalKube, kube_ns: str
) -> None:
    kube = probeconfig_crd
    path = CONFIGS.format(ns=kube_ns) + "/etcd-resident"
    created = kube.api("POST", CONFIGS.format(ns=kube_ns), probeconfig("etcd-resident"))
    # A write to the main resource ignores status ...
    changed = kube.api(
        "PATCH",
        path,
        {"spec": {"intervalMs": 250}, "status": {"pod": "ignored"}},
        content_type="application/merge-patch+json",
    )
    assert changed["spec"]["intervalMs"] == 250 and "status" not in changed
    assert changed["metadata"]["generation"] == created["metadata"]["generation"] + 1
    # ... the status subresource writes it without bumping the generation.
    status = {
        "observedGeneration": 2,
        "pod": "etcd-resident-resident-abc",
        "lastSampleTime": "2026-12-07T10:00:01Z",
        "samplesDropped": 0,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PodReady",
                "message": "pod is ready",
                "lastTransitionTime": "2026-12-07T10:00:00Z",
            }
        ],
    }
    written = kube.api(
        "PATCH", path + "/status", {"status": status}, content_type="application/merge-patch+json"
    )
    assert written["status"] == status
    assert written["metadata"]["generation"] == changed["metadata"]["generation"]
    # Unknown status fields are pruned, a bad condition status refused.
    status_code, answer = kube.request(
        "PATCH",
        path + "/status",
        {"status": {"conditions": [{"type": "Ready", "status": "maybe"}]}},
        content_type="application/merge-patch+json",
    )
    assert status_code == 422 and "status.conditions[0].status" in answer["message"]

    table = get_table(kube, CONFIGS.format(ns=kube_ns))
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Interval", "Ready", "Last sample", "Age"]
    row = table["rows"][0]["cells"]
    assert row[0] == "etcd-resident" and row[1] == 250 and row[2] == "True"
