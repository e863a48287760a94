from __future__ import annotations

from typing import Any

from apps.catalog.models import Case
from apps.clusters.models import Cluster, Executor
from apps.runs.models import ProbeRun
from apps.runs.services import runs_create
from tests.factories import CaseFactory, CaseTemplateFactory, ClusterFactory, RenderConfigFactory


def kube_cluster(fake: Any, **kwargs: Any) -> Cluster:
    return ClusterFactory(kubeconfig=fake.kubeconfig(), executor=Executor.KUBERNETES, **kwargs)


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


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}
