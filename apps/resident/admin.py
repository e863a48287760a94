from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.core.admin_utils import enable_actions, pretty_json
from apps.resident import services
from apps.resident.models import (
    ResidentAlertRule,
    ResidentProbe,
    ResidentRemoval,
    ResidentTarget,
    probe_scope_errors,
)


class ResidentProbeAdminForm(forms.ModelForm):
    class Meta:
        model = ResidentProbe
        fields = [
            "name",
            "description",
            "enabled",
            "case",
            "image",
            "command",
            "args",
            "env",
            "resources",
            "service_account",
            "clusters",
            "groups",
            "interval_ms",
            "sample_timeout_ms",
            "denoise_k",
            "denoise_n",
            "report_rate",
            "report_burst",
            "batch_window_ms",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "case" in self.fields:  # the alert subjects of resident probes are not runnable
            field = self.fields["case"]
            field.queryset = field.queryset.filter(resident_subject__isnull=True)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        errors = probe_scope_errors(clusters=data.get("clusters"), groups=data.get("groups"))
        for field, message in errors.items():
            self.add_error(field, message)
        return data


class ResidentTargetInline(admin.TabularInline):
    """Each target cluster: samples received and the ProbeConfig's status there."""

    model = ResidentTarget
    extra = 0
    can_delete = False
    fields = (
        "cluster",
        "state",
        "last_sample_at",
        "last_report_at",
        "samples_dropped",
        "ready",
        "applied_at",
        "apply_error",
        "status",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ResidentTarget]:
        return super().get_queryset(request).select_related("cluster")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("ProbeConfig status"))
    def status(self, obj: ResidentTarget) -> str:
        return pretty_json(obj.config_status) if obj.config_status else "-"


def _set_enabled(queryset: QuerySet[ResidentProbe], value: bool) -> int:
    return services.resident_probes_set_enabled(
        probe_ids=list(queryset.values_list("pk", flat=True)), enabled=value
    )


@admin.register(ResidentProbe)
class ResidentProbeAdmin(admin.ModelAdmin):
    """Resident probes. The token is shown once, when created or rotated."""

    form = ResidentProbeAdminForm
    list_display = [
        "name",
        "enabled",
        "runs",
        "interval_ms",
        "target_count",
        "token_rotated_at",
        "updated_at",
    ]
    list_select_related = ["case"]
    list_filter = ["enabled", ("case", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "description", "image"]
    autocomplete_fields = ["case", "clusters", "groups"]
    readonly_fields = ["token_rotated_at", "alert_case", "created_at", "updated_at"]
    inlines = [ResidentTargetInline]
    actions = [*enable_actions("resident probes", _set_enabled), "rotate_tokens", "apply_now"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ResidentProbe]:
        queryset = super().get_queryset(request)
        # Counted in the list query: no query per row.
        return queryset.annotate(
            _clusters=Count("clusters", distinct=True), _groups=Count("groups", distinct=True)
        )

    @admin.display(description=_("runs"))
    def runs(self, obj: ResidentProbe) -> str:
        return f"case {obj.case.name}" if obj.case else obj.image

    @admin.display(description=_("targets"))
    def target_count(self, obj: ResidentProbe) -> str:
        return gettext("%(clusters)d clusters, %(groups)d groups") % {
            "clusters": getattr(obj, "_clusters", 0),
            "groups": getattr(obj, "_groups", 0),
        }

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        token = services.resident_probe_saved(probe=form.instance)
        if token:
            self.message_user(
                request,
                gettext(
                    "Token of resident probe '%(name)s': %(token)s — copy it now, it will not "
                    "be shown again (the portal writes it into each cluster's Secret)."
                )
                % {"name": form.instance.name, "token": token},
                messages.WARNING,
            )

    def delete_model(self, request: HttpRequest, obj: ResidentProbe) -> None:
        services.resident_probe_delete(probe=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ResidentProbe]) -> None:
        for probe in queryset:
            services.resident_probe_delete(probe=probe)

    @admin.action(description=_("Rotate the token of selected probes"), permissions=["change"])
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[ResidentProbe]) -> None:
        for probe in queryset[:20]:  # each is shown once: keep the page readable
            token = services.resident_probe_rotate_token(probe=probe)
            self.message_user(
                request,
                gettext("New token of '%(name)s': %(token)s — shown once.")
                % {"name": probe.name, "token": token},
                messages.WARNING,
            )

    @admin.action(description=_("Apply to clusters now"), permissions=["change"])
    def apply_now(self, request: HttpRequest, queryset: QuerySet[ResidentProbe]) -> None:
        count = services.resident_probes_apply(
            probe_ids=list(queryset.values_list("pk", flat=True))
        )
        text = ngettext(
            "Applying %(n)d resident probe.", "Applying %(n)d resident probes.", count
        ) % {"n": count}
        self.message_user(request, text, messages.SUCCESS)


@admin.register(ResidentAlertRule)
class ResidentAlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "enabled",
        "probe",
        "availability_below",
        "latency_p99_above_ms",
        "window_minutes",
        "no_data_minutes",
        "severity",
    ]
    list_select_related = ["probe"]
    list_filter = ["enabled", "severity"]
    search_fields = ["name", "probe__name"]
    autocomplete_fields = ["probe"]


@admin.register(ResidentRemoval)
class ResidentRemovalAdmin(admin.ModelAdmin):
    """ProbeConfigs of deleted probes still to remove (retried by the resync)."""

    list_display = ["name", "cluster", "namespace", "created_at", "error"]
    list_select_related = ["cluster"]
    search_fields = ["name", "cluster__name"]
    readonly_fields = ["name", "cluster", "namespace", "created_at", "error"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
