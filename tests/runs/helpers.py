from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.catalog.models import Case
from apps.clusters.models import Cluster, Executor
from apps.core.crypto import hash_token
from apps.runs.models import ProbeRun, RunState
from apps.runs.services import runs_create
from tests.factories import CaseFactory, CaseTemplateFactory, ClusterFactory, RenderConfigFactory
from tests.kube import LocalKube


def kube_cluster(
    kube: LocalKube, namespace: str | None = None, kubeconfig: str | None = None, **kwargs: Any
) -> Cluster:
    """A kubernetes-executor cluster on the local control plane (tests/kube.py).

    It talks to the API as cluster admin unless `kubeconfig` is given (a service
    account's, a fault proxy's); probe pods go to `namespace` (the model's
    default when left out).
    """
    if namespace is not None:
        kwargs["namespace"] = namespace
    return ClusterFactory(
        kubeconfig=kubeconfig or kube.kubeconfig(), executor=Executor.KUBERNETES, **kwargs
    )


def pod_of(kube: LocalKube, run: ProbeRun) -> dict[str, Any]:
    """The run's pod as the API server stores it (after defaulting and admission)."""
    run = ProbeRun.objects.select_related("cluster").get(pk=run.pk)
    return kube.api("GET", f"/api/v1/namespaces/{run.cluster.namespace}/pods/{run.pod_name}")


def pod_names(kube: LocalKube, namespace: str, selector: str = "") -> set[str]:
    """Names of the pods in a namespace (optionally matching a label selector)."""
    query = f"?labelSelector={selector}" if selector else ""
    items = kube.api("GET", f"/api/v1/namespaces/{namespace}/pods{query}")["items"]
    return {p["metadata"]["name"] for p in items}


def make_case(
    image: str = "ghcr.io/kubeprobe/probes:1", timeout: int = 60, **template: Any
) -> Case:
    tmpl = CaseTemplateFactory(image=image, timeout_seconds=timeout, **template)
    render = RenderConfigFactory(case__template=tmpl, env={"TARGET": "etcd-meta"})
    return Case.objects.select_related("template", "render_config").get(pk=render.case_id)


def make_run(
    case: Case, cluster: Cluster, trigger: str = "manual", key: str | None = None
) -> ProbeRun:
    result = runs_create(
        pairs=[(case, cluster)],
        trigger=trigger,
        key=key or f"test:{CaseFactory._meta.model.objects.count()}:{ProbeRun.objects.count()}",
        skip_if_active=False,
    )
    [run_id] = result.created
    return ProbeRun.objects.get(pk=run_id)


def running_runs(
    count: int = 1,
    cluster: Cluster | None = None,
    token: str | Callable[[int], str] = "tok-" + "y" * 30,
) -> list[ProbeRun]:
    """`count` runs of one case, running on `cluster` for five more minutes, each
    holding `token` (or token(i)) as its run token."""
    case, cluster = make_case(), cluster or ClusterFactory()
    out = []
    for i in range(count):
        run = make_run(case, cluster, key=f"running-{cluster.pk}-{case.pk}-{i}")
        raw = token(i) if callable(token) else token
        ProbeRun.objects.filter(pk=run.pk).update(
            state=RunState.RUNNING,
            token_hash=hash_token(raw),
            dispatched_at=timezone.now(),
            deadline=timezone.now() + timedelta(minutes=5),
        )
        out.append(ProbeRun.objects.get(pk=run.pk))
    return out


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}
