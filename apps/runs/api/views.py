from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.clusters.selectors import cluster_group_resolve
from apps.runs import services
from apps.runs.api import endpoint
from apps.runs.api.serializers import ProbeRunSerializer, ReportSerializer, RunRequestSerializer
from apps.runs.filters import ProbeRunFilter
from apps.runs.models import ProbeRun


class CanRunProbes(permissions.BasePermission):
    message = "Running probes by hand needs the runs.run_probe permission (operator or admin role)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm("runs.run_probe"))


RunRequestResult = inline_serializer(
    "RunRequestResult",
    {
        "runs": serializers.ListField(child=serializers.IntegerField()),
        "created": serializers.IntegerField(),
        "skipped": serializers.IntegerField(
            help_text="Previous run of the same case on the same cluster still active."
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


class _PlainPost(APIView):
    """An APIView for the schema only: requests skip DRF's request wrapping,
    authentication and content negotiation, which this hot path does not need."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list[Any] = []

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        if request.method != "POST":
            return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
        return self.post(request, *args, **kwargs)  # type: ignore[attr-defined,no-any-return]


class RunReportView(_PlainPost):
    """A probe reports its result: `Authorization: Bearer <KUBEPROBE_TOKEN>`, once per run.

    200 stored · 400 invalid body (the field is named) · 401 bad token · 404 unknown run ·
    409 already finished (the first result stays) · 410 past the deadline · 413 over 256 KiB.
    """

    @extend_schema(
        request=ReportSerializer,
        responses={
            200: inline_serializer(
                "ReportStored", {"id": serializers.IntegerField(), "state": serializers.CharField()}
            ),
            400: OpenApiResponse(description="Invalid body; the offending fields are named."),
            401: OpenApiResponse(description="Missing or wrong run token."),
            404: OpenApiResponse(description="No such run."),
            409: OpenApiResponse(description="The run already finished."),
            410: OpenApiResponse(description="The run is past its deadline."),
            413: OpenApiResponse(description="Body over 256 KiB."),
            503: OpenApiResponse(description="The database could not store it now; retry."),
        },
        auth=[],
    )
    def post(self, request: HttpRequest, run_id: int) -> HttpResponse:
        return endpoint.run_report_answer(run_id, request.META, request.read).response()


class KuberhealthyReportView(_PlainPost):
    """Kuberhealthy v3 check clients report here (`KH_REPORTING_URL`), unchanged.

    The `kh-run-uuid` header names the run. Answers as Kuberhealthy does: 200 stored;
    400 missing/unknown/used uuid or bad body; 410 past the deadline; 415 not JSON.
    """

    @extend_schema(
        request=inline_serializer(
            "KuberhealthyReport",
            {
                "ok": serializers.BooleanField(),
                "errors": serializers.ListField(child=serializers.CharField()),
            },
        ),
        responses={200: None, 400: None, 410: None, 415: None},
        auth=[],
    )
    def post(self, request: HttpRequest) -> HttpResponse:
        return endpoint.kuberhealthy_answer(request.META, request.read).response()
