"""The "Run now" admin action, shared by clusters, cases, case sets and bindings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.runs.services import CreateResult


class RunNowMixin:
    """Adds has_run_permission (runs.run_probe) for actions declared with permissions=["run"]."""

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("runs.run_probe")


def report_runs(
    modeladmin: admin.ModelAdmin, request: HttpRequest, result: CreateResult, what: str
) -> None:
    if not result.created and not result.skipped:
        modeladmin.message_user(
            request,
            f"Nothing to run: {what} is not covered by an enabled binding.",
            messages.WARNING,
        )
        return
    text = f"Started {len(result.created)} run(s)"
    if result.skipped:
        text += f"; skipped {result.skipped} whose previous run is still active"
    modeladmin.message_user(request, text + ".", messages.SUCCESS)


def run_now_action(
    what: str, runner: Callable[[QuerySet[Any], int | None], CreateResult]
) -> Callable[..., None]:
    @admin.action(description=f"Run now: selected {what}", permissions=["run"])
    def run_now(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
    ) -> None:
        report_runs(
            modeladmin, request, runner(queryset, request.user.pk), f"the selection of {what}"
        )

    return run_now
