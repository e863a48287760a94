"""Admin: the rule tree (ordered, editable), diagnoses, incidents, classifier versions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.core.admin_utils import known_column, said_column
from apps.diagnosis import services
from apps.diagnosis.inputs import LabelForm
from apps.diagnosis.models import (
    ClassifierModel,
    DiagnosisRule,
    Incident,
    IncidentEvent,
    IncidentMember,
    RunDiagnosis,
)


@admin.register(DiagnosisRule)
class DiagnosisRuleAdmin(admin.ModelAdmin):
    list_display = ["order", "name", "category", "component", "confidence", "enabled", "shipped"]
    list_display_links = ["name"]
    list_editable = ["order", "enabled"]
    list_filter = ["category", "enabled", "shipped", "template_kind"]
    search_fields = ["name", "summary", "error_pattern", "step_pattern", "component"]
    ordering = ["order", "name"]


def _label_view(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any], apply: Any
) -> TemplateResponse | None:
    form = LabelForm(request.POST if "category" in request.POST else None)
    if form.is_valid():
        done = 0
        for obj in queryset:
            try:
                apply(obj, form.cleaned_data)
                done += 1
            except ValueError as exc:
                modeladmin.message_user(request, f"{obj}: {exc}", messages.ERROR)
        modeladmin.message_user(request, gettext("Labelled %(n)d.") % {"n": done}, messages.SUCCESS)
        return None
    return TemplateResponse(
        request,
        "admin/diagnosis/label.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": gettext("Confirm or correct the root cause"),
            "form": form,
            "objects": queryset,
            "action": request.POST.get("action", ""),
        },
    )


@admin.action(description=_("Confirm or correct the root cause"), permissions=["change"])
def label_runs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[RunDiagnosis]
) -> TemplateResponse | None:
    return _label_view(
        modeladmin,
        request,
        queryset,
        lambda d, data: services.run_label(
            run_id=d.run_id, category=data["category"], user=request.user
        ),
    )


@admin.action(description=_("Confirm or correct the root cause"), permissions=["change"])
def label_incidents(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Incident]
) -> TemplateResponse | None:
    return _label_view(
        modeladmin,
        request,
        queryset,
        lambda i, data: services.incident_label(
            incident_id=i.pk, category=data["category"], user=request.user, note=data["note"]
        ),
    )


@admin.register(RunDiagnosis)
class RunDiagnosisAdmin(admin.ModelAdmin):
    list_display = [
        "run",
        "category",
        "component",
        "confidence",
        "source",
        "rule",
        "labelled_category",
    ]
    list_filter = ["category", "source", "labelled_category"]
    search_fields = ["run__case__name", "run__cluster__name", "summary"]
    list_select_related = ["run", "rule"]
    readonly_fields = [
        *(f.name for f in RunDiagnosis._meta.fields if f.name != "summary"),
        known_column("summary", _("summary")),
    ]
    exclude = ["summary"]
    actions = [label_runs]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class MemberInline(admin.TabularInline):
    model = IncidentMember
    extra = 0
    readonly_fields = ["alert", "run", "joined_at", "left_at"]
    can_delete = False


EVENT_TEXT = said_column("text", _("text"))


class EventInline(admin.TabularInline):
    model = IncidentEvent
    extra = 0
    fields = ["at", "kind", EVENT_TEXT, "user"]
    readonly_fields = ["at", "kind", EVENT_TEXT, "user"]
    can_delete = False


TITLE = said_column("title", _("title"))


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["pk", TITLE, "state", "scope", "category", "source", "opened_at"]
    list_filter = ["state", "scope", "category", "source"]
    search_fields = ["title", "case__name", "cluster__name"]
    readonly_fields = [
        TITLE,
        *(f.name for f in Incident._meta.fields if f.name not in ("title", "summary")),
        known_column("summary", _("summary")),
    ]
    exclude = ["title", "summary"]
    inlines = [MemberInline, EventInline]
    actions = [label_incidents]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ClassifierModel)
class ClassifierModelAdmin(admin.ModelAdmin):
    list_display = ["version", "trained_at", "samples", "labels", "accuracy"]
    readonly_fields = ["version", "trained_at", "samples", "labels", "accuracy"]
    exclude = ["blob"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
