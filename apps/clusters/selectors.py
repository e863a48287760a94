from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from apps.clusters.models import Cluster, ClusterGroup
from apps.core.db import JSONKeyText


def _label_match(queryset: QuerySet[Cluster], selector: dict[str, str]) -> QuerySet[Cluster]:
    # JSONKeyText handles keys with dots and slashes (e.g. topology.kubernetes.io/zone)
    # and all-digit keys, and works on SQLite as well as Postgres.
    aliases = {f"_label_{i}": JSONKeyText(key, "labels") for i, key in enumerate(selector)}
    filters = {f"_label_{i}": value for i, value in enumerate(selector.values())}
    return queryset.alias(**aliases).filter(**filters)


def cluster_group_resolve(*, group: ClusterGroup, enabled_only: bool = False) -> QuerySet[Cluster]:
    """Clusters in a group: explicit members plus label-selector matches."""
    base = Cluster.objects.all()
    condition = Q(pk__in=group.members.values("pk"))
    if group.selector:
        condition |= Q(pk__in=_label_match(Cluster.objects.all(), group.selector).values("pk"))
    qs = base.filter(condition)
    if enabled_only:
        qs = qs.filter(enabled=True)
    return qs.order_by("name")


def clusters_for_targets(
    *,
    clusters: Iterable[Cluster] = (),
    groups: Iterable[ClusterGroup] = (),
    enabled_only: bool = True,
) -> QuerySet[Cluster]:
    """The union of explicit clusters and resolved groups, without duplicates.

    `clusters` may be a queryset (a binding's thousands of clusters): it then
    stays a subquery instead of being loaded, kubeconfigs decrypted, row by row.
    """
    explicit = clusters.values("pk") if isinstance(clusters, QuerySet) else [c.pk for c in clusters]
    condition = Q(pk__in=explicit)
    for group in groups:
        condition |= Q(pk__in=cluster_group_resolve(group=group).values("pk"))
    qs = Cluster.objects.filter(condition)
    if enabled_only:
        qs = qs.filter(enabled=True)
    return qs.order_by("name")


def cluster_groups_of(
    *, cluster: Cluster, among: QuerySet[ClusterGroup] | None = None
) -> list[ClusterGroup]:
    """The groups a cluster belongs to (explicitly or by selector), optionally among a subset."""
    groups = (among if among is not None else ClusterGroup.objects.all()).distinct()
    explicit = set(groups.filter(members=cluster).values_list("pk", flat=True))
    labels = cluster.labels or {}
    return [
        group
        for group in groups
        if group.pk in explicit
        or (group.selector and all(labels.get(k) == v for k, v in group.selector.items()))
    ]


def clusters_with_api(*, queryset: QuerySet[Cluster] | None = None) -> QuerySet[Cluster]:
    """Clusters that have a Kubernetes API to check: those with a kubeconfig."""
    base = Cluster.objects.all() if queryset is None else queryset
    return base.exclude(kubeconfig_fingerprint="")
