"""Admin for alert rules: scope, firing conditions, resolving and escalation."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.alerts import services
from apps.alerts.models import DEFAULT_RULE, AlertRule
from apps.core.admin_utils import enable_actions


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "scope_display", "conditions", "severity", "enabled"]
    list_filter = ["enabled", "severity"]
    search_fields = ["name", "description"]
    list_select_related = ["binding", "case", "cluster", "group"]
    autocomplete_fields = ["binding", "case", "cluster", "group", "depends_on"]
    actions = list(enable_actions("rules"))
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled", "severity"]}),
        (
            _("Applies to (one of them; none = the default rule)"),
            {"fields": ["binding", "case", "cluster", "group"]},
        ),
        (
            _("Fires on any of"),
            {
                "fields": [
                    "consecutive_failures",
                    ("success_rate_below", "window_runs", "window_minutes"),
                    ("step_latency_ms", "step_name"),
                    "stale_factor",
                ]
            },
        ),
        (
            _("Resolving, flapping, escalation, dependencies"),
            {
                "fields": [
                    "resolve_after_successes",
                    "flap_threshold",
                    ("escalate_to", "escalate_after_minutes"),
                    "depends_on",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.name == DEFAULT_RULE:
            return ["name"]
        return super().get_readonly_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.name == DEFAULT_RULE:
            return False  # services.alert_rule_delete refuses it too
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            try:
                services.alert_rule_delete(rule=rule)
            except ValueError as exc:
                self.message_user(request, f"{rule.name}: {exc}", messages.WARNING)

    @admin.display(description=_("applies to"))
    def scope_display(self, rule: AlertRule) -> str:
        for field in ("binding", "case", "cluster", "group"):
            target = getattr(rule, field)
            if target is not None:
                name = getattr(AlertRule._meta.get_field(field), "verbose_name", field)
                return f"{name} {target}"
        return gettext("default")

    @admin.display(description=_("fires on"))
    def conditions(self, rule: AlertRule) -> str:
        parts = []
        if rule.consecutive_failures:
            parts.append(gettext("%(n)s failures in a row") % {"n": rule.consecutive_failures})
        if rule.success_rate_below is not None:
            window = (
                gettext("%(n)s runs") % {"n": rule.window_runs}
                if rule.window_runs
                else gettext("%(n)s min") % {"n": rule.window_minutes}
            )
            parts.append(
                gettext("success < %(rate)s%% over %(window)s")
                % {"rate": f"{rule.success_rate_below:g}", "window": window}
            )
        if rule.step_latency_ms:
            step = rule.step_name or gettext("a step")
            parts.append(f"{step} > {rule.step_latency_ms} ms")
        if rule.stale_factor:
            parts.append(
                gettext("no result for %(factor)s× the schedule")
                % {"factor": f"{rule.stale_factor:g}"}
            )
        return "; ".join(parts)
