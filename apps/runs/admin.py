from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from apps.core.admin_utils import pretty_json, said_column
from apps.runs.admin_actions import RunNowMixin, run_now_action
from apps.runs.models import ProbeRun, Trigger
from apps.runs.services import CreateResult, manual_key, runs_create


def _run_again(queryset: QuerySet[ProbeRun], user_id: int | None) -> CreateResult:
    runs = queryset.select_related("case", "cluster")
    pairs = {(r.case_id, r.cluster_id): (r.case, r.cluster) for r in runs}
    return runs_create(
        pairs=pairs.values(), trigger=Trigger.MANUAL, key=manual_key(), requested_by_id=user_id
    )


# Why the portal closed the run, in the admin's language (apps/core/said.py).
REASON = said_column("reason", _("reason"))


@admin.register(ProbeRun)
class ProbeRunAdmin(RunNowMixin, admin.ModelAdmin):
    list_display = ["id", "case", "cluster", "trigger", "state", "created", "duration"]
    list_display_links = ["id"]
    list_select_related = ["case", "cluster"]
    list_filter = ["state", "trigger", "executor"]
    search_fields = ["=id", "case__name", "cluster__name"]
    list_per_page = 100
    # Counting 100k+ rows on every page view is wasted work.
    show_full_result_count = False
    ordering = ["-created_at", "-id"]
    actions = [run_now_action(_("runs again (same case and cluster)"), _run_again)]
    readonly_fields = [
        "case",
        "cluster",
        "binding",
        "trigger",
        "state",
        "idempotency_key",
        "executor",
        "pod_name",
        "event",
        "requested_by",
        "created_at",
        "dispatched_at",
        "finished_at",
        "deadline",
        "duration",
        "ok",
        "errors_display",
        "steps_display",
        "metrics_display",
        REASON,
        "log_tail",
        "diagnostics_display",
    ]
    # What happened first, bookkeeping last.
    fieldsets = [
        (None, {"fields": ["case", "cluster", "state", "duration", REASON]}),
        (
            _("Result"),
            {"fields": ["steps_display", "errors_display", "metrics_display", "log_tail"]},
        ),
        (
            _("Origin"),
            {"fields": ["trigger", "binding", "event", "requested_by", "executor", "pod_name"]},
        ),
        (
            _("Times"),
            {"fields": ["created_at", "dispatched_at", "finished_at", "deadline", "ok"]},
        ),
        (
            _("Diagnostics"),
            {"fields": ["diagnostics_display", "idempotency_key"], "classes": ["collapse"]},
        ),
    ]

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        # The title names the case and the cluster (ProbeRun.__str__).
        qs = super().get_queryset(request).select_related("case", "cluster")
        if request.resolver_match and (request.resolver_match.url_name or "").endswith(
            "changelist"
        ):
            # Big text columns are only shown on the detail page.
            qs = qs.defer("log_tail", "diagnostics", "steps", "metrics", "errors")
        return qs

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ProbeRun | None = None) -> bool:
        return False

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: ProbeRun) -> str:
        return f"{obj.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description=_("duration"), ordering="duration_ms")
    def duration(self, obj: ProbeRun) -> str:
        return _ms(obj.duration_ms)

    @admin.display(description=_("errors"))
    def errors_display(self, obj: ProbeRun) -> SafeString | str:
        if not obj.errors:
            return "-"
        return format_html(
            "<ol style='margin:0;padding-left:1.2em'>{}</ol>",
            format_html_join(
                "", "<li><pre style='margin:0'>{}</pre></li>", ((e,) for e in obj.errors)
            ),
        )

    @admin.display(description=_("steps"))
    def steps_display(self, obj: ProbeRun) -> SafeString | str:
        if not obj.steps:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td><td><pre style='margin:0;white-space:pre-wrap'>{}</pre></td></tr>",
            (
                (
                    n,
                    step.get("name", ""),
                    "✗ " + _("failed") if step.get("ok") is False else "✓ " + _("ok"),
                    _ms(step.get("duration_ms")),
                    step.get("error", ""),
                )
                for n, step in enumerate(obj.steps, 1)
                if isinstance(step, dict)
            ),
        )
        return format_html(
            "<table><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("step"),
            _("result"),
            _("duration"),
            _("error"),
            rows,
        )

    @admin.display(description=_("metrics"))
    def metrics_display(self, obj: ProbeRun) -> SafeString | str:
        if not obj.metrics:
            return "-"
        rows = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td style='text-align:right'>{}</td></tr>",
            sorted(obj.metrics.items()),
        )
        return format_html("<table><tbody>{}</tbody></table>", rows)

    @admin.display(description=_("diagnostics"))
    def diagnostics_display(self, obj: ProbeRun) -> str:
        return pretty_json(obj.diagnostics)


def _ms(value: object) -> str:
    """1234 → "1.23 s", 87 → "87 ms", None → "-"."""
    if not isinstance(value, int | float):
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
