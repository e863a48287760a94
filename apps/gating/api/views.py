"""GET /api/v1/gate, /api/v1/gate/checks, /api/v1/gate/policies, /api/v1/gate/decisions."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import AtomicWritesMixin
from apps.core.models import ApiToken
from apps.gating import services
from apps.gating.api.serializers import (
    GateCheckRequestSerializer,
    GateCheckSerializer,
    GateDecisionSerializer,
    GatePolicySerializer,
    GateQuerySerializer,
)
from apps.gating.filters import GateCheckFilter, GateDecisionFilter, GatePolicyFilter
from apps.gating.models import DecisionSource, GateCheck, GateDecision, GatePolicy
from apps.gating.scope import UnknownComponent


class CanAskGate(permissions.BasePermission):
    message = gettext_lazy(
        "Asking the gate needs the gating.view_gatedecision permission (any role)."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm("gating.view_gatedecision"))


class CanRunChecks(permissions.BasePermission):
    message = gettext_lazy(
        "A gate check runs probes: it needs runs.run_probe (operator or admin role)."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.has_perm("runs.run_probe"))


def _token(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


def unknown_component(exc: UnknownComponent) -> ValidationError:
    return ValidationError(
        {
            "component": [
                gettext(
                    "No gate policy rule or binding event trigger names the component '%(name)s'."
                )
                % {"name": exc}
            ]
        }
    )


class GateView(APIView):
    """May a change go to this cluster now? allow, deny or unknown, with the reasons.
    Every answer is recorded (GET /api/v1/gate/decisions)."""

    permission_classes = [permissions.IsAuthenticated, CanAskGate]

    @extend_schema(
        parameters=[
            OpenApiParameter("cluster", str, required=True),
            OpenApiParameter("component", str, required=False),
        ],
        responses={200: GateDecisionSerializer},
    )
    def get(self, request: Request) -> Response:
        query = GateQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            decision = services.gate_decide(
                cluster=query.validated_data["cluster"],
                component=query.validated_data.get("component", ""),
                source=DecisionSource.API,
                user=request.user,
                token=_token(request),
            )
        except UnknownComponent as exc:
            raise unknown_component(exc) from exc
        return Response(GateDecisionSerializer(decision).data)


class GateCheckViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Run the gate's cases on a cluster now. With `wait`, the answer comes when they
    finish or at the timeout (200); without, 202 and the check's URL to poll."""

    queryset = GateCheck.objects.select_related("cluster", "case_set")
    serializer_class = GateCheckSerializer
    filterset_class = GateCheckFilter
    ordering_fields = ["created_at"]

    def get_permissions(self) -> Any:
        if self.action == "create":
            return [permissions.IsAuthenticated(), CanRunChecks()]
        return super().get_permissions()

    def get_serializer_class(self) -> Any:
        return GateCheckRequestSerializer if self.action == "create" else GateCheckSerializer

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        check = services.gate_check_refresh(check_id=self.get_object().pk)
        return Response(GateCheckSerializer(check).data)

    @extend_schema(
        request=GateCheckRequestSerializer,
        responses={200: GateCheckSerializer, 202: GateCheckSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = GateCheckRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            check = services.gate_check_start(
                cluster=data["cluster"],
                component=data.get("component", ""),
                case_set=data.get("case_set"),
                timeout_seconds=data["timeout"],
                user=request.user,
                token=_token(request),
            )
        except UnknownComponent as exc:
            raise unknown_component(exc) from exc
        if data["wait"]:
            check = services.gate_check_wait(check_id=check.pk)
            return Response(GateCheckSerializer(check).data)
        check = services.gate_check_refresh(check_id=check.pk)
        location = reverse("gatecheck-detail", kwargs={"pk": check.pk})
        answer = status.HTTP_200_OK if check.verdict else status.HTTP_202_ACCEPTED
        return Response(
            GateCheckSerializer(check).data, status=answer, headers={"Location": location}
        )


class GatePolicyViewSet(AtomicWritesMixin, viewsets.ModelViewSet):
    """Gate policies by name: which case sets gate which components for a cluster group,
    the maximum age of a result, whether open incidents and alerts deny."""

    queryset = GatePolicy.objects.select_related("group").prefetch_related("rules__case_set")
    serializer_class = GatePolicySerializer
    lookup_field = "name"
    filterset_class = GatePolicyFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "priority", "created_at"]


class GateDecisionViewSet(viewsets.ReadOnlyModelViewSet):
    """Every answer the gate gave, newest first: verdict, reasons, inputs and who asked."""

    queryset = GateDecision.objects.select_related("cluster")
    serializer_class = GateDecisionSerializer
    filterset_class = GateDecisionFilter
    ordering_fields = ["created_at"]
