from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.clusters.api.serializers import ClusterGroupSerializer, ClusterSerializer
from apps.clusters.filters import ClusterFilter, ClusterGroupFilter
from apps.clusters.models import Cluster, ClusterGroup
from apps.clusters.selectors import cluster_group_resolve
from apps.core.api import NamedModelViewSet


class ClusterViewSet(NamedModelViewSet):
    """Target clusters. The kubeconfig is write-only."""

    queryset = Cluster.objects.defer("kubeconfig")
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilter
    search_fields = ["name", "display_name", "description"]
    ordering_fields = [
        "name",
        "region",
        "environment",
        "api_status",
        "api_version",
        "api_checked_at",
        "created_at",
        "updated_at",
    ]


class ResolvedClustersSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    clusters = serializers.ListField(child=serializers.CharField())


class ClusterGroupViewSet(NamedModelViewSet):
    queryset = ClusterGroup.objects.prefetch_related("members")
    serializer_class = ClusterGroupSerializer
    filterset_class = ClusterGroupFilter

    def get_queryset(self) -> QuerySet[ClusterGroup]:
        return ClusterGroup.objects.prefetch_related("members")

    @extend_schema(responses=ResolvedClustersSerializer)
    @action(detail=True, methods=["get"])
    def resolve(self, request: Request, name: str | None = None) -> Response:
        """The clusters the group resolves to (members + selector)."""
        names = list(cluster_group_resolve(group=self.get_object()).values_list("name", flat=True))
        return Response({"count": len(names), "clusters": names})
