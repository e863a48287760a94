from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.clusters.models import (
    API_CHECK_FIELDS,
    BREAKER_FIELDS,
    LOCAL_EXECUTOR_DISABLED,
    ApiStatus,
    Cluster,
    ClusterGroup,
)
from apps.clusters.selectors import cluster_group_resolve, clusters_with_api
from apps.clusters.services import cluster_check_api
from apps.clusters.tasks import check_cluster_api
from apps.core.admin_utils import WriteOnlyTextarea, enable_actions

# "Check API now" asks up to this many clusters while the page waits (each bounded
# by its own timeout); a larger selection is checked by the workers.
CHECK_NOW_LIMIT = 5


@admin.action(description=_("Check API now: /version and /readyz"), permissions=["run"])
def check_api_now(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Cluster]
) -> None:
    clusters = list(clusters_with_api(queryset=queryset).order_by("name"))
    skipped = queryset.count() - len(clusters)
    if skipped:
        modeladmin.message_user(
            request,
            _("Skipped %(skipped)s cluster(s) without a kubeconfig.") % {"skipped": skipped},
            messages.WARNING,
        )
    if len(clusters) > CHECK_NOW_LIMIT:
        for cluster in clusters:
            transaction.on_commit(partial(check_cluster_api.delay, cluster.pk))
        modeladmin.message_user(
            request,
            _("Queued API checks of %(clusters_count)s clusters; reload the page to see them.")
            % {"clusters_count": len(clusters)},
            messages.SUCCESS,
        )
        return
    for cluster in clusters:
        check = cluster_check_api(cluster=cluster, force=True)
        text = f"{cluster.name}: {ApiStatus(check.status).label}"
        text += f", {check.version}" if check.version else ""
        text += f": {check.error}" if check.error else ""
        level = messages.SUCCESS if check.status == ApiStatus.OK else messages.WARNING
        modeladmin.message_user(request, text, level)


class BreakerFilter(admin.SimpleListFilter):
    title = _("reachable")
    parameter_name = "breaker"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [("open", _("unreachable (breaker open)")), ("closed", _("reachable"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> QuerySet[Cluster]:
        if self.value() == "open":
            return queryset.filter(breaker_open_since__isnull=False)
        if self.value() == "closed":
            return queryset.filter(breaker_open_since__isnull=True)
        return queryset


class ClusterAdminForm(forms.ModelForm):
    kubeconfig = forms.CharField(
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 8, "cols": 80}),
        help_text=_(
            "Write-only: paste a kubeconfig to set or replace it. Leave empty to keep the current one."
        ),
    )
    clear_kubeconfig = forms.BooleanField(
        required=False, help_text=_("Remove the stored kubeconfig (local executor only).")
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "display_name",
            "description",
            "labels",
            "region",
            "environment",
            "enabled",
            "executor",
            "kubeconfig",
            "context",
            "namespace",
            "api_qps",
            "api_timeout_seconds",
            "watch_namespaces",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["kubeconfig"] = ""
        if self.instance.pk and self.instance.has_kubeconfig:
            self.fields["kubeconfig"].help_text = gettext(
                "A kubeconfig is set (%(fingerprint)s); its content is never shown. "
                "Paste a new one to replace it, or leave empty to keep it."
            ) % {"fingerprint": self.instance.kubeconfig_fingerprint}
        else:
            self.fields[
                "kubeconfig"
            ].help_text = "No kubeconfig is set. Required for the kubernetes executor."

    def clean_kubeconfig(self) -> str:
        new = self.cleaned_data.get("kubeconfig") or ""
        if self.data.get("clear_kubeconfig"):
            return ""
        if not new.strip() and self.instance.pk:
            return self.instance.kubeconfig
        return new


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterAdminForm
    # Short columns: the list fits 1400 px; the rest is on each cluster's page.
    list_display = ["name", "environment", "executor_name", "enabled", "api", "reachability"]
    list_filter = [
        "enabled",
        "executor",
        BreakerFilter,
        "api_status",
        "api_version",
        "environment",
        "region",
    ]
    search_fields = ["name", "display_name", "description"]
    list_per_page = 100
    show_full_result_count = False
    actions = [
        *enable_actions(_("clusters")),
        check_api_now,
    ]
    readonly_fields = [
        "kubeconfig_status",
        *API_CHECK_FIELDS,
        *BREAKER_FIELDS,
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "display_name",
                    "description",
                    "labels",
                    "region",
                    "environment",
                    "enabled",
                ]
            },
        ),
        (
            _("Access"),
            {"fields": ["executor", "kubeconfig", "clear_kubeconfig", "context", "namespace"]},
        ),
        (_("API server"), {"fields": ["api_status", "api_version", "api_checked_at", "api_error"]}),
        (
            _("Circuit breaker"),
            {
                "fields": [
                    "breaker_open_since",
                    "breaker_failures",
                    "breaker_next_probe_at",
                    "breaker_last_error",
                ],
                "description": _(
                    "Unreachable since: the cluster's runs end at once as errors "
                    "without calling its API; one call per interval tries again and closes it "
                    "when the API answers. 'Check API now' always asks."
                ),
            },
        ),
        (_("API client"), {"fields": ["api_qps", "api_timeout_seconds"], "classes": ["collapse"]}),
        (_("Change events"), {"fields": ["watch_namespaces"], "classes": ["collapse"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    def _warn_local_disabled(self, request: HttpRequest, clusters: QuerySet[Cluster]) -> None:
        if (
            not settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED
            and clusters.filter(executor="local").exists()
        ):
            self.message_user(
                request,
                _("Local clusters will not run: %(local_executor_disabled)s")
                % {"local_executor_disabled": LOCAL_EXECUTOR_DISABLED},
                messages.WARNING,
            )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        if request.method == "GET":
            self._warn_local_disabled(request, Cluster.objects.all())
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        if request.method == "GET":
            self._warn_local_disabled(request, Cluster.objects.filter(pk=object_id))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_fieldsets(self, request: HttpRequest, obj: Cluster | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj) or (
            obj is None and self.has_add_permission(request)
        ):
            return fieldsets
        # Read-only pages would render the decrypted kubeconfig: show only its status.
        hidden = {"kubeconfig", "clear_kubeconfig"}
        out = []
        for title, options in fieldsets:
            fields = [f for f in options["fields"] if f not in hidden]
            if len(fields) != len(options["fields"]):
                fields.insert(1, "kubeconfig_status")
            out.append((title, {**options, "fields": fields}))
        return out

    def get_queryset(self, request: HttpRequest) -> QuerySet[Cluster]:
        # Pages never show the secret; the change form loads it only to keep it.
        return super().get_queryset(request).defer("kubeconfig")

    @admin.display(description=_("executor"), ordering="executor")
    def executor_name(self, obj: Cluster) -> str:
        return obj.executor

    @admin.display(description=_("API server"), ordering="api_status")
    def api(self, obj: Cluster) -> str:
        return " · ".join(p for p in (obj.get_api_status_display(), obj.api_version) if p)

    @admin.display(description=_("reachable"), ordering="breaker_open_since")
    def reachability(self, obj: Cluster) -> str:
        if obj.breaker_open_since is None:
            return str(_("yes"))
        since = timezone.localtime(obj.breaker_open_since)
        return format_html(
            '<span title="{}">{}</span>',
            obj.breaker_last_error,
            _("unreachable since %(when)s") % {"when": f"{since:%Y-%m-%d %H:%M:%S}"},
        )

    @admin.display(description=_("kubeconfig"), ordering="kubeconfig_fingerprint")
    def kubeconfig_status(self, obj: Cluster) -> str:
        if not obj.has_kubeconfig:
            return "—"
        return _("set (%(fingerprint)s)") % {"fingerprint": obj.kubeconfig_fingerprint}


@admin.register(ClusterGroup)
class ClusterGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count", "selector", "updated_at"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["members"]
    filter_horizontal = ["viewer_groups"]
    readonly_fields = ["resolved_clusters", "created_at", "updated_at"]
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[ClusterGroup]:
        return super().get_queryset(request).annotate(_members=Count("members"))

    @admin.display(description=_("explicit members"), ordering="_members")
    def member_count(self, obj: Any) -> int:
        return obj._members

    @admin.display(description=_("resolves to"))
    def resolved_clusters(self, obj: ClusterGroup) -> str:
        if not obj.pk:
            return "—"
        qs = cluster_group_resolve(group=obj)
        total = qs.count()
        names = format_html_join(", ", "{}", ((n,) for n in qs.values_list("name", flat=True)[:50]))
        more = _(" … and %(more)s more") % {"more": total - 50} if total > 50 else ""
        return format_html("{}: {}{}", _("%(count)s cluster(s)") % {"count": total}, names, more)
