"""Celery entry points of the clusters app: the periodic API check."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.clusters.selectors import clusters_with_api
from apps.clusters.services import cluster_check_api


@shared_task(name="apps.clusters.tasks.check_cluster_apis", ignore_result=True)
def check_cluster_apis() -> int:
    """Fan out one API check per enabled cluster, so a slow cluster delays no other."""
    ids = list(clusters_with_api().filter(enabled=True).values_list("pk", flat=True))
    for cluster_id in ids:
        check_cluster_api.apply_async(
            (cluster_id,), expires=settings.KUBEPROBE_API_CHECK_INTERVAL_SECONDS
        )
    return len(ids)


@shared_task(name="apps.clusters.tasks.check_cluster_api", ignore_result=True)
def check_cluster_api(cluster_id: int) -> None:
    cluster = clusters_with_api().filter(pk=cluster_id).first()
    if cluster is not None:  # deleted, or its kubeconfig cleared, since it was queued
        cluster_check_api(cluster=cluster)
