from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.catalog.api.serializers import EnvField, ResourcesField, string_list
from apps.catalog.models import Case
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.api import ModelCleanMixin, names_field
from apps.resident.models import (
    ResidentAlertRule,
    ResidentProbe,
    ResidentTarget,
    probe_scope_errors,
)


class ResidentTargetSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name")
    ready = serializers.CharField(
        read_only=True, help_text=_("The ProbeConfig's Ready condition in the cluster.")
    )

    class Meta:
        model = ResidentTarget
        fields = [
            "cluster",
            "state",
            "last_sample_at",
            "last_report_at",
            "samples_dropped",
            "ready",
            "applied_at",
            "apply_error",
            "config_status",
            "status_read_at",
        ]
        read_only_fields = fields


class ResidentProbeSerializer(ModelCleanMixin, serializers.ModelSerializer):
    case = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Case.objects.filter(resident_subject__isnull=True),
        required=False,
        allow_null=True,
    )
    clusters = names_field(Cluster.objects.all())
    groups = names_field(ClusterGroup.objects.all())
    command = string_list(required=False)
    args = string_list(required=False)
    env = EnvField(required=False)
    resources = ResourcesField(required=False)
    targets = ResidentTargetSerializer(many=True, read_only=True)
    token_set = serializers.SerializerMethodField(help_text=_("Whether a token was issued."))

    class Meta:
        model = ResidentProbe
        fields = [
            "name",
            "description",
            "case",
            "image",
            "command",
            "args",
            "env",
            "resources",
            "service_account",
            "clusters",
            "groups",
            "interval_ms",
            "sample_timeout_ms",
            "denoise_k",
            "denoise_n",
            "report_rate",
            "report_burst",
            "batch_window_ms",
            "enabled",
            "token_set",
            "token_rotated_at",
            "targets",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["token_rotated_at", "created_at", "updated_at"]

    def get_token_set(self, probe: ResidentProbe) -> bool:
        return bool(probe.token_hash)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)

        def current(name: str) -> list[Any]:
            if name in attrs:
                return list(attrs[name])
            return list(getattr(self.instance, name).all()) if self.instance else []

        errors = probe_scope_errors(clusters=current("clusters"), groups=current("groups"))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ResidentAlertRuleSerializer(ModelCleanMixin, serializers.ModelSerializer):
    probe = serializers.SlugRelatedField(
        slug_field="name",
        queryset=ResidentProbe.objects.all(),
        required=False,
        allow_null=True,
        help_text=_("Empty: every resident probe without a rule of its own."),
    )

    class Meta:
        model = ResidentAlertRule
        fields = [
            "name",
            "enabled",
            "probe",
            "availability_below",
            "latency_p99_above_ms",
            "window_minutes",
            "no_data_minutes",
            "severity",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class SeriesSerializer(serializers.Serializer):
    """Columns for charts (uPlot takes them as they are)."""

    probe = serializers.CharField()
    cluster = serializers.CharField(allow_null=True)
    step = serializers.IntegerField(help_text=_("Seconds per point."))
    source = serializers.CharField(help_text=_("rollup (per-minute rows) or raw (windows)."))  # type: ignore[assignment]
    t = serializers.ListField(
        child=serializers.IntegerField(), help_text=_("Bucket starts, unix s.")
    )
    availability = serializers.ListField(child=serializers.FloatField(allow_null=True))
    p50_ms = serializers.ListField(child=serializers.FloatField(allow_null=True))
    p99_ms = serializers.ListField(child=serializers.FloatField(allow_null=True))
    max_ms = serializers.ListField(child=serializers.FloatField(allow_null=True))
    count = serializers.ListField(child=serializers.IntegerField())
