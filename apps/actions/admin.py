"""Admin: action policies, and the actions taken (approve or reject disruptive ones)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.actions import services
from apps.actions.models import ActionPolicy, ActionRun
from apps.core.admin_utils import WriteOnlyTextarea, pretty_json


class ActionPolicyForm(forms.ModelForm):
    class Meta:
        model = ActionPolicy
        fields = [
            "name",
            "description",
            "enabled",
            "order",
            "category",
            "severity",
            "notify_channels",
            "escalate_channels",
            "action",
            "webhook_url",
            "webhook_secret",
            "job_template",
            "job_namespace",
            "disruptive",
            "dry_run",
            "rate_limit_count",
            "rate_limit_minutes",
        ]
        widgets = {"webhook_secret": WriteOnlyTextarea(attrs={"rows": 1})}

    def clean_webhook_secret(self) -> str:
        # Write-only: an empty field keeps the stored secret.
        value = self.cleaned_data.get("webhook_secret") or ""
        return value or (self.instance.webhook_secret if self.instance.pk else "")


@admin.register(ActionPolicy)
class ActionPolicyAdmin(admin.ModelAdmin):
    form = ActionPolicyForm
    list_display = [
        "name",
        "category",
        "severity",
        "action",
        "disruptive",
        "dry_run",
        "rate_limit_count",
        "rate_limit_minutes",
        "enabled",
    ]
    list_filter = ["enabled", "action", "category", "severity", "disruptive", "dry_run"]
    search_fields = ["name", "description"]
    filter_horizontal = ["notify_channels", "escalate_channels"]


@admin.action(description=_("Approve selected disruptive actions"), permissions=["change"])
def approve(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    done = sum(services.action_approve(action_id=a.pk, user=request.user) for a in queryset)
    text = ngettext("Approved %(n)d action.", "Approved %(n)d actions.", done) % {"n": done}
    modeladmin.message_user(request, text, messages.SUCCESS)


@admin.action(description=_("Reject selected disruptive actions"), permissions=["change"])
def reject(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    done = sum(services.action_reject(action_id=a.pk, user=request.user) for a in queryset)
    text = ngettext("Rejected %(n)d action.", "Rejected %(n)d actions.", done) % {"n": done}
    modeladmin.message_user(request, text, messages.SUCCESS)


@admin.register(ActionRun)
class ActionRunAdmin(admin.ModelAdmin):
    list_display = ["created_at", "policy", "incident", "cluster", "kind", "state", "outcome"]
    list_filter = ["state", "kind", "created_at"]
    list_select_related = ["policy", "incident", "cluster"]
    search_fields = ["cluster__name", "policy__name", "incident__title"]
    show_full_result_count = False
    actions = [approve, reject]
    readonly_fields = [
        "policy",
        "incident",
        "cluster",
        "severity",
        "kind",
        "state",
        "request_shown",
        "outcome",
        "approved_by",
        "announced_at",
        "created_at",
        "finished_at",
    ]
    exclude = ["request"]

    @admin.display(description=_("request"))
    def request_shown(self, action: ActionRun) -> str:
        return pretty_json(action.request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
