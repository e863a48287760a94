from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.clusters.selectors import cluster_group_resolve
from apps.runs import services
from apps.runs.api.serializers import ProbeRunSerializer, RunRequestSerializer
from apps.runs.filters import ProbeRunFilter
from apps.runs.models import ProbeRun


class CanRunProbes(permissions.BasePermission):
    message = _(
        "Running probes by hand needs the runs.run_probe permission (operator or admin role)."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm("runs.run_probe"))


RunRequestResult = inline_serializer(
    "RunRequestResult",
    {
        "runs": serializers.ListField(child=serializers.IntegerField()),
        "created": serializers.IntegerField(),
        "skipped": serializers.IntegerField(
            help_text=_("Previous run of the same case on the same cluster still active.")
        ),
    },
)


class ProbeRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Probe runs, newest first. POST requests runs by hand (case or case set × cluster or group)."""

    queryset = ProbeRun.objects.select_related("case", "cluster", "binding").defer(
        "log_tail", "diagnostics"
    )
    serializer_class = ProbeRunSerializer
    filterset_class = ProbeRunFilter
    ordering_fields = ["created_at", "finished_at", "duration_ms"]

    def get_permissions(self) -> Any:
        if self.action == "create":
            return [permissions.IsAuthenticated(), CanRunProbes()]
        return super().get_permissions()

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return RunRequestSerializer if self.action == "create" else ProbeRunSerializer

    @extend_schema(request=RunRequestSerializer, responses={201: RunRequestResult})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = RunRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        cases: list[Case] = (
            [data["case"]]
            if data.get("case")
            else list(data["case_set"].cases.filter(enabled=True))
        )
        clusters: list[Cluster] = (
            [data["cluster"]]
            if data.get("cluster")
            else list(cluster_group_resolve(group=data["group"], enabled_only=True))
        )
        result = services.runs_for_manual_request(
            cases=cases, clusters=clusters, requested_by_id=request.user.pk
        )
        return Response(
            {"runs": result.created, "created": len(result.created), "skipped": result.skipped},
            status=status.HTTP_201_CREATED,
        )
