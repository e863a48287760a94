from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet

from apps.core.admin_utils import enable_actions
from apps.scheduling.models import Binding
from apps.scheduling.services import bindings_set_enabled


class BindingAdminForm(forms.ModelForm):
    class Meta:
        model = Binding
        fields = [
            "name",
            "description",
            "enabled",
            "clusters",
            "groups",
            "cases",
            "case_sets",
            "interval_seconds",
            "cron",
            "event_triggers",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("clusters") or data.get("groups")):
            self.add_error("clusters", "Name at least one cluster or group.")
        if not (data.get("cases") or data.get("case_sets")):
            self.add_error("cases", "Name at least one case or case set.")
        return data


def _set_enabled(queryset: QuerySet[Binding], value: bool) -> int:
    return bindings_set_enabled(binding_ids=queryset.values_list("pk", flat=True), enabled=value)


@admin.register(Binding)
class BindingAdmin(admin.ModelAdmin):
    form = BindingAdminForm
    list_display = ["name", "enabled", "schedule_display", "event_trigger_summary", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["clusters", "groups", "cases", "case_sets"]
    readonly_fields = ["periodic_task", "created_at", "updated_at"]
    actions = list(enable_actions("bindings", _set_enabled))
    list_per_page = 100
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled"]}),
        ("Targets", {"fields": ["clusters", "groups"]}),
        ("Subjects", {"fields": ["cases", "case_sets"]}),
        ("Triggers", {"fields": ["interval_seconds", "cron", "event_triggers", "periodic_task"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="schedule")
    def schedule_display(self, obj: Binding) -> str:
        return obj.schedule_display

    @admin.display(description="events")
    def event_trigger_summary(self, obj: Binding) -> str:
        parts = [
            f"{t['kind']}:{t['component']}" if t.get("component") else t["kind"]
            for t in obj.event_triggers
        ]
        return ", ".join(parts) or "—"
