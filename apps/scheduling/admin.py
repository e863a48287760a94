from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.catalog.admin import CaseAdmin, CaseSetAdmin
from apps.catalog.models import Case, CaseSet
from apps.clusters.admin import ClusterAdmin
from apps.clusters.models import Cluster
from apps.core.admin_utils import enable_actions
from apps.runs.admin_actions import RunNowMixin, add_run_now, run_now_action
from apps.runs.services import CreateResult
from apps.scheduling.models import Binding, Event, binding_scope_errors
from apps.scheduling.services import binding_fire_now, bindings_set_enabled, runs_now


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
            "upgrade_silence_minutes",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = {f: data.get(f) for f in ("clusters", "groups", "cases", "case_sets")}
        for field, message in binding_scope_errors(**scope).items():
            self.add_error(field, message)
        return data


def _set_enabled(queryset: QuerySet[Binding], value: bool) -> int:
    return bindings_set_enabled(binding_ids=queryset.values_list("pk", flat=True), enabled=value)


def _fire_bindings(queryset: QuerySet[Binding], user_id: int | None) -> CreateResult:
    total = CreateResult()
    for binding in queryset:
        result = binding_fire_now(binding=binding, requested_by_id=user_id)
        total.created += result.created
        total.skipped += result.skipped
    return total


@admin.register(Binding)
class BindingAdmin(RunNowMixin, admin.ModelAdmin):
    form = BindingAdminForm
    list_display = [
        "name",
        "enabled",
        "schedule_display",
        "event_trigger_summary",
        "last_fired_at",
        "skipped_count",
        "updated_at",
    ]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["clusters", "groups", "cases", "case_sets"]
    readonly_fields = [
        "periodic_task",
        "last_fired_at",
        "skipped_count",
        "created_at",
        "updated_at",
    ]
    actions = [
        *enable_actions(_("bindings"), _set_enabled),
        run_now_action(_("bindings"), _fire_bindings),
    ]
    list_per_page = 100
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled"]}),
        (_("Targets"), {"fields": ["clusters", "groups"]}),
        (_("Subjects"), {"fields": ["cases", "case_sets"]}),
        (
            _("Triggers"),
            {
                "fields": [
                    "interval_seconds",
                    "cron",
                    "event_triggers",
                    "upgrade_silence_minutes",
                    "periodic_task",
                ]
            },
        ),
        (_("Activity"), {"fields": ["last_fired_at", "skipped_count"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description=_("schedule"))
    def schedule_display(self, obj: Binding) -> str:
        return obj.schedule_display

    @admin.display(description=_("events"))
    def event_trigger_summary(self, obj: Binding) -> str:
        parts = [
            f"{t['kind']}:{t['component']}" if t.get("component") else t["kind"]
            for t in obj.event_triggers
        ]
        return ", ".join(parts) or "—"


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events come from the API and `watch_clusters`; here they are read."""

    list_display = ["created_at", "cluster", "kind", "component", "source", "runs_created"]
    list_select_related = ["cluster"]
    list_filter = ["kind", "source"]
    search_fields = ["cluster__name", "kind", "component"]
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = [
        "cluster",
        "kind",
        "component",
        "detail",
        "source",
        "created_at",
        "runs_created",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


# "Run now" on clusters, cases and case sets runs what their enabled bindings
# would run, limited to the selection: scheduling's to say, so added here.
def _run_clusters(queryset: QuerySet[Cluster], user_id: int | None) -> CreateResult:
    return runs_now(clusters=queryset, requested_by_id=user_id)


def _run_cases(queryset: QuerySet[Case], user_id: int | None) -> CreateResult:
    return runs_now(cases=queryset, requested_by_id=user_id)


def _run_case_sets(queryset: QuerySet[CaseSet], user_id: int | None) -> CreateResult:
    cases = Case.objects.filter(case_sets__in=queryset).distinct()
    return runs_now(cases=cases, requested_by_id=user_id)


add_run_now(ClusterAdmin, run_now_action(_("clusters"), _run_clusters))
add_run_now(CaseAdmin, run_now_action(_("cases"), _run_cases))
add_run_now(CaseSetAdmin, run_now_action(_("case sets"), _run_case_sets))
