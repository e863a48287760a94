"""Which clusters a user may see on the dashboards (pages and pushed messages).

Superusers and users with ``clusters.view_cluster`` (the admin, operator and
viewer roles) see every cluster. Other users see the clusters of the cluster
groups whose ``viewer_groups`` hold one of their auth groups: explicit members
and label-selector matches alike. Each answer costs one or two queries
(besides Django's permission cache, filled once per user object).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from apps.clusters.models import Cluster, ClusterGroup
from apps.clusters.selectors import _label_match

ALL_CLUSTERS_PERMISSION = "clusters.view_cluster"


def sees_all_clusters(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(user.is_superuser or user.has_perm(ALL_CLUSTERS_PERMISSION))


def viewable_groups(user: Any) -> list[ClusterGroup] | None:
    """The cluster groups that grant this user sight of their clusters; None: all clusters."""
    if sees_all_clusters(user):
        return None
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    return list(ClusterGroup.objects.filter(viewer_groups__user=user).distinct().order_by("name"))


def _condition(groups: list[ClusterGroup]) -> Q:
    # Subqueries, not id lists: the caller's query stays one statement.
    condition = Q(
        pk__in=ClusterGroup.members.through.objects.filter(
            clustergroup_id__in=[g.pk for g in groups]
        ).values("cluster_id")
    )
    for group in groups:
        if group.selector:
            condition |= Q(pk__in=_label_match(Cluster.objects.all(), group.selector).values("pk"))
    return condition


def clusters_of_groups(groups: list[ClusterGroup] | None) -> QuerySet[Cluster]:
    """The clusters that `viewable_groups` grants, lazily (no query of its own)."""
    if groups is None:
        return Cluster.objects.all()
    if not groups:
        return Cluster.objects.none()
    return Cluster.objects.filter(_condition(groups))


def visible_clusters(user: Any) -> QuerySet[Cluster]:
    """The clusters this user may see, as a lazy queryset (one query to find their groups)."""
    return clusters_of_groups(viewable_groups(user))


def visible_cluster_ids(user: Any) -> set[int] | None:
    """Ids of the clusters this user may see; None means every cluster."""
    groups = viewable_groups(user)
    if groups is None:
        return None
    if not groups:
        return set()
    return set(Cluster.objects.filter(_condition(groups)).values_list("pk", flat=True))


def can_see_cluster(user: Any, cluster_id: int) -> bool:
    groups = viewable_groups(user)
    if groups is None:
        return True
    if not groups:
        return False
    return Cluster.objects.filter(_condition(groups), pk=cluster_id).exists()
