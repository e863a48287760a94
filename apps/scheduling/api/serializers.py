from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.models import Case, CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.api import ModelCleanMixin, names_field
from apps.scheduling.models import Binding, validate_event_triggers


class EventTriggerSerializer(serializers.Serializer):
    kind = serializers.CharField()
    component = serializers.CharField(required=False, allow_blank=True)


@extend_schema_field(EventTriggerSerializer(many=True))
class EventTriggersField(serializers.JSONField):
    """Checked by the model's validator, which names the bad item."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [validate_event_triggers])
        super().__init__(**kwargs)


class BindingSerializer(ModelCleanMixin, serializers.ModelSerializer):
    clusters = names_field(Cluster.objects.all())
    groups = names_field(ClusterGroup.objects.all())
    cases = names_field(Case.objects.all())
    case_sets = names_field(CaseSet.objects.all())
    event_triggers = EventTriggersField(required=False)
    schedule = serializers.CharField(source="schedule_display", read_only=True)

    class Meta:
        model = Binding
        fields = [
            "name",
            "description",
            "clusters",
            "groups",
            "cases",
            "case_sets",
            "interval_seconds",
            "cron",
            "event_triggers",
            "enabled",
            "schedule",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)

        def current(field: str) -> list[Any]:
            if field in attrs:
                return list(attrs[field])
            return list(getattr(self.instance, field).all()) if self.instance else []

        if not (current("clusters") or current("groups")):
            raise serializers.ValidationError({"clusters": "Name at least one cluster or group."})
        if not (current("cases") or current("case_sets")):
            raise serializers.ValidationError({"cases": "Name at least one case or case set."})
        return attrs
