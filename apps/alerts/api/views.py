from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.alerts import channels, sending, services, silences
from apps.alerts.api.serializers import (
    AcknowledgeSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    AlertTimelineSerializer,
    ChannelKindSerializer,
    ChannelSerializer,
    ChannelTestResultSerializer,
    ResolveSerializer,
    SilenceSerializer,
)
from apps.alerts.filters import AlertFilter, AlertRuleFilter, ChannelFilter, SilenceFilter
from apps.alerts.models import Alert, AlertRule, AlertTimeline, Channel, Silence
from apps.core.api import Conflict, NamedModelViewSet
from apps.core.permissions import ChangePermissions

EXPANDABLE = ("timeline",)
EXPAND = OpenApiParameter(
    "expand",
    str,
    description="Comma-separated: `timeline` embeds each alert's timeline.",
    enum=EXPANDABLE,
)
CONFLICT = OpenApiResponse(description="The object's state refuses it; `detail` says why.")


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    """The alert of each (case, cluster), most recently changed first. Alerts come from
    runs; people acknowledge them (quiet until resolved or an expiry) or resolve them by
    hand, which needs alerts.change_alert (operator, admin)."""

    queryset = Alert.objects.select_related("case", "cluster", "rule", "ack_by")
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    search_fields = ["case__name", "cluster__name", "step", "error"]
    ordering_fields = ["changed_at", "firing_since", "severity", "state"]

    def _expand(self) -> set[str]:
        raw = self.request.query_params.get("expand", "") if self.request else ""
        wanted = {part.strip() for part in raw.split(",") if part.strip()}
        unknown = sorted(wanted - set(EXPANDABLE))
        if unknown:
            raise serializers.ValidationError(
                {
                    "expand": [
                        gettext("Unknown: %(unknown)s; use %(known)s.")
                        % {"unknown": ", ".join(unknown), "known": ", ".join(EXPANDABLE)}
                    ]
                }
            )
        return wanted

    def get_queryset(self) -> QuerySet[Alert]:
        queryset = super().get_queryset()
        if self.action in ("list", "retrieve") and "timeline" in self._expand():
            timeline = AlertTimeline.objects.select_related("user")
            queryset = queryset.prefetch_related(Prefetch("timeline", queryset=timeline))
        return queryset

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if self.action in ("list", "retrieve"):
            context["expand_timeline"] = "timeline" in self._expand()
        return context

    @extend_schema(parameters=[EXPAND])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[EXPAND])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(responses=AlertTimelineSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def timeline(self, request: Request, pk: str | None = None) -> Response:
        """Flips, notifications and human actions, oldest first."""
        alert = self.get_object()
        entries = AlertTimeline.objects.filter(alert=alert).select_related("user")
        page = self.paginate_queryset(entries)
        data = AlertTimelineSerializer(page, many=True).data
        return self.get_paginated_response(data)

    def _answer(self, alert_id: int) -> Response:
        alert = self.get_queryset().get(pk=alert_id)
        return Response(AlertSerializer(alert, context=self.get_serializer_context()).data)

    @extend_schema(request=AcknowledgeSerializer, responses={200: AlertSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Someone is on it: the alert stays quiet until it resolves or `until` (or
        `hours` from now) passes, then fires again."""
        alert = self.get_object()
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.alert_acknowledge(
                alert_id=alert.pk,
                user=request.user,
                note=body.validated_data.get("note", ""),
                until=body.validated_data.get("until"),
            )
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        return self._answer(alert.pk)

    @extend_schema(request=ResolveSerializer, responses={200: AlertSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Close the problem now; the next failing run opens it again if the rule says so."""
        alert = self.get_object()
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.alert_resolve_by_hand(
                alert_id=alert.pk, user=request.user, note=body.validated_data.get("note", "")
            )
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        return self._answer(alert.pk)


class SilenceViewSet(viewsets.ModelViewSet):
    """Maintenance windows: alerts matching every matcher are recorded, not notified."""

    queryset = Silence.objects.select_related("created_by")
    serializer_class = SilenceSerializer
    filterset_class = SilenceFilter
    search_fields = ["comment"]
    ordering_fields = ["starts_at", "ends_at", "created_at"]

    def perform_create(self, serializer: SilenceSerializer) -> None:  # type: ignore[override]
        data = serializer.validated_data
        serializer.instance = silences.silence_create(
            matchers=data["matchers"],
            starts_at=data.get("starts_at"),
            ends_at=data["ends_at"],
            comment=data.get("comment", ""),
            user=self.request.user,
        )

    def perform_update(self, serializer: SilenceSerializer) -> None:  # type: ignore[override]
        assert serializer.instance is not None
        serializer.instance = silences.silence_update(
            silence=serializer.instance, **serializer.validated_data
        )

    @extend_schema(request=None, responses={200: SilenceSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def expire(self, request: Request, pk: str | None = None) -> Response:
        """End the silence now (one not started yet never starts)."""
        silence = self.get_object()
        try:
            silence = silences.silence_expire(silence_id=silence.pk)
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        return Response(self.get_serializer(silence).data)


class AlertRuleViewSet(NamedModelViewSet):
    """When a (case, cluster) alerts. The most specific enabled rule wins: binding, case,
    cluster, group, then `default`, which can be edited but not deleted."""

    queryset = AlertRule.objects.select_related(
        "binding", "case", "cluster", "group"
    ).prefetch_related("depends_on")
    serializer_class = AlertRuleSerializer
    filterset_class = AlertRuleFilter
    ordering_fields = ["name", "severity", "created_at", "updated_at"]

    @extend_schema(responses={204: None, 409: CONFLICT})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: AlertRule) -> None:
        try:
            services.alert_rule_delete(rule=instance)
        except ValueError as exc:
            raise Conflict(str(exc)) from None


class ChannelViewSet(
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """Where notifications go. The config is validated by the channel's transport and
    stored encrypted; answers show it with secrets as ••••. Admins only (operators and
    viewers may read)."""

    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    lookup_field = "name"
    filterset_class = ChannelFilter
    search_fields = ["name"]
    ordering_fields = ["name", "kind", "created_at"]

    def _save(self, serializer: ChannelSerializer, channel: Channel | None) -> None:
        data = dict(serializer.validated_data)
        name = data.pop("name", channel.name if channel else "")
        kind = data.pop("kind", channel.kind if channel else "")
        config = data.pop("config", {})
        try:
            serializer.instance = channels.channel_save(
                name=name, kind=kind, config=config, channel=channel, **data
            )
        except channels.ChannelConfigError as exc:
            raise serializers.ValidationError(exc.detail) from None

    def perform_create(self, serializer: ChannelSerializer) -> None:  # type: ignore[override]
        self._save(serializer, None)

    def perform_update(self, serializer: ChannelSerializer) -> None:  # type: ignore[override]
        self._save(serializer, serializer.instance)

    @extend_schema(responses=ChannelKindSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def kinds(self, request: Request) -> Response:
        """Each channel kind and its config fields (required, secret), to render forms."""
        return Response(channels.channel_kinds())

    @extend_schema(request=None, responses=ChannelTestResultSerializer)
    @action(detail=True, methods=["post"], permission_classes=[ChangePermissions])
    def test(self, request: Request, name: str | None = None) -> Response:
        """Send a test notification now through the real transport, without retries; a
        permanent refusal disables the channel, as a real notification would."""
        channel = self.get_object()
        notification = sending.channel_send_test(channel_id=channel.pk)
        enabled = Channel.objects.filter(pk=channel.pk).values_list("enabled", flat=True).get()
        return Response(
            {
                "status": notification.status,
                "error": notification.error,
                "duration_ms": notification.duration_ms,
                "notification": notification.pk,
                "channel_enabled": enabled,
            }
        )
