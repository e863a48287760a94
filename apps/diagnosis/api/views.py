from __future__ import annotations

from django.db.models import Prefetch
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import Conflict
from apps.core.permissions import ChangePermissions
from apps.diagnosis import services
from apps.diagnosis.api.serializers import (
    IncidentSerializer,
    LabelSerializer,
    RunDiagnosisSerializer,
)
from apps.diagnosis.filters import IncidentFilter, RunDiagnosisFilter
from apps.diagnosis.models import Incident, IncidentEvent, IncidentMember, RunDiagnosis
from apps.runs.models import ProbeRun

CONFLICT = OpenApiResponse(description="Cannot be labelled; `detail` says why.")


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    """Incidents: alerts failing together for one cause, with members and timeline."""

    queryset = Incident.objects.select_related("case", "cluster", "labelled_by").prefetch_related(
        Prefetch(
            "members",
            queryset=IncidentMember.objects.select_related("alert__case", "alert__cluster"),
        ),
        Prefetch("timeline", queryset=IncidentEvent.objects.select_related("user")),
    )
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter
    ordering_fields = ["opened_at", "updated_at", "id"]

    @extend_schema(request=LabelSerializer, responses={200: IncidentSerializer})
    @action(
        detail=True, methods=["post"], permission_classes=[ChangePermissions], url_path="root-cause"
    )
    def root_cause(self, request: Request, pk: str | None = None) -> Response:
        """Confirm or correct the incident's root cause; its members' runs get the label."""
        incident = self.get_object()
        body = LabelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.incident_label(
            incident_id=incident.pk,
            category=body.validated_data["category"],
            user=request.user,
            note=body.validated_data.get("note", ""),
        )
        return Response(IncidentSerializer(self.get_queryset().get(pk=incident.pk)).data)


class RunDiagnosisViewSet(viewsets.ReadOnlyModelViewSet):
    """The diagnosis of each failed run, addressed by run id."""

    queryset = RunDiagnosis.objects.select_related("rule", "labelled_by")
    serializer_class = RunDiagnosisSerializer
    filterset_class = RunDiagnosisFilter
    lookup_field = "run"
    ordering_fields = ["created_at", "run"]

    @extend_schema(request=LabelSerializer, responses={200: RunDiagnosisSerializer, 409: CONFLICT})
    @action(
        detail=False,
        methods=["post"],
        permission_classes=[ChangePermissions],
        url_path=r"(?P<run_id>[0-9]+)/root-cause",
    )
    def root_cause(self, request: Request, run_id: str) -> Response:
        """Confirm or correct a failed run's root cause (a label the classifier learns from).
        The run need not have been diagnosed yet."""
        body = LabelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if not ProbeRun.objects.filter(pk=int(run_id)).exists():
            raise NotFound(gettext("No run %(id)s.") % {"id": run_id})
        try:
            diagnosis = services.run_label(
                run_id=int(run_id), category=body.validated_data["category"], user=request.user
            )
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        return Response(RunDiagnosisSerializer(diagnosis).data)
