from __future__ import annotations

from rest_framework import serializers

from apps.core.api import SaidTextField
from apps.diagnosis.inputs import NOTE_MAX
from apps.diagnosis.models import Incident, IncidentEvent, IncidentMember, RunDiagnosis
from apps.runs.models import RootCause


class RunDiagnosisSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id", read_only=True)
    rule: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    labelled_by: serializers.StringRelatedField = serializers.StringRelatedField(read_only=True)
    summary = SaidTextField(known=True)

    class Meta:
        model = RunDiagnosis
        fields = [
            "run",
            "category",
            "component",
            "confidence",
            "source",
            "rule",
            "summary",
            "evidence",
            "learned_category",
            "learned_confidence",
            "labelled_category",
            "labelled_by",
            "labelled_at",
            "created_at",
        ]
        read_only_fields = fields


class IncidentMemberSerializer(serializers.ModelSerializer):
    alert = serializers.IntegerField(source="alert_id", read_only=True)
    case = serializers.CharField(source="alert.case.name", read_only=True)
    cluster = serializers.CharField(source="alert.cluster.name", read_only=True)
    alert_state = serializers.CharField(source="alert.state", read_only=True)
    run = serializers.IntegerField(source="run_id", read_only=True, allow_null=True)

    class Meta:
        model = IncidentMember
        fields = ["alert", "case", "cluster", "alert_state", "run", "joined_at", "left_at"]
        read_only_fields = fields


class IncidentEventSerializer(serializers.ModelSerializer):
    user: serializers.StringRelatedField = serializers.StringRelatedField(read_only=True)
    text = SaidTextField()

    class Meta:
        model = IncidentEvent
        fields = ["kind", "text", "user", "at"]
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):
    case: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    cluster: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    members = IncidentMemberSerializer(many=True, read_only=True)
    timeline = IncidentEventSerializer(many=True, read_only=True)
    labelled_by: serializers.StringRelatedField = serializers.StringRelatedField(read_only=True)
    title = SaidTextField()
    summary = SaidTextField(known=True)

    class Meta:
        model = Incident
        fields = [
            "id",
            "scope",
            "state",
            "title",
            "case",
            "cluster",
            "category",
            "component",
            "confidence",
            "source",
            "summary",
            "opened_at",
            "updated_at",
            "resolved_at",
            "labelled_by",
            "labelled_at",
            "members",
            "timeline",
        ]
        read_only_fields = fields


class LabelSerializer(serializers.Serializer):
    """An operator's verdict: the root cause's category (and a note, for incidents)."""

    category = serializers.ChoiceField(choices=RootCause.choices)
    note = serializers.CharField(max_length=NOTE_MAX, required=False, allow_blank=True)
