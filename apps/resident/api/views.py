from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.clusters.models import Cluster
from apps.core.permissions import ChangePermissions
from apps.resident import services
from apps.resident.api.serializers import (
    ResidentAlertRuleSerializer,
    ResidentProbeSerializer,
    SeriesSerializer,
)
from apps.resident.filters import ResidentAlertRuleFilter, ResidentProbeFilter
from apps.resident.models import ResidentAlertRule, ResidentProbe, ResidentTarget
from apps.resident.selectors import SeriesParamError, resident_series, resident_series_params

M2M = ("clusters", "groups")
TokenAnswer = inline_serializer(
    "ResidentToken", {"token": serializers.CharField(help_text="Shown this once.")}
)


class ResidentProbeViewSet(viewsets.ModelViewSet):
    """Resident probes (常驻探测): a ProbeConfig in each target cluster keeps a probe
    running there; its samples come back to /api/v1/resident/samples.

    Creating one answers its token once (`token`); `rotate-token` issues a new one.
    """

    queryset = ResidentProbe.objects.select_related("case").prefetch_related(
        "clusters",
        "groups",
        Prefetch("targets", queryset=ResidentTarget.objects.select_related("cluster")),
    )
    serializer_class = ResidentProbeSerializer
    lookup_field = "name"
    filterset_class = ResidentProbeFilter
    search_fields = ["name", "description", "image"]
    ordering_fields = ["name", "created_at", "updated_at"]

    def get_queryset(self) -> QuerySet[ResidentProbe]:
        queryset = super().get_queryset()
        # Filtering on the relations may repeat rows.
        return queryset.distinct() if self.request.query_params else queryset

    @staticmethod
    def _split(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        fields = {k: v for k, v in data.items() if k not in M2M}
        relations = {k: data[k] for k in M2M if k in data}
        return fields, relations

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields, relations = self._split(serializer.validated_data)
        probe, token = services.resident_probe_create(fields=fields, **relations)
        body = {**self.get_serializer(probe).data, "token": token}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: ResidentProbeSerializer) -> None:  # type: ignore[override]
        fields, relations = self._split(serializer.validated_data)
        probe = serializer.instance
        assert probe is not None  # an update has its object
        serializer.instance = services.resident_probe_update(
            probe=probe, fields=fields, **relations
        )

    def perform_destroy(self, instance: ResidentProbe) -> None:
        services.resident_probe_delete(probe=instance)

    @extend_schema(request=None, responses={200: TokenAnswer})
    @action(
        detail=True,
        methods=["post"],
        url_path="rotate-token",
        permission_classes=[ChangePermissions],
    )
    def rotate_token(self, request: Request, name: str | None = None) -> Response:
        """A new token, shown once; the old one stops working now."""
        probe = self.get_object()
        return Response({"token": services.resident_probe_rotate_token(probe=probe)})

    @extend_schema(
        parameters=[
            OpenApiParameter("cluster", str, description="A cluster name; empty: all combined."),
            OpenApiParameter("from", str, description="ISO 8601 or unix seconds; default to - 1h."),
            OpenApiParameter("to", str, description="ISO 8601 or unix seconds; default now."),
            OpenApiParameter(
                "step", str, description="Seconds or 30s/5m/1h; default ~1500 points."
            ),
        ],
        responses={200: SeriesSerializer},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def series(self, request: Request, name: str | None = None) -> HttpResponse:
        """Availability (%), p50/p99 latency and sample count per step.

        Whole-minute steps read the per-minute rollups, shorter ones the raw windows
        (ranges up to 24 h). p50/p99 are count-weighted means of the windows' own
        percentiles, an approximation; max_ms is exact.
        """
        probe = self.get_object()
        cluster = None
        name_given = request.query_params.get("cluster")
        if name_given:
            cluster = Cluster.objects.filter(name=name_given).first()
            if cluster is None:
                return Response({"cluster": [f"No cluster named {name_given}."]}, status=400)
        try:
            params = resident_series_params(request.query_params)
            series = resident_series(probe=probe, cluster=cluster, **params)
        except SeriesParamError as exc:
            return Response({exc.field: [str(exc)]}, status=400)
        head = {
            "probe": probe.name,
            "cluster": cluster.name if cluster else None,
            "step": series.step,
            "source": series.source,
        }
        if series.columns_json is not None:
            # 10,000-point columns pass through as the database wrote them.
            body = json.dumps(head)[:-1] + ", " + series.columns_json[1:]
            return HttpResponse(body, content_type="application/json")
        return Response({**head, **series.columns()})


class ResidentAlertRuleViewSet(viewsets.ModelViewSet):
    """When resident probes alert: availability below X % or p99 above Y ms over the last
    T minutes, or no data. A probe's own rule wins over a global one."""

    queryset = ResidentAlertRule.objects.select_related("probe")
    serializer_class = ResidentAlertRuleSerializer
    lookup_field = "name"
    filterset_class = ResidentAlertRuleFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]
