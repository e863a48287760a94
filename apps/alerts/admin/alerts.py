"""Admin for alerts (acknowledge/resolve actions, timeline, filters) and their flips."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.alerts import services
from apps.alerts.inputs import AcknowledgeForm, ResolveForm
from apps.alerts.messages import run_url
from apps.alerts.models import PROBLEM_STATES, Alert, AlertFlip, AlertTimeline
from apps.core.admin_utils import said_column
from apps.runs.root_cause import root_cause_text


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
                apply(alert, form)
                done += 1
            except ValueError as exc:
                refused.append(
                    gettext("%(case)s on %(cluster)s: %(error)s")
                    % {"case": alert.case, "cluster": alert.cluster, "error": exc}
                )
        done_text = ngettext("%(action)s: %(n)d alert.", "%(action)s: %(n)d alerts.", done)
        modeladmin.message_user(
            request, done_text % {"action": submit, "n": done}, messages.SUCCESS
        )
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


@admin.action(description=_("Acknowledge selected alerts…"), permissions=["change"])
def acknowledge(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Alert]
) -> TemplateResponse | None:
    def apply(alert: Alert, form: forms.Form) -> None:
        assert isinstance(form, AcknowledgeForm)
        services.alert_acknowledge(
            alert_id=alert.pk,
            user=request.user,
            note=form.cleaned_data.get("note", ""),
            until=form.until(),
        )

    return _form_action(
        modeladmin,
        request,
        queryset,
        form_class=AcknowledgeForm,
        action="acknowledge",
        intro=gettext(
            "Someone is on it: these alerts stay quiet until they resolve or the "
            "acknowledgement expires."
        ),
        submit=gettext("Acknowledge"),
        apply=apply,
    )


@admin.action(description=_("Resolve selected alerts by hand…"), permissions=["change"])
def resolve(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Alert]
) -> TemplateResponse | None:
    def apply(alert: Alert, form: forms.Form) -> None:
        services.alert_resolve_by_hand(
            alert_id=alert.pk, user=request.user, note=form.cleaned_data["note"]
        )

    return _form_action(
        modeladmin,
        request,
        queryset,
        form_class=ResolveForm,
        action="resolve",
        intro=gettext(
            "Close these alerts now; the next failing run opens them again if the rule says so."
        ),
        submit=gettext("Resolve"),
        apply=apply,
    )


TEXT = said_column("text", _("text"))


class TimelineInline(admin.TabularInline):
    model = AlertTimeline
    extra = 0
    can_delete = False
    fields = ["at", "kind", TEXT, "user"]
    readonly_fields = ["at", "kind", TEXT, "user"]
    ordering = ["-at", "-id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertTimeline]:
        return super().get_queryset(request).select_related("user")


class OpenFilter(admin.SimpleListFilter):
    title = _("open")
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
    title = _("cluster (with open alerts)")
    parameter_name = "cluster"
    field = "cluster"


class CaseFilter(_OpenAlertsByName):
    title = _("case (with open alerts)")
    parameter_name = "case"
    field = "case"


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "case",
        "cluster",
        "status",
        "step",
        "short_error",
        "since",
    ]
    list_select_related = ["case", "cluster"]
    list_filter = [
        OpenFilter,
        "state",
        "severity",
        "root_cause",
        ClusterFilter,
        CaseFilter,
        "escalated",
    ]
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
        said_column("reason", _("reason")),
        "step",
        "error",
        "diagnosis",
        said_column("incident_title", _("incident")),
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
    exclude = [
        "last_run",
        "root_cause",
        "root_cause_component",
        "root_cause_confidence",
        "root_cause_source",
        "root_cause_summary",
        "incident_ref",
        "reason",
        "incident_title",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # alerts come from runs, not from people

    @admin.display(description=_("error"))
    def short_error(self, alert: Alert) -> str:
        # Short enough for the list to fit 1400 px; the whole text is on the alert's page.
        return alert.error if len(alert.error) <= 48 else alert.error[:47] + "…"

    @admin.display(description=_("firing since"), ordering="firing_since")
    def since(self, alert: Alert) -> str:
        if alert.firing_since is None:
            return "-"
        return f"{timezone.localtime(alert.firing_since):%m-%d %H:%M}"

    @admin.display(description=_("state"), ordering="state")
    def status(self, alert: Alert) -> str:
        # State, severity and what keeps it quiet in one column, so the list fits 1400 px.
        quiet = self.quiet(alert)
        state = f"{alert.get_state_display()} · {alert.get_severity_display()}"
        return state + (f" ({quiet})" if quiet else "")

    @admin.display(description=_("kept quiet by"))
    def quiet(self, alert: Alert) -> str:
        if alert.flapping_since:
            return gettext("flapping")
        if alert.suppressed_by:
            return gettext("dependency %(case)s") % {"case": alert.suppressed_by}
        if alert.state == "acknowledged" and alert.ack_by_id:
            return gettext("acknowledged")
        return ""

    @admin.display(description=_("diagnosis"))
    def diagnosis(self, alert: Alert) -> str:
        return root_cause_text(alert) or "-"

    @admin.display(description=_("last run"))
    def run_link(self, alert: Alert) -> str:
        if not alert.last_run_id:
            return "-"
        return format_html('<a href="{}">run {}</a>', run_url(alert.last_run_id), alert.last_run_id)


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
    exclude = ["note"]
    readonly_fields = [said_column("note", _("note"))]
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
