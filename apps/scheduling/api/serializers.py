from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.models import Case, CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.api import ModelCleanMixin, names_field
from apps.scheduling.models import (
    EVENT_WORD_RE,
    Binding,
    Event,
    binding_scope_errors,
    validate_event_triggers,
)


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
    skipped_count = serializers.IntegerField(
        read_only=True, help_text=_("Runs skipped because the previous one was still active.")
    )

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
            "upgrade_silence_minutes",
            "enabled",
            "schedule",
            "skipped_count",
            "last_fired_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["last_fired_at", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)

        def current(field: str) -> list[Any]:
            if field in attrs:
                return list(attrs[field])
            return list(getattr(self.instance, field).all()) if self.instance else []

        scope = {f: current(f) for f in ("clusters", "groups", "cases", "case_sets")}
        errors = binding_scope_errors(**scope)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class EventSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    kind = serializers.RegexField(
        EVENT_WORD_RE,
        max_length=63,
        help_text=_("component_release, cluster_change, upgrade, or your own lowercase word."),
        error_messages={
            "invalid": "Must be a lowercase word (a-z, 0-9, _ . -), e.g. component_release."
        },
    )
    component = serializers.RegexField(
        EVENT_WORD_RE,
        max_length=63,
        required=False,
        allow_blank=True,
        error_messages={"invalid": "Must be a lowercase word (a-z, 0-9, _ . -), e.g. etcd."},
    )
    detail = serializers.DictField(
        required=False, help_text=_("Free detail: version, change id, author…")
    )
    runs = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = [
            "id",
            "cluster",
            "kind",
            "component",
            "detail",
            "source",
            "created_at",
            "runs_created",
            "runs",
        ]
        read_only_fields = ["id", "source", "created_at", "runs_created", "runs"]

    def get_runs(self, event: Event) -> list[int]:
        return getattr(event, "created_run_ids", [])

    def validate_cluster(self, cluster: Cluster) -> Cluster:
        if not cluster.enabled:
            raise serializers.ValidationError(
                _("Cluster '%(name)s' is disabled.") % {"name": cluster.name}
            )
        return cluster
