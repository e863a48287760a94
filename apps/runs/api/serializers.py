from rest_framework import serializers

from apps.runs.models import ProbeRun


class StepSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    duration_ms = serializers.IntegerField(min_value=0)
    error = serializers.CharField(allow_blank=True, required=False)


class ProbeRunSerializer(serializers.ModelSerializer):
    case: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    cluster: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    binding: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
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
