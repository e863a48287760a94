from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.catalog.models import CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.api import SaidItemsField
from apps.core.said import render_items
from apps.gating import inputs
from apps.gating.models import GateCheck, GateDecision, GatePolicy, GateRule
from apps.runs.models import ProbeRun


def _named(queryset: Any, what: str, **kwargs: Any) -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="name",
        queryset=queryset,
        error_messages={
            "does_not_exist": f"No {what} named '{{value}}'.",
            "invalid": f"Give the {what}'s name.",
        },
        **kwargs,
    )


def component_field(**kwargs: Any) -> serializers.RegexField:
    return serializers.RegexField(
        inputs.COMPONENT_RE,
        max_length=63,
        required=False,
        allow_blank=True,
        error_messages={"invalid": inputs.COMPONENT_INVALID},
        **kwargs,
    )


class GateQuerySerializer(serializers.Serializer):
    """GET /api/v1/gate's query."""

    cluster = _named(Cluster.objects.all(), "cluster")
    component = component_field(help_text=_("e.g. etcd; empty: every gating case of the cluster."))


class GateDecisionSerializer(serializers.ModelSerializer):
    cluster: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    policy = serializers.CharField(source="policy_name", read_only=True)
    cases = serializers.SerializerMethodField()
    check: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        source="gate_check", read_only=True
    )
    decided_at = serializers.DateTimeField(source="created_at", read_only=True)
    reasons = SaidItemsField(read_only=True)

    class Meta:
        model = GateDecision
        fields = [
            "id",
            "verdict",
            "reasons",
            "cluster",
            "component",
            "policy",
            "cases",
            "source",
            "asked_by",
            "check",
            "decided_at",
        ]
        read_only_fields = fields

    def get_cases(self, decision: GateDecision) -> list[dict[str, Any]]:
        return list((decision.inputs or {}).get("cases", []))


class GateCheckRequestSerializer(serializers.Serializer):
    cluster = _named(Cluster.objects.all(), "cluster")
    component = component_field()
    case_set = _named(
        CaseSet.objects.all(),
        "case set",
        required=False,
        allow_null=True,
        help_text=_("Run this case set instead of the policy's cases."),
    )
    wait = serializers.BooleanField(
        default=False, help_text=_("Answer when the runs finish (or at the timeout).")
    )
    timeout = serializers.IntegerField(
        default=inputs.CHECK_TIMEOUT_DEFAULT_SECONDS,
        validators=inputs.check_timeout_validators(),
        help_text=_("Seconds; the check is decided at the latest then."),
    )

    def validate_cluster(self, cluster: Cluster) -> Cluster:
        if not cluster.enabled:
            raise serializers.ValidationError(
                gettext("Cluster '%(name)s' is disabled.") % {"name": cluster.name}
            )
        return cluster

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("component") and attrs.get("case_set"):
            raise serializers.ValidationError(
                {"case_set": gettext("Give a component or a case set, not both.")}
            )
        return attrs


class GateCheckSerializer(serializers.ModelSerializer):
    cluster: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    case_set: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    runs = serializers.SerializerMethodField()
    decision = serializers.SerializerMethodField()
    reasons = serializers.SerializerMethodField()

    class Meta:
        model = GateCheck
        fields = [
            "id",
            "cluster",
            "component",
            "case_set",
            "state",
            "verdict",
            "reasons",
            "runs",
            "timeout_seconds",
            "deadline",
            "event",
            "created_at",
            "finished_at",
            "decision",
        ]
        read_only_fields = fields

    def _decision(self, check: GateCheck) -> GateDecision | None:
        if not hasattr(check, "_decision"):
            check._decision = check.decisions.order_by("-created_at").first()  # type: ignore[attr-defined]
        return check._decision  # type: ignore[attr-defined,no-any-return]

    def get_runs(self, check: GateCheck) -> list[dict[str, Any]]:
        rows = ProbeRun.objects.filter(pk__in=check.run_ids).values("id", "case__name", "state")
        return [{"id": r["id"], "case": r["case__name"], "state": r["state"]} for r in rows]

    def get_decision(self, check: GateCheck) -> int | None:
        decision = self._decision(check)
        return decision.pk if decision else None

    def get_reasons(self, check: GateCheck) -> list[dict[str, Any]]:
        decision = self._decision(check)
        return render_items(decision.reasons) if decision else []


class GateRuleSerializer(serializers.ModelSerializer):
    case_set = _named(CaseSet.objects.all(), "case set")

    class Meta:
        model = GateRule
        fields = ["component", "case_set"]


class GatePolicySerializer(serializers.ModelSerializer):
    group = _named(ClusterGroup.objects.all(), "cluster group", required=False, allow_null=True)
    rules = GateRuleSerializer(
        many=True, required=False, help_text=_("Which case sets gate which components.")
    )

    class Meta:
        model = GatePolicy
        fields = [
            "name",
            "description",
            "group",
            "priority",
            "max_result_age_seconds",
            "incident_denies",
            "alert_denies",
            "silenced_denies",
            "enabled",
            "rules",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen = set()
        for index, rule in enumerate(rules):
            key = (rule.get("component", ""), rule["case_set"].pk)
            if key in seen:
                raise serializers.ValidationError(
                    gettext("Rule %(n)d repeats component '%(component)s' with case set '%(set)s'.")
                    % {"n": index + 1, "component": key[0], "set": rule["case_set"].name}
                )
            seen.add(key)
        return rules

    @transaction.atomic
    def create(self, validated_data: dict[str, Any]) -> GatePolicy:
        rules = validated_data.pop("rules", [])
        policy = GatePolicy.objects.create(**validated_data)
        GateRule.objects.bulk_create([GateRule(policy=policy, **rule) for rule in rules])
        return policy

    @transaction.atomic
    def update(self, instance: GatePolicy, validated_data: dict[str, Any]) -> GatePolicy:
        rules = validated_data.pop("rules", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        instance.save()
        if rules is not None:
            instance.rules.all().delete()
            GateRule.objects.bulk_create([GateRule(policy=instance, **rule) for rule in rules])
        return instance
