from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.utils.text import slugify

from apps.clusters import kubeconfig as kc
from apps.clusters.models import Cluster, Executor


@dataclass
class ImportResult:
    cluster: Cluster
    created: bool


def cluster_name_for_context(context: str) -> str:
    """A cluster slug from a context name (arn:aws:eks:…/prod → arn-aws-eks-prod)."""
    return slugify(context.replace("/", "-").replace(":", "-").replace("@", "-"))[:63].strip("-")


@transaction.atomic
def clusters_import_kubeconfig(
    *,
    path: Path,
    contexts: list[str] | None = None,
    all_contexts: bool = False,
    namespace: str | None = None,
) -> list[ImportResult]:
    """Create or update one cluster per context of a kubeconfig file.

    Each cluster stores a self-contained kubeconfig with only its context,
    certificates inlined. Re-importing updates the kubeconfig in place.
    """
    text = path.read_text()
    doc = kc.parse(text)
    if all_contexts:
        names = kc.context_names(doc)
    elif contexts:
        names = [kc.resolve_context(doc, c) for c in contexts]
    else:
        names = [kc.resolve_context(doc)]
    results = []
    for context in names:
        single = kc.extract_context(doc, context, path.parent)
        kc.validate(single, context)
        name = cluster_name_for_context(context)
        cluster = Cluster.objects.filter(name=name).first()
        created = cluster is None
        if cluster is None:
            cluster = Cluster(name=name, display_name=context, executor=Executor.KUBERNETES)
        cluster.kubeconfig = single
        cluster.context = context
        if namespace:
            cluster.namespace = namespace
        cluster.full_clean()
        cluster.save()
        results.append(ImportResult(cluster=cluster, created=created))
    return results
