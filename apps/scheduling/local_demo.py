"""The quick start's demo: real built-in cases against real targets on this machine.

A `local` cluster (local executor), cases that inspect the portal's own TLS
endpoint and probe a local etcd (with TLS from the local CA), and a binding
that runs them every 30 seconds and once right away. These rows belong to
the demo: each set-up renders them for the current ports again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.catalog.models import Case, CaseTemplate, RenderConfig
from apps.catalog.services import SeedLine, catalog_seed_builtin
from apps.clusters.models import Cluster, Executor
from apps.clusters.services import clusters_import_kubeconfig
from apps.core.local_tls import LocalPki
from apps.runs.services import CreateResult
from apps.scheduling.models import Binding
from apps.scheduling.services import binding_fire_now

CLUSTER = "local"
BINDING = "local-demo"
CASE_TIMEOUT_SECONDS = 30
# `make run KUBE=1`: the local Kubernetes control plane as a second cluster.
KUBE_CLUSTER = "local-kube"
KUBE_BINDING = "local-kube-demo"
KUBE_NAMESPACE = "kubeprobe"
# The seeded cases that need nothing but the cluster itself.
KUBE_CASES = (
    "pod-lifecycle",
    "deployment-lifecycle",
    "statefulset-lifecycle",
    "canary-nginx",
    "node-probe-all",
)


class LocalDemoError(Exception):
    """The demo cannot be set up as asked; the message says why."""


@dataclass(frozen=True)
class DemoCase:
    name: str
    template: str
    description: str
    env: dict[str, str]
    enabled: bool
    why_disabled: str = ""


def _host_port(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def local_demo_cases(*, pki: LocalPki, tls_port: int | None, etcd_url: str) -> list[DemoCase]:
    """The demo's cases for these targets; those without a target are disabled."""
    portal = f"127.0.0.1:{tls_port},localhost:{tls_port}" if tls_port else ""
    etcd = _host_port(etcd_url) if etcd_url else ""
    return [
        _certificate_case(
            "local-portal-tls",
            "The portal's own TLS endpoint (chain to the local CA, hostnames, days left) "
            "and the local CA's expiry.",
            pki=pki,
            endpoints=portal,
            files=pki.ca_cert,
            why_disabled="" if tls_port else "the portal is not served over TLS (no --tls-port)",
        ),
        DemoCase(
            "local-etcd",
            "etcd-blackbox",
            "put, get, range, txn and delete on the local etcd, over TLS with a client certificate.",
            {
                "ETCD_ENDPOINTS": etcd_url,
                "ETCD_CACERT": str(pki.ca_cert),
                "ETCD_CERT": str(pki.client_cert),
                "ETCD_KEY": str(pki.client_key),
                # A laptop's disk may take a while to fsync; still a real limit.
                "ETCD_OP_THRESHOLD_MS": "1000",
            },
            enabled=bool(etcd_url),
            why_disabled="no local etcd (no --etcd)",
        ),
        _certificate_case(
            "local-etcd-tls",
            "The local etcd's TLS endpoint and the client certificate the portal uses for it.",
            pki=pki,
            endpoints=etcd,
            files=pki.client_cert,
            why_disabled="" if etcd_url else "no local etcd (no --etcd)",
        ),
    ]


def _certificate_case(
    name: str, description: str, *, pki: LocalPki, endpoints: str, files: Path, why_disabled: str
) -> DemoCase:
    """A certificate-inspection case of TLS ``endpoints`` and certificate ``files``,
    trusting the local CA; disabled when there is a reason."""
    env = {"CERT_ENDPOINTS": endpoints, "CERT_CA_FILE": str(pki.ca_cert), "CERT_FILES": str(files)}
    return DemoCase(
        name,
        "certificate-inspection",
        description,
        env,
        enabled=not why_disabled,
        why_disabled=why_disabled,
    )


def _ensure_cluster() -> SeedLine:
    cluster = Cluster.objects.filter(name=CLUSTER).first()
    if cluster is None:
        Cluster.objects.create(
            name=CLUSTER,
            display_name="This machine",
            description="The quick start's targets on this host, probed by local processes.",
            executor=Executor.LOCAL,
            environment="local",
        )
        return SeedLine("cluster", CLUSTER, "created")
    if cluster.executor != Executor.LOCAL:
        raise LocalDemoError(
            f"A cluster named '{CLUSTER}' exists with the {cluster.executor} executor; the demo "
            f"needs it to use the local executor. Rename that cluster or change its executor."
        )
    return SeedLine("cluster", CLUSTER, "unchanged")


def _ensure_case(demo: DemoCase) -> tuple[Case, SeedLine]:
    template = CaseTemplate.objects.get(name=demo.template)
    wanted = {
        "template": template,
        "description": demo.description,
        "timeout_seconds": CASE_TIMEOUT_SECONDS,
        "enabled": demo.enabled,
    }
    case = Case.objects.filter(name=demo.name).first()
    note = "" if demo.enabled else f"disabled: {demo.why_disabled}"
    if case is None:
        case = Case(name=demo.name, **wanted)
        case.full_clean()
        case.save()
        RenderConfig.objects.create(case=case, name=demo.name, env=demo.env)
        return case, SeedLine("case", demo.name, "created", note)
    render = RenderConfig.objects.filter(case=case).first()
    changed = any(getattr(case, k) != v for k, v in wanted.items()) or (
        render is None or render.env != demo.env
    )
    if not changed:
        return case, SeedLine("case", demo.name, "unchanged", note)
    for key, value in wanted.items():
        setattr(case, key, value)
    case.full_clean()
    case.save()
    RenderConfig.objects.update_or_create(
        case=case, defaults={"name": demo.name, "env": demo.env, "args": None, "resources": None}
    )
    return case, SeedLine("case", demo.name, "updated", note)


def _ensure_binding(
    cases: list[Case],
    interval_seconds: int,
    *,
    name: str = BINDING,
    cluster_name: str = CLUSTER,
    description: str = "The quick start's demo: local cases on the local cluster.",
) -> tuple[Binding, SeedLine]:
    cluster = Cluster.objects.get(name=cluster_name)
    binding = Binding.objects.filter(name=name).first()
    action = "unchanged"
    if binding is None:
        binding = Binding(name=name, description=description, interval_seconds=interval_seconds)
        binding.full_clean()
        binding.save()
        action = "created"
    elif binding.interval_seconds != interval_seconds or binding.cron:
        binding.interval_seconds, binding.cron = interval_seconds, ""
        binding.save()  # also moves its beat entry
        action = "updated"
    if set(binding.clusters.all()) != {cluster} or set(binding.cases.all()) != set(cases):
        binding.clusters.set([cluster])
        binding.cases.set(cases)
        action = "updated" if action == "unchanged" else action
    # The operator's choice to switch the demo off survives the next `make run`.
    note = f"every {interval_seconds}s" if binding.enabled else "disabled; enable it in the admin"
    return binding, SeedLine("binding", name, action, note)


@dataclass
class LocalDemoResult:
    catalog: list[SeedLine]  # what seeding the built-in catalog did
    demo: list[SeedLine]  # the demo's own rows
    fired: CreateResult


@transaction.atomic
def local_demo_setup(
    *,
    pki: LocalPki,
    tls_port: int | None,
    etcd_url: str = "",
    interval_seconds: int = 30,
    run_now: bool = True,
) -> LocalDemoResult:
    """Create or re-render the demo's rows; fire the binding once (after commit)."""
    if not settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED:
        raise LocalDemoError(
            "The local demo runs cases with the local executor, which is disabled. "
            "Set KUBEPROBE_LOCAL_EXECUTOR_ENABLED=true (trials only; the quick start does)."
        )
    if etcd_url and not etcd_url.startswith(("http://", "https://")):
        raise LocalDemoError(f"--etcd must be an http(s):// URL, got '{etcd_url}'.")
    if not pki.ca_cert.exists():
        raise LocalDemoError(
            f"No local CA at {pki.ca_cert}: run `manage.py local_tls` first (the quick start does)."
        )
    catalog = catalog_seed_builtin()
    lines = [_ensure_cluster()]
    cases = []
    for demo in local_demo_cases(pki=pki, tls_port=tls_port, etcd_url=etcd_url):
        case, line = _ensure_case(demo)
        cases.append(case)
        lines.append(line)
    binding, line = _ensure_binding(cases, interval_seconds)
    return _finish(catalog, [*lines, line], binding, run_now=run_now)


@transaction.atomic
def local_kube_setup(
    *, kubeconfig: Path, interval_seconds: int = 60, run_now: bool = True
) -> LocalDemoResult:
    """Register the local control plane (`deploy/dev/kube-up --name local-kube`) as the
    cluster `local-kube` and bind the seeded Kubernetes cases to it.

    Its pods are kwok's and run nothing: `deploy/dev/kube_player.py` plays them
    (the quick start starts it), or their runs time out.
    """
    catalog = catalog_seed_builtin()
    [imported] = clusters_import_kubeconfig(path=kubeconfig, namespace=KUBE_NAMESPACE)
    if imported.cluster.name != KUBE_CLUSTER:
        raise LocalDemoError(
            f"The kubeconfig's context is '{imported.cluster.name}', not '{KUBE_CLUSTER}': "
            f"start the cluster with `deploy/dev/kube-up --name {KUBE_CLUSTER}`."
        )
    lines = [SeedLine("cluster", KUBE_CLUSTER, "created" if imported.created else "updated")]
    cases = list(Case.objects.filter(name__in=KUBE_CASES).order_by("name"))
    binding, line = _ensure_binding(
        cases,
        interval_seconds,
        name=KUBE_BINDING,
        cluster_name=KUBE_CLUSTER,
        description="The quick start's demo: the built-in Kubernetes cases on the local kwok cluster.",
    )
    return _finish(catalog, [*lines, line], binding, run_now=run_now)


def _finish(
    catalog: list[SeedLine], lines: list[SeedLine], binding: Binding, *, run_now: bool
) -> LocalDemoResult:
    """The set-up's result, the binding fired first (after commit) if asked and enabled."""
    fired = CreateResult()
    if run_now and binding.enabled:
        fired = binding_fire_now(binding=binding)
    return LocalDemoResult(catalog, lines, fired)
