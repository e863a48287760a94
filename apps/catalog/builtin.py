"""The built-in cases shipped in probe_sdk/cases/, as catalog rows.

One data structure for `manage.py seed_catalog`, the local demo, the README
and the tests: each template names its module, its env (with defaults and
meaning) and the default cases (render configs) created from it.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from apps.catalog.models import TemplateKind

# The service account the Kubernetes cases run as; the operator creates it
# (with the RBAC its cases need) in each cluster's probe namespace.
PROBE_SERVICE_ACCOUNT = "kubeprobe-probe"
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "128Mi"},
}
BUILTIN_CASE_SET = "builtin-probes"


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str  # "" leaves it to the case module's own default
    meaning: str


_ROW = re.compile(r"^\|\s*(`[^|]+`)\s*\|\s*([^|]*?)\s*\|\s*(.*?)\s*\|\s*$")
_LITERAL = re.compile(r"^`([^`]+)`$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@cache
def module_env(module: str) -> tuple[EnvVar, ...]:
    """Parse the env table of a case module's docstring: one source for docs and catalog.

    A default is kept only when it is a plain literal (`pod`, `500`); prose defaults
    ("(required)", "the pod's own namespace") and references to other variables are
    left to the module.
    """
    doc = importlib.import_module(f"probe_sdk.cases.{module}").__doc__ or ""
    found: list[EnvVar] = []
    for line in doc.splitlines():
        row = _ROW.match(line.strip())
        if not row:
            continue
        names, default_cell, meaning = row.groups()
        literal = _LITERAL.match(default_cell)
        default = literal.group(1) if literal and not _ENV_NAME.match(literal.group(1)) else ""
        for name in re.findall(r"`([^`]+)`", names):
            found.append(EnvVar(name, default, meaning.replace("`", "")))
    return tuple(found)


@dataclass(frozen=True)
class BuiltinCase:
    name: str
    description: str
    env: dict[str, str] = field(default_factory=dict)
    # In the `builtin-probes` case set: runs on any cluster without site-specific settings.
    in_case_set: bool = False


@dataclass(frozen=True)
class BuiltinTemplate:
    name: str
    kind: str
    module: str
    summary: str
    cases: tuple[BuiltinCase, ...]
    timeout_seconds: int
    kubernetes: bool = True  # talks to the cluster's API: service account + common env
    service_account: str = PROBE_SERVICE_ACCOUNT

    @property
    def command(self) -> list[str]:
        return ["python", "-m", f"probe_sdk.cases.{self.module}"]

    @property
    def env(self) -> tuple[EnvVar, ...]:
        """The env the case module documents in its docstring table."""
        return module_env(self.module)

    @property
    def all_env(self) -> tuple[EnvVar, ...]:
        return self.env + (module_env("_kube") if self.kubernetes else ())

    @property
    def default_env(self) -> dict[str, str]:
        # The case's own settings; the shared Kubernetes ones stay in the description.
        return {var.name: var.default for var in self.env if var.default}

    @property
    def description(self) -> str:
        lines = [self.summary, "", f"Runs `python -m probe_sdk.cases.{self.module}`. Env:"]
        for var in self.all_env:
            default = f" (default {var.default})" if var.default else ""
            lines.append(f"- {var.name}{default}: {var.meaning}")
        return "\n".join(lines)

    def fields(self, *, image: str) -> dict[str, Any]:
        """The CaseTemplate fields of the shipped definition."""
        return {
            "kind": self.kind,
            "image": image,
            "command": self.command,
            "args": [],
            "default_env": self.default_env,
            "timeout_seconds": self.timeout_seconds,
            "resources": DEFAULT_RESOURCES,
            "service_account": self.service_account if self.kubernetes else "",
            "report_protocol": "kubeprobe",
            "description": self.description,
            "owner": "KubeProbe (built in)",
        }


BUILTIN_TEMPLATES: tuple[BuiltinTemplate, ...] = (
    BuiltinTemplate(
        name="workload-lifecycle",
        kind=TemplateKind.PROBE,
        module="lifecycle",
        summary="Creates, waits for, updates and deletes a workload (pod, deployment or statefulset), timing each step.",
        cases=(
            BuiltinCase(
                "pod-lifecycle",
                "A pod is created, runs and is deleted.",
                {"LIFECYCLE_KIND": "pod"},
                True,
            ),
            BuiltinCase(
                "deployment-lifecycle",
                "A deployment rolls out its replicas and is deleted.",
                {"LIFECYCLE_KIND": "deployment"},
                True,
            ),
            BuiltinCase(
                "statefulset-lifecycle",
                "A statefulset starts its replicas in order and is deleted.",
                {"LIFECYCLE_KIND": "statefulset"},
                True,
            ),
        ),
        timeout_seconds=300,
    ),
    BuiltinTemplate(
        name="etcd-blackbox",
        kind=TemplateKind.PROBE,
        module="etcd",
        summary="put, get, range, txn (compare-and-swap) and delete on every etcd endpoint through the v3 JSON gateway.",
        cases=(
            BuiltinCase(
                "etcd-kubeadm",
                "The local etcd member of a kubeadm control-plane node "
                "(https://127.0.0.1:2379, certificates under /etc/kubernetes/pki/etcd): "
                "the probe must run on that node with host networking and those files "
                "mounted. Elsewhere, set your endpoints and certificate paths.",
                {
                    "ETCD_ENDPOINTS": "https://127.0.0.1:2379",
                    "ETCD_CACERT": "/etc/kubernetes/pki/etcd/ca.crt",
                    "ETCD_CERT": "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                    "ETCD_KEY": "/etc/kubernetes/pki/etcd/healthcheck-client.key",
                },
            ),
        ),
        timeout_seconds=120,
        kubernetes=False,
    ),
    BuiltinTemplate(
        name="canary-release",
        kind=TemplateKind.PROBE,
        module="canary",
        summary="Deploys a canary behind a Service, rolls out a new version, scales it up and down, and checks the Service routes to exactly the ready pods after each step.",
        cases=(
            BuiltinCase(
                "canary-nginx",
                "An nginx canary updated from 1.26 to 1.27 and scaled from 1 to 3 replicas. "
                "Point the images at your registry where clusters cannot pull from Docker Hub.",
                {"CANARY_IMAGE": "nginx:1.26-alpine", "CANARY_NEW_IMAGE": "nginx:1.27-alpine"},
            ),
        ),
        timeout_seconds=600,
    ),
    BuiltinTemplate(
        name="node-probe",
        kind=TemplateKind.PROBE,
        module="nodes",
        summary="Runs a short pod on each selected node, so a broken node is named.",
        cases=(BuiltinCase("node-probe-all", "A pod on every node of the cluster.", {}, True),),
        timeout_seconds=600,
    ),
    BuiltinTemplate(
        name="virtual-cluster",
        kind=TemplateKind.PROBE,
        module="vcluster",
        summary="Reaches each virtual cluster through its kubeconfig and uses it like a user.",
        cases=(
            BuiltinCase(
                "vcluster-link",
                "A virtual cluster whose kubeconfig is the Secret vcluster creates "
                "(vc-<name> in its host namespace); set VCLUSTER_SECRET to yours.",
                {"VCLUSTER_SECRET": "vcluster/vc-vcluster"},
            ),
        ),
        timeout_seconds=300,
    ),
    BuiltinTemplate(
        name="federation-link",
        kind=TemplateKind.PROBE,
        module="federation",
        summary="Creates a federated object in the host cluster and waits until every member cluster has it.",
        cases=(
            BuiltinCase(
                "federation-configmap-link",
                "A FederatedConfigMap (KubeFed) reaches every member cluster; member "
                "kubeconfigs from the Secret named in FEDERATION_MEMBER_SECRET.",
                {"FEDERATION_MEMBER_SECRET": "kube-federation-system/member-kubeconfigs"},
            ),
        ),
        timeout_seconds=300,
    ),
    BuiltinTemplate(
        name="certificate-inspection",
        kind=TemplateKind.INSPECTION,
        module="certificates",
        summary="Days to expiry, chain and hostname of TLS endpoints and client certificates.",
        cases=(
            BuiltinCase(
                "apiserver-certificates",
                "The cluster's API server certificate, verified against the in-cluster CA.",
                {"CERT_ENDPOINTS": "kubernetes.default.svc:443"},
                True,
            ),
        ),
        timeout_seconds=120,
        kubernetes=False,
        # The in-cluster CA comes with any service account token; no API access needed.
        service_account="",
    ),
    BuiltinTemplate(
        name="config-coverage",
        kind=TemplateKind.INSPECTION,
        module="config_coverage",
        summary="Checks that a resource exists and its fields have the expected values (a known risk is covered).",
        cases=(
            BuiltinCase(
                "etcd-backup-coverage",
                "An etcd backup CronJob kube-system/etcd-backup exists and is not suspended.",
                {
                    "COVERAGE_RESOURCE": "batch/v1/cronjobs",
                    "COVERAGE_NAMESPACE": "kube-system",
                    "COVERAGE_NAME": "etcd-backup",
                    "COVERAGE_EXPECT": "{.spec.suspend}=false",
                },
            ),
            BuiltinCase(
                "coredns-replicas-coverage",
                "CoreDNS runs more than one replica (kubeadm's default of 2), so DNS survives a node.",
                {
                    "COVERAGE_RESOURCE": "apps/v1/deployments",
                    "COVERAGE_NAMESPACE": "kube-system",
                    "COVERAGE_NAME": "coredns",
                    "COVERAGE_EXPECT": "{.spec.replicas}=2",
                },
            ),
        ),
        timeout_seconds=120,
    ),
)

BUILTIN_CASE_SET_DESCRIPTION = (
    "Built-in cases that run on any cluster without site-specific settings: "
    "workload lifecycles, a pod per node and the API server's certificates."
)


def builtin_template(name: str) -> BuiltinTemplate:
    return next(t for t in BUILTIN_TEMPLATES if t.name == name)


def builtin_case_set_members() -> list[str]:
    return [c.name for t in BUILTIN_TEMPLATES for c in t.cases if c.in_case_set]
