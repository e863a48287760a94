from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.catalog.models import Case, CaseSet, CaseSetMembership, CaseTemplate, RenderConfig
from apps.core.admin_utils import OptionalJSONField, enable_actions, pretty_json


@admin.register(CaseTemplate)
class CaseTemplateAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "image",
        "report_protocol",
        "timeout_seconds",
        "owner",
        "updated_at",
    ]
    list_filter = ["kind", "report_protocol"]
    search_fields = ["name", "image", "owner", "description"]
    list_per_page = 100
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "description", "owner"]}),
        (
            _("Container"),
            {
                "fields": [
                    "image",
                    "command",
                    "args",
                    "default_env",
                    "resources",
                    "service_account",
                    "timeout_seconds",
                ]
            },
        ),
        (_("Reporting"), {"fields": ["report_protocol"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]


class RenderConfigInline(admin.StackedInline):
    model = RenderConfig
    max_num = 1
    extra = 1
    fields = ["name", "env", "args", "resources"]
    verbose_name = "render config (渲染配置)"

    def formfield_for_dbfield(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        # Unset args/resources (the template's apply) show empty, not "null".
        if db_field.name in ("args", "resources"):
            kwargs["form_class"] = OptionalJSONField
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    inlines = [RenderConfigInline]
    list_display = [
        "name",
        "template",
        "template_kind",
        "render_config_name",
        "enabled",
        "updated_at",
    ]
    list_select_related = ["template", "render_config"]
    list_filter = ["enabled", "template__kind"]
    search_fields = ["name", "description", "template__name"]
    autocomplete_fields = ["template"]
    readonly_fields = ["effective_env_display", "created_at", "updated_at"]
    actions = [
        *enable_actions(_("cases")),
    ]
    list_per_page = 100

    @admin.display(description=_("kind"), ordering="template__kind")
    def template_kind(self, obj: Case) -> str:
        return obj.template.get_kind_display()

    @admin.display(description=_("render config"))
    def render_config_name(self, obj: Case) -> str:
        render = obj._render()
        return render.name if render else "—"

    @admin.display(description=_("effective env (template defaults + render config)"))
    def effective_env_display(self, obj: Case) -> str:
        return pretty_json(obj.effective_env) if obj.pk else "—"


@admin.register(RenderConfig)
class RenderConfigAdmin(admin.ModelAdmin):
    list_display = ["name", "case", "case_template", "updated_at"]
    list_select_related = ["case__template"]
    search_fields = ["name", "case__name"]
    autocomplete_fields = ["case"]

    @admin.display(description=_("template"), ordering="case__template__name")
    def case_template(self, obj: RenderConfig) -> str:
        return obj.case.template.name


class CaseSetMembershipInline(admin.TabularInline):
    model = CaseSetMembership
    autocomplete_fields = ["case"]
    extra = 1
    verbose_name = "case"
    verbose_name_plural = "cases"


@admin.register(CaseSet)
class CaseSetAdmin(admin.ModelAdmin):
    inlines = [CaseSetMembershipInline]
    list_display = ["name", "case_count", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CaseSet]:
        return super().get_queryset(request).annotate(_cases=Count("memberships"))

    @admin.display(description=_("cases"), ordering="_cases")
    def case_count(self, obj: CaseSet) -> int:
        return obj._cases  # type: ignore[attr-defined]
