from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from apps.alerts import delivery, services
from apps.alerts.models import (
    DEFAULT_RULE,
    PROBLEM_STATES,
    Alert,
    AlertFlip,
    AlertRule,
    AlertTimeline,
    Channel,
    Notification,
    Silence,
)
from apps.alerts.transports import base as transports
from apps.core.admin_utils import enable_actions, pretty_json


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
            "Applies to (one of them; none = the default rule)",
            {"fields": ["binding", "case", "cluster", "group"]},
        ),
        (
            "Fires on any of",
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
            "Resolving, flapping, escalation, dependencies",
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

    @admin.display(description="applies to")
    def scope_display(self, rule: AlertRule) -> str:
        return rule.scope

    @admin.display(description="fires on")
    def conditions(self, rule: AlertRule) -> str:
        parts = []
        if rule.consecutive_failures:
            parts.append(f"{rule.consecutive_failures} failures in a row")
        if rule.success_rate_below is not None:
            window = (
                f"{rule.window_runs} runs" if rule.window_runs else f"{rule.window_minutes} min"
            )
            parts.append(f"success < {rule.success_rate_below:g}% over {window}")
        if rule.step_latency_ms:
            parts.append(f"{rule.step_name or 'a step'} > {rule.step_latency_ms} ms")
        if rule.stale_factor:
            parts.append(f"no result for {rule.stale_factor:g}× the schedule")
        return "; ".join(parts)


class AcknowledgeForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    hours = forms.FloatField(
        required=False,
        min_value=0.1,
        max_value=24 * 30,
        initial=4,
        help_text="The acknowledgement expires after this many hours; empty: until it resolves.",
    )


class ResolveForm(forms.Form):
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


def _form_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Alert],
    *,
    form_class: type[forms.Form],
    action: str,
    intro: str,
    submit: str,
    apply: Any,
) -> TemplateResponse | None:
    """An action that asks for a note (and more) on an intermediate page, then applies."""
    alerts = list(queryset.select_related("case", "cluster")[:500])
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        done, refused = 0, []
        for alert in alerts:
            try:
                apply(alert, form.cleaned_data)
                done += 1
            except ValueError as exc:
                refused.append(f"{alert.case} on {alert.cluster}: {exc}")
        modeladmin.message_user(request, f"{submit}: {done} alert(s).", messages.SUCCESS)
        for reason in refused[:20]:
            modeladmin.message_user(request, reason, messages.WARNING)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": submit,
        "intro": intro,
        "alerts": alerts,
        "form": form,
        "action": action,
        "submit": submit,
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/alerts/action_form.html", context)


@admin.action(description="Acknowledge selected alerts…", permissions=["change"])
def acknowledge(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Alert]
) -> TemplateResponse | None:
    def apply(alert: Alert, data: dict[str, Any]) -> None:
        hours = data.get("hours")
        until = timezone.now() + timedelta(hours=hours) if hours else None
        services.alert_acknowledge(
            alert_id=alert.pk, user=request.user, note=data.get("note", ""), until=until
        )

    return _form_action(
        modeladmin,
        request,
        queryset,
        form_class=AcknowledgeForm,
        action="acknowledge",
        intro="Someone is on it: these alerts stay quiet until they resolve or the "
        "acknowledgement expires.",
        submit="Acknowledge",
        apply=apply,
    )


@admin.action(description="Resolve selected alerts by hand…", permissions=["change"])
def resolve(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Alert]
) -> TemplateResponse | None:
    def apply(alert: Alert, data: dict[str, Any]) -> None:
        services.alert_resolve_by_hand(alert_id=alert.pk, user=request.user, note=data["note"])

    return _form_action(
        modeladmin,
        request,
        queryset,
        form_class=ResolveForm,
        action="resolve",
        intro="Close these alerts now; the next failing run opens them again if the rule says so.",
        submit="Resolve",
        apply=apply,
    )


class TimelineInline(admin.TabularInline):
    model = AlertTimeline
    extra = 0
    can_delete = False
    fields = ["at", "kind", "text", "user"]
    readonly_fields = ["at", "kind", "text", "user"]
    ordering = ["-at", "-id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertTimeline]:
        return super().get_queryset(request).select_related("user")


class OpenFilter(admin.SimpleListFilter):
    title = "open"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Open (firing, acknowledged, silenced)"), ("no", "OK")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        if self.value() == "yes":
            return queryset.filter(state__in=PROBLEM_STATES)
        if self.value() == "no":
            return queryset.exclude(state__in=PROBLEM_STATES)
        return queryset


class _OpenAlertsByName(admin.SimpleListFilter):
    """Names that currently have open alerts, worst first: a short list even with
    thousands of clusters, and the ones on-call wants to narrow to."""

    field = ""
    limit = 50

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from django.db.models import Count

        rows = (
            Alert.objects.filter(state__in=PROBLEM_STATES)
            .values_list(f"{self.field}__name")
            .annotate(n=Count("id"))
            .order_by("-n", f"{self.field}__name")[: self.limit]
        )
        return [(name, f"{name} ({n})") for name, n in rows]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        if self.value():
            return queryset.filter(**{f"{self.field}__name": self.value()})
        return queryset


class ClusterFilter(_OpenAlertsByName):
    title = "cluster (with open alerts)"
    parameter_name = "cluster"
    field = "cluster"


class CaseFilter(_OpenAlertsByName):
    title = "case (with open alerts)"
    parameter_name = "case"
    field = "case"


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "case",
        "cluster",
        "state",
        "severity",
        "step",
        "short_error",
        "firing_since",
        "changed_at",
        "quiet",
    ]
    list_select_related = ["case", "cluster"]
    list_filter = [OpenFilter, "state", "severity", ClusterFilter, CaseFilter, "escalated"]
    search_fields = ["case__name", "cluster__name", "step", "error"]
    list_per_page = 100
    show_full_result_count = False
    ordering = ["-changed_at", "-id"]
    actions = [acknowledge, resolve]
    inlines = [TimelineInline]
    readonly_fields = [
        "case",
        "cluster",
        "state",
        "severity",
        "rule",
        "reason",
        "step",
        "error",
        "hint",
        "run_link",
        "firing_since",
        "last_finished_at",
        "changed_at",
        "escalated",
        "flapping_since",
        "suppressed_by",
        "ack_note",
        "ack_by",
        "ack_until",
    ]
    exclude = ["last_run"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # alerts come from runs, not from people

    @admin.display(description="error")
    def short_error(self, alert: Alert) -> str:
        return alert.error[:120]

    @admin.display(description="kept quiet by")
    def quiet(self, alert: Alert) -> str:
        if alert.flapping_since:
            return "flapping"
        if alert.suppressed_by:
            return f"dependency {alert.suppressed_by}"
        if alert.state == "acknowledged" and alert.ack_by_id:
            return "acknowledged"
        return ""

    @admin.display(description="last run")
    def run_link(self, alert: Alert) -> str:
        if not alert.last_run_id:
            return "-"
        return format_html(
            '<a href="{}">run {}</a>', delivery.run_url(alert.last_run_id), alert.last_run_id
        )


@admin.register(AlertFlip)
class AlertFlipAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "alert",
        "event",
        "old_state",
        "new_state",
        "severity",
        "notify",
        "processed_at",
    ]
    list_select_related = ["alert__case", "alert__cluster"]
    list_filter = ["event", "notify", "severity"]
    search_fields = ["alert__case__name", "alert__cluster__name"]
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SilenceForm(forms.ModelForm):
    class Meta:
        model = Silence
        fields = ["matchers", "starts_at", "ends_at", "comment"]


class ActiveFilter(admin.SimpleListFilter):
    title = "active"
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Active now"), ("future", "Not started"), ("past", "Ended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Silence]) -> QuerySet[Silence]:
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(starts_at__lte=now, ends_at__gt=now)
        if self.value() == "future":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "past":
            return queryset.filter(ends_at__lte=now)
        return queryset


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    form = SilenceForm
    list_display = ["__str__", "starts_at", "ends_at", "comment", "created_by", "event"]
    list_filter = [ActiveFilter]
    search_fields = ["comment"]
    list_select_related = ["created_by", "event"]
    show_full_result_count = False

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


class ChannelForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=())
    config = forms.JSONField(
        required=False,
        help_text="The transport's settings as JSON. Secrets show as •••• and are kept "
        "when left masked.",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "enabled", "severities", "matchers", "send_resolved"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = transports.choices()  # type: ignore[attr-defined]
        if self.instance.pk and self.instance.config_json:
            stored = json.loads(self.instance.config_json)
            self.initial["config"] = transports.redact(stored, self.instance.kind)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            services.channel_save(
                name=data["name"],
                kind=data["kind"],
                config=data.get("config") or {},
                channel=self.instance,
                commit=False,
                enabled=data.get("enabled", True),
                severities=data.get("severities") or [],
                matchers=data.get("matchers") or [],
                send_resolved=data.get("send_resolved", True),
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
            else:
                raise
        return data


@admin.action(description="Send a test notification", permissions=["change"])
def send_test(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Channel]
) -> None:
    for channel in queryset[:20]:
        notification = delivery.channel_send_test(channel_id=channel.pk)
        if notification.status == "sent":
            modeladmin.message_user(
                request, f"{channel.name}: sent in {notification.duration_ms} ms.", messages.SUCCESS
            )
        else:
            modeladmin.message_user(
                request, f"{channel.name}: {notification.error}", messages.ERROR
            )


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "enabled", "severities", "disabled_reason"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = [send_test, *enable_actions("channels")]
    readonly_fields = ["disabled_reason"]

    fields = [
        "name",
        "kind",
        "config",
        "enabled",
        "disabled_reason",
        "severities",
        "matchers",
        "send_resolved",
    ]

    # ChannelForm.clean ran channel_save(commit=False) on the instance: it only needs saving.


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "channel",
        "event",
        "severity",
        "title",
        "status",
        "attempts",
        "duration_ms",
        "error",
    ]
    list_select_related = ["channel"]
    list_filter = ["status", "event", "severity", "channel"]
    search_fields = ["title", "error"]
    show_full_result_count = False
    list_per_page = 100
    readonly_fields = ["flips_display"]
    exclude = ["flips"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="flips")
    def flips_display(self, notification: Notification) -> str:
        return pretty_json([str(f) for f in notification.flips.all()[:200]])
