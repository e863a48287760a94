"""Admin: gate policies (rules inline), decisions and checks (read-only records)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.core.admin_utils import pretty_json
from apps.core.said import render_items
from apps.gating.models import GateCheck, GateDecision, GatePolicy, GateRule


class GateRuleInline(admin.TabularInline):
    model = GateRule
    extra = 1
    autocomplete_fields = ["case_set"]


@admin.register(GatePolicy)
class GatePolicyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "group",
        "priority",
        "max_result_age_seconds",
        "incident_denies",
        "alert_denies",
        "silenced_denies",
        "enabled",
    ]
    list_filter = ["enabled", "incident_denies", "alert_denies", "silenced_denies"]
    list_select_related = ["group"]
    search_fields = ["name", "description", "rules__component"]
    autocomplete_fields = ["group"]
    inlines = [GateRuleInline]


class ReadOnlyRecordAdmin(admin.ModelAdmin):
    """Records of what happened: nobody adds or edits them by hand."""

    # Thousands of rows: no COUNT(*) of the unfiltered table, no per-row queries.
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GateDecision)
class GateDecisionAdmin(ReadOnlyRecordAdmin):
    list_display = [
        "created_at",
        "cluster",
        "component",
        "verdict",
        "policy_name",
        "source",
        "asked_by",
        "first_reason",
    ]
    list_filter = ["verdict", "source", "created_at", "policy_name"]
    list_select_related = ["cluster"]
    search_fields = ["cluster__name", "component", "asked_by"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "cluster",
        "component",
        "verdict",
        "policy_name",
        "source",
        "asked_by",
        "user",
        "token",
        "gate_check",
        "reasons_shown",
        "inputs_shown",
    ]

    fields = tuple(readonly_fields)

    @admin.display(description=_("first reason"))
    def first_reason(self, decision: GateDecision) -> str:
        reasons = render_items(decision.reasons)
        return str(reasons[0].get("message", ""))[:120] if reasons else ""

    @admin.display(description=_("reasons"))
    def reasons_shown(self, decision: GateDecision) -> str:
        return pretty_json(render_items(decision.reasons))

    @admin.display(description=_("inputs"))
    def inputs_shown(self, decision: GateDecision) -> str:
        return pretty_json(decision.inputs)


@admin.register(GateCheck)
class GateCheckAdmin(ReadOnlyRecordAdmin):
    list_display = ["id", "created_at", "cluster", "component", "case_set", "state", "verdict"]
    list_filter = ["state", "verdict", "created_at"]
    list_select_related = ["cluster", "case_set"]
    search_fields = ["cluster__name", "component"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "cluster",
        "component",
        "case_set",
        "run_ids",
        "timeout_seconds",
        "deadline",
        "state",
        "verdict",
        "user",
        "token",
        "event",
        "created_at",
        "finished_at",
    ]
