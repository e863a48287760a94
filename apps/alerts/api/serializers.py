from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.alerts import inputs
from apps.alerts.models import (
    DEFAULT_RULE,
    MATCHER_NAMES,
    Alert,
    AlertRule,
    AlertTimeline,
    Channel,
    Severity,
    Silence,
)
from apps.alerts.transports import base as transports
from apps.catalog.models import Case
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.api import ModelCleanMixin, SaidTextField, names_field
from apps.scheduling.models import Binding

MATCHERS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": list(MATCHER_NAMES)},
            "value": {"type": "string", "description": "A name, or key=value for label."},
        },
        "required": ["name", "value"],
    },
}


@extend_schema_field(MATCHERS_SCHEMA)
class MatchersField(serializers.JSONField):
    """Checked by the model's clean() (silences) or channel_save (channels), which name
    the bad matcher."""


def name_of(queryset: Any, **kwargs: Any) -> serializers.SlugRelatedField:
    """A single relation written and read by name; null clears it."""
    return serializers.SlugRelatedField(
        slug_field="name", queryset=queryset, required=False, allow_null=True, **kwargs
    )


# ------------------------------------------------------------------ alerts


class AlertTimelineSerializer(serializers.ModelSerializer):
    user: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    text = SaidTextField()

    class Meta:
        model = AlertTimeline
        fields = ["kind", "text", "user", "at"]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    case: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    cluster: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    rule: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    last_run: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text=_("Id of the run that last changed what the alert says."),
    )
    last_run_url = serializers.SerializerMethodField()
    latest_run: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text=_("Id of the newest finished run of the pair, whatever the state."),
    )
    flapping = serializers.SerializerMethodField()
    ack_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    timeline = AlertTimelineSerializer(
        many=True, read_only=True, required=False, help_text=_("Only with ?expand=timeline.")
    )
    reason = SaidTextField(help_text=_("Which condition fired."))
    incident_title = SaidTextField()
    root_cause_summary = SaidTextField(known=True, help_text=_("The diagnosis in one sentence."))

    class Meta:
        model = Alert
        fields = [
            "id",
            "case",
            "cluster",
            "state",
            "severity",
            "rule",
            "reason",
            "step",
            "error",
            "root_cause",
            "root_cause_component",
            "root_cause_confidence",
            "root_cause_source",
            "root_cause_summary",
            "incident_title",
            "last_run",
            "last_run_url",
            "firing_since",
            "latest_run",
            "latest_state",
            "latest_duration_ms",
            "last_finished_at",
            "changed_at",
            "escalated",
            "flapping",
            "flapping_since",
            "suppressed_by",
            "ack_note",
            "ack_by",
            "ack_until",
            "timeline",
        ]
        read_only_fields = fields

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.context.get("expand_timeline"):
            self.fields.pop("timeline")

    def get_last_run_url(self, alert: Alert) -> str | None:
        if not alert.last_run_id:
            return None
        path = reverse("proberun-detail", kwargs={"pk": alert.last_run_id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_flapping(self, alert: Alert) -> bool:
        return alert.flapping_since is not None


class AcknowledgeSerializer(serializers.Serializer):
    """Limits and messages from apps/alerts/inputs.py, as the dashboard and admin forms."""

    note = serializers.CharField(
        required=False, allow_blank=True, validators=inputs.note_validators()
    )
    until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        validators=[inputs.validate_quiet_until],
        help_text=f"The acknowledgement expires then (at most {inputs.HOURS_MAX} hours ahead).",
    )
    hours = serializers.FloatField(
        required=False,
        allow_null=True,
        validators=inputs.hours_validators(),
        help_text="Or: it expires after this many hours "
        f"({inputs.HOURS_MIN:g}–{inputs.HOURS_MAX}). Neither: until the alert resolves.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        hours = attrs.pop("hours", None)
        if hours is not None and attrs.get("until") is not None:
            raise serializers.ValidationError({"hours": gettext("Give until or hours, not both.")})
        if hours is not None:
            attrs["until"] = timezone.now() + timedelta(hours=hours)
        return attrs


class ResolveSerializer(serializers.Serializer):
    note = serializers.CharField(
        required=False, allow_blank=True, validators=inputs.note_validators()
    )


# ------------------------------------------------------------------ silences


class SilenceSerializer(ModelCleanMixin, serializers.ModelSerializer):
    matchers = MatchersField(
        help_text="All must match: names " + ", ".join(MATCHER_NAMES) + "; label is key=value."
    )
    created_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = Silence
        fields = [
            "id",
            "matchers",
            "starts_at",
            "ends_at",
            "comment",
            "active",
            "created_by",
            "event",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["event", "created_at", "updated_at"]


# ------------------------------------------------------------------ rules


class AlertRuleSerializer(ModelCleanMixin, serializers.ModelSerializer):
    binding = name_of(Binding.objects.all())
    case = name_of(Case.objects.all())
    cluster = name_of(Cluster.objects.all())
    group = name_of(ClusterGroup.objects.all())
    depends_on = names_field(
        Case.objects.all(),
        help_text="Case names: while one of them fails on the same cluster, this rule's "
        "alerts are recorded but not notified.",
    )
    scope = serializers.CharField(read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "name",
            "description",
            "enabled",
            "scope",
            "binding",
            "case",
            "cluster",
            "group",
            "consecutive_failures",
            "success_rate_below",
            "window_runs",
            "window_minutes",
            "step_latency_ms",
            "step_name",
            "stale_factor",
            "resolve_after_successes",
            "severity",
            "escalate_to",
            "escalate_after_minutes",
            "flap_threshold",
            "depends_on",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_name(self, value: str) -> str:
        if self.instance is not None and self.instance.name == DEFAULT_RULE != value:
            raise serializers.ValidationError(gettext("The default rule keeps its name."))
        return value


# ------------------------------------------------------------------ channels


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": "The transport's settings (see /channels/kinds/). Shown with secrets "
        "as ••••; send a masked value back (or leave the field out) to keep it.",
    }
)
class ChannelConfigField(serializers.JSONField):
    def get_attribute(self, instance: Channel) -> Channel:  # type: ignore[override]
        return instance

    def to_representation(self, channel: Channel) -> dict[str, Any]:  # type: ignore[override]
        if not channel.config_json:
            return {}
        try:
            return transports.redact(json.loads(channel.config_json), channel.kind)
        except KeyError:  # a kind no longer installed: show nothing rather than secrets
            return {}


class ChannelSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(
        max_length=30, help_text=_("A transport kind; GET /api/v1/channels/kinds/ lists them.")
    )
    config = ChannelConfigField(required=False)
    severities = serializers.ListField(
        child=serializers.ChoiceField(choices=Severity.choices),
        required=False,
        help_text=_("Severities routed here; empty: all."),
    )
    matchers = MatchersField(required=False, help_text=_("Only alerts matching all; empty: all."))

    class Meta:
        model = Channel
        fields = [
            "name",
            "kind",
            "config",
            "enabled",
            "disabled_reason",
            "severities",
            "matchers",
            "send_resolved",
            "language",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["disabled_reason", "created_at", "updated_at"]

    def validate_name(self, value: str) -> str:
        if value == "kinds":  # /channels/kinds/ lists the transports
            raise serializers.ValidationError(gettext("'kinds' is reserved; choose another name."))
        return value


class ChannelFieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(
        choices=["url", "email", "choice", "string", "boolean", "integer", "number", "list", "map"]
    )
    # Declared fields are popped off the class, so these do not shadow Field's attributes.
    required = serializers.BooleanField()  # type: ignore[assignment]
    secret = serializers.BooleanField(help_text=_("Shown as •••• once stored."))
    help_text = serializers.CharField()  # type: ignore[assignment]
    default = serializers.JSONField(required=False)
    choices = serializers.ListField(child=serializers.CharField(), required=False)


class ChannelKindSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    fields = ChannelFieldSerializer(many=True)  # type: ignore[assignment]


class ChannelTestResultSerializer(serializers.Serializer):
    status = serializers.CharField(help_text=_("sent or failed"))
    error = serializers.CharField(allow_blank=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    notification = serializers.IntegerField(help_text=_("Id of the recorded notification."))
    channel_enabled = serializers.BooleanField(
        help_text=_("False when the receiver refused for good and the channel was disabled.")
    )
