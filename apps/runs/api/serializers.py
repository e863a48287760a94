from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.catalog.models import Case, CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.api import SaidTextField
from apps.runs.models import ProbeRun


class StepSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    duration_ms = serializers.IntegerField(min_value=0)
    error = serializers.CharField(allow_blank=True, required=False)


class ProbeRunSerializer(serializers.ModelSerializer):
    reason = SaidTextField(help_text=_("Why the run ended in error or timed out."))
    case: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    cluster: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    binding: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    # Declared fields are popped off the class, so this does not shadow Serializer.errors.
    errors = serializers.ListField(child=serializers.CharField(), read_only=True)  # type: ignore[assignment]
    steps = StepSerializer(many=True, read_only=True)
    metrics = serializers.DictField(child=serializers.FloatField(), read_only=True)

    class Meta:
        model = ProbeRun
        fields = [
            "id",
            "case",
            "cluster",
            "binding",
            "trigger",
            "state",
            "executor",
            "pod_name",
            "created_at",
            "dispatched_at",
            "finished_at",
            "deadline",
            "duration_ms",
            "ok",
            "errors",
            "steps",
            "metrics",
            "reason",
        ]
        read_only_fields = fields


class ReportSerializer(serializers.Serializer):
    """The report body (documentation; the report view validates strictly itself)."""

    ok = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.CharField(), required=False)  # type: ignore[assignment]
    steps = StepSerializer(many=True, required=False)
    metrics = serializers.DictField(child=serializers.FloatField(), required=False)


class RunRequestSerializer(serializers.Serializer):
    """Run a case or a case set on a cluster or a group, now."""

    case = serializers.SlugRelatedField(
        slug_field="name", queryset=Case.objects.all(), required=False
    )
    case_set = serializers.SlugRelatedField(
        slug_field="name", queryset=CaseSet.objects.all(), required=False
    )
    cluster = serializers.SlugRelatedField(
        slug_field="name", queryset=Cluster.objects.all(), required=False
    )
    group = serializers.SlugRelatedField(
        slug_field="name", queryset=ClusterGroup.objects.all(), required=False
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("case")) == bool(attrs.get("case_set")):
            raise serializers.ValidationError({"case": _("Give exactly one of case or case_set.")})
        if bool(attrs.get("cluster")) == bool(attrs.get("group")):
            raise serializers.ValidationError(
                {"cluster": _("Give exactly one of cluster or group.")}
            )
        if attrs.get("cluster") is not None and not attrs["cluster"].enabled:
            raise serializers.ValidationError(
                {"cluster": _("Cluster '%(name)s' is disabled.") % {"name": attrs["cluster"].name}}
            )
        if attrs.get("case") is not None and not attrs["case"].enabled:
            raise serializers.ValidationError(
                {"case": _("Case '%(name)s' is disabled.") % {"name": attrs["case"].name}}
            )
        return attrs
