from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.clusters.models import API_CHECK_FIELDS, BREAKER_FIELDS, Cluster, ClusterGroup
from apps.core.api import ModelCleanMixin, names_field
from apps.core.validators import validate_labels

LabelsField = extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})


@LabelsField
class LabelsJSONField(serializers.JSONField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [validate_labels])
        super().__init__(**kwargs)


class ClusterSerializer(ModelCleanMixin, serializers.ModelSerializer):
    kubeconfig = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        style={"base_template": "textarea.html"},
        help_text=_("Write-only. Omit to keep the stored kubeconfig; empty string clears it."),
    )
    labels = LabelsJSONField(required=False)
    has_kubeconfig = serializers.BooleanField(read_only=True)

    class Meta:
        model = Cluster
        fields = [
            "name",
            "display_name",
            "description",
            "labels",
            "region",
            "environment",
            "executor",
            "kubeconfig",
            "has_kubeconfig",
            "kubeconfig_fingerprint",
            "context",
            "namespace",
            "api_qps",
            "api_timeout_seconds",
            "watch_namespaces",
            "enabled",
            *API_CHECK_FIELDS,
            *BREAKER_FIELDS,
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "kubeconfig_fingerprint",
            *API_CHECK_FIELDS,
            *BREAKER_FIELDS,
            "created_at",
            "updated_at",
        ]


class ClusterGroupSerializer(ModelCleanMixin, serializers.ModelSerializer):
    members = names_field(Cluster.objects.all(), help_text=_("Explicit member cluster names."))
    selector = LabelsJSONField(
        required=False, help_text=_("Clusters whose labels match all pairs.")
    )

    class Meta:
        model = ClusterGroup
        fields = ["name", "description", "members", "selector", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
