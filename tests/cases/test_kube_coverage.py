"""Config coverage against real objects: a batch/v1 CronJob and a cluster-scoped custom resource whose CRD is installed for real.

See tests/cases/kube_helpers.py for how the cases run and what they run against.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_local import LocalKube

from tests.cases.kube_helpers import (
    case_env,
    closed_port_kubeconfig,
    crd,
    install_crd,
    remove_crd,
    steps,
)
from tests.portal import run_case


def backup_cronjob(kube: LocalKube, ns: str, **spec: Any) -> None:
    """A real batch/v1 CronJob; the API server defaults what is not given."""
    command = ["etcdctl", "snapshot", "save", "/backup/snap.db"]
    container = {"name": "backup", "image": "registry.k8s.io/etcd:3.6.0", "command": command}
    job = {
        "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [container]}}}
    }
    kube.api(
        "POST",
        f"/apis/batch/v1/namespaces/{ns}/cronjobs",
        {
            "metadata": {"name": "etcd-backup", "labels": {"app": "etcd-backup"}},
            "spec": {"schedule": "0 */6 * * *", "suspend": False, "jobTemplate": job} | spec,
        },
    )


def coverage(ns: str) -> dict[str, str]:
    return {
        "COVERAGE_RESOURCE": "batch/v1/cronjobs",
        "COVERAGE_NAMESPACE": ns,
        "COVERAGE_NAME": "etcd-backup",
    }


def test_coverage_passes_when_every_field_matches(
    kube: LocalKube, kube_ns: str, probe_account: str, tmp_path: Path
) -> None:
    backup_cronjob(kube, kube_ns)
    # successfulJobsHistoryLimit was not given: 3 is the API server's default.
    expect = (
        ".spec.schedule=0 */6 * * *; .spec.suspend=false\n"
        "{.spec.successfulJobsHistoryLimit}=3; $.metadata.labels.app=etcd-backup; .spec.schedule"
    )
    env = case_env(probe_account, kube_ns, tmp_path, **coverage(kube_ns), COVERAGE_EXPECT=expect)
    result, body = run_case("config_coverage", env)
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True, body["errors"]
    assert [s["name"] for s in body["steps"]] == [
        f"get cronjobs {kube_ns}/etcd-backup",
        "check .spec.schedule",
        "check .spec.suspend",
        "check {.spec.successfulJobsHistoryLimit}",
        "check $.metadata.labels.app",
        "check .spec.schedule",
    ]
    assert body["metrics"]["fields_drifted"] == 0


def test_coverage_reports_drift_field_by_field(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    backup_cronjob(kube, kube_ns, suspend=True, schedule="@daily")
    expect = (
        ".spec.schedule=0 */6 * * *; .spec.suspend=false; "
        ".spec.successfulJobsHistoryLimit=3; .spec.timeZone"
    )
    env = case_env(
        kube.kubeconfig(), kube_ns, tmp_path, **coverage(kube_ns), COVERAGE_EXPECT=expect
    )
    _, body = run_case("config_coverage", env)
    assert body["ok"] is False
    by_name = steps(body)
    assert by_name["check .spec.schedule"]["error"].endswith(
        'drift: .spec.schedule is "@daily", expected 0 */6 * * *'
    )
    assert by_name["check .spec.suspend"]["error"].endswith(
        "drift: .spec.suspend is true, expected false"
    )
    assert by_name["check .spec.successfulJobsHistoryLimit"]["ok"] is True
    assert by_name["check .spec.timeZone"]["error"].endswith("drift: .spec.timeZone is missing")
    assert body["metrics"]["fields_drifted"] == 3


def test_coverage_fails_when_the_object_is_missing(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    _, body = run_case(
        "config_coverage", case_env(kube.kubeconfig(), kube_ns, tmp_path, **coverage(kube_ns))
    )
    assert body["ok"] is False
    assert (
        f"not covered: batch/v1 cronjobs {kube_ns}/etcd-backup does not exist"
        in steps(body)[f"get cronjobs {kube_ns}/etcd-backup"]["error"]
    )


def test_coverage_does_not_take_a_number_for_a_boolean(
    kube: LocalKube, kube_ns: str, tmp_path: Path
) -> None:
    backup_cronjob(kube, kube_ns)
    env = case_env(
        kube.kubeconfig(), kube_ns, tmp_path, **coverage(kube_ns), COVERAGE_EXPECT=".spec.suspend=0"
    )
    _, body = run_case("config_coverage", env)
    assert body["ok"] is False
    assert steps(body)["check .spec.suspend"]["error"].endswith(
        "drift: .spec.suspend is false, expected 0"
    )


@pytest.fixture(scope="module")
def global_limit(kube: LocalKube) -> Iterator[None]:
    """KubeDefender's cluster-scoped GlobalLimit as a real CRD, with its `default` object."""
    fields = {"verb": "string", "resource": "string", "qps": "integer"}
    rule = {"type": "object", "properties": {k: {"type": t} for k, t in fields.items()}}
    rules = {"type": "object", "properties": {"rules": {"type": "array", "items": rule}}}
    install_crd(kube, crd("kubedefender.io", "v1", "GlobalLimit", "Cluster", rules))
    kube.api(
        "POST",
        "/apis/kubedefender.io/v1/globallimits",
        {
            "apiVersion": "kubedefender.io/v1",
            "kind": "GlobalLimit",
            "metadata": {"name": "default"},
            "spec": {
                "rules": [
                    {"verb": "delete", "resource": "pods", "qps": 5},
                    {"verb": "list", "resource": "secrets", "qps": 20},
                ]
            },
        },
    )
    yield
    remove_crd(kube, "globallimits.kubedefender.io")


PODS_QPS = "$.spec.rules[?(@.resource=='pods')].qps"


@pytest.mark.parametrize(
    ("qps", "drift"), [("5", ""), ("10", f"drift: {PODS_QPS} is 5, expected 10")]
)
def test_coverage_reads_custom_and_cluster_scoped_resources(
    kube: LocalKube, global_limit: None, tmp_path: Path, qps: str, drift: str
) -> None:
    env = case_env(
        kube.kubeconfig(),
        "kubeprobe",
        tmp_path,
        COVERAGE_RESOURCE="kubedefender.io/v1/globallimits",
        COVERAGE_NAME="default",
        COVERAGE_EXPECT=f"{PODS_QPS}={qps}",
    )
    _, body = run_case("config_coverage", env)
    assert steps(body)["get globallimits default"]["ok"] is True
    check = steps(body)[f"check {PODS_QPS}"]
    assert check["ok"] is (not drift)
    assert body["ok"] is (not drift), body["errors"]
    if drift:
        assert check["error"].endswith(drift)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COVERAGE_RESOURCE": "cronjobs"}, "COVERAGE_RESOURCE must look like"),
        ({"COVERAGE_EXPECT": ".spec.[[=1"}, "COVERAGE_EXPECT: bad JSONPath"),
        ({"COVERAGE_NAME": ""}, "COVERAGE_NAME is required"),
    ],
)
def test_coverage_configuration_errors_name_the_variable(
    kube: LocalKube, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    # Pointed at nothing: a case that called the cluster first would fail on that instead.
    config = closed_port_kubeconfig(kube)
    _, body = run_case(
        "config_coverage", case_env(config, "kubeprobe", tmp_path, **(coverage("kubeprobe") | env))
    )
    assert body["ok"] is False
    assert message in body["errors"][0]
    assert body["steps"] == []  # failed before any call
