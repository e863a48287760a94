"""Single objects looked up within what the user may see: clusters and alerts."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from apps.alerts.models import Alert
from apps.clusters.models import Cluster
from apps.dashboard import access


def _visible(user: Any) -> Q:
    """A filter on `cluster` for the user's clusters; empty for those who see all."""
    groups = access.viewable_groups(user)
    if groups is None:
        return Q()
    return Q(cluster__in=access.clusters_of_groups(groups).values("pk"))


def visible_cluster(*, user: Any, name: str) -> Cluster | None:
    return access.visible_clusters(user).filter(name=name).defer("kubeconfig").first()


def visible_cluster_by_id(*, user: Any, cluster_id: int) -> Cluster | None:
    return access.visible_clusters(user).filter(pk=cluster_id).defer("kubeconfig").first()


def visible_alert(*, user: Any, alert_id: int) -> Alert | None:
    return (
        Alert.objects.filter(_visible(user), pk=alert_id)
        .select_related("case", "cluster")
        .defer("cluster__kubeconfig")
        .first()
    )
