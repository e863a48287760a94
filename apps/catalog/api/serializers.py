from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.models import Case, CaseSet, CaseTemplate, RenderConfig
from apps.catalog.services import case_set_render_config
from apps.core.api import names_field
from apps.core.validators import validate_env, validate_resources

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
RESOURCES = {
    "type": "object",
    "properties": {
        "requests": STRING_MAP,
        "limits": STRING_MAP,
    },
}


@extend_schema_field(STRING_MAP)
class EnvField(serializers.JSONField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [validate_env])
        super().__init__(**kwargs)


@extend_schema_field(RESOURCES)
class ResourcesField(serializers.JSONField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [validate_resources])
        super().__init__(**kwargs)


def string_list(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(allow_blank=True), **kwargs)


class CaseTemplateSerializer(serializers.ModelSerializer):
    command = string_list(required=False)
    args = string_list(required=False)
    default_env = EnvField(required=False)
    resources = ResourcesField(required=False)

    class Meta:
        model = CaseTemplate
        fields = [
            "name",
            "kind",
            "image",
            "command",
            "args",
            "default_env",
            "timeout_seconds",
            "resources",
            "service_account",
            "report_protocol",
            "description",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class RenderConfigSerializer(serializers.ModelSerializer):
    env = EnvField(required=False)
    args = string_list(
        required=False, allow_null=True, help_text=_("Replaces the template's args.")
    )
    resources = ResourcesField(
        required=False, allow_null=True, help_text=_("Replaces the template's resources.")
    )

    class Meta:
        model = RenderConfig
        fields = ["name", "env", "args", "resources"]


class CaseSerializer(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="name", queryset=CaseTemplate.objects.all())
    render_config = RenderConfigSerializer(required=False, allow_null=True)
    effective_env = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "name",
            "template",
            "description",
            "timeout_seconds",
            "enabled",
            "render_config",
            "effective_env",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_render_config(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # A PATCH is partial all the way down, but a new render config needs its name.
        has_one = (
            self.instance is not None and RenderConfig.objects.filter(case=self.instance).exists()
        )
        if value is not None and not has_one and not value.get("name"):
            raise serializers.ValidationError({"name": [_("This field is required.")]})
        return value

    @extend_schema_field(STRING_MAP)
    def get_effective_env(self, case: Case) -> dict[str, str]:
        return case.effective_env

    def create(self, validated_data: dict[str, Any]) -> Case:
        render = validated_data.pop("render_config", None)
        case = super().create(validated_data)
        if render is not None:
            case_set_render_config(case=case, render_config=render)
        return case

    def update(self, instance: Case, validated_data: dict[str, Any]) -> Case:
        has_render = "render_config" in validated_data
        render = validated_data.pop("render_config", None)
        case = super().update(instance, validated_data)
        if has_render:
            case_set_render_config(case=case, render_config=render)
        return case


class CaseSetSerializer(serializers.ModelSerializer):
    cases = names_field(Case.objects.all(), help_text=_("Case names."))

    class Meta:
        model = CaseSet
        fields = ["name", "description", "cases", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
