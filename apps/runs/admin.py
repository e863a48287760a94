from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.admin_utils import pretty_json
from apps.runs.admin_actions import RunNowMixin, run_now_action
from apps.runs.models import ProbeRun, Trigger
from apps.runs.services import CreateResult, manual_key, runs_create


def _run_again(queryset: QuerySet[ProbeRun], user_id: int | None) -> CreateResult:
    runs = queryset.select_related("case", "cluster")
    pairs = {(r.case_id, r.cluster_id): (r.case, r.cluster) for r in runs}
    return runs_create(
        pairs=pairs.values(), trigger=Trigger.MANUAL, key=manual_key(), requested_by_id=user_id
    )


@admin.register(ProbeRun)
class ProbeRunAdmin(RunNowMixin, admin.ModelAdmin):
    list_display = ["id", "case", "cluster", "trigger", "state", "ok", "created_at", "duration_ms"]
    list_select_related = ["case", "cluster"]
    list_filter = ["state", "trigger", "executor"]
    search_fields = ["=id", "case__name", "cluster__name"]
    list_per_page = 100
    # Counting 100k+ rows on every page view is wasted work.
    show_full_result_count = False
    ordering = ["-created_at", "-id"]
    actions = [run_now_action("runs again (same case and cluster)", _run_again)]
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
        "duration_ms",
        "ok",
        "errors_display",
        "steps_display",
        "metrics_display",
        "reason",
        "log_tail",
        "diagnostics_display",
    ]
    exclude = [
        "errors",
        "steps",
        "metrics",
        "diagnostics",
        "token_hash",
        "cleaned_at",
        "keep_until",
    ]

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        qs = super().get_queryset(request)
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

    @admin.display(description="errors")
    def errors_display(self, obj: ProbeRun) -> str:
        return pretty_json(obj.errors)

    @admin.display(description="steps")
    def steps_display(self, obj: ProbeRun) -> str:
        return pretty_json(obj.steps)

    @admin.display(description="metrics")
    def metrics_display(self, obj: ProbeRun) -> str:
        return pretty_json(obj.metrics)

    @admin.display(description="diagnostics")
    def diagnostics_display(self, obj: ProbeRun) -> str:
        return pretty_json(obj.diagnostics)
