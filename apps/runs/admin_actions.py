"""The "Run now" admin action, shared by runs, bindings, clusters, cases and case sets.

Clusters, cases and case sets sit below runs and scheduling: what "run now"
means for them (the work of their enabled bindings) is scheduling's to say,
so apps/scheduling/admin.py adds the action to their admins with add_run_now.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.runs.services import CreateResult


def has_run_permission(self: admin.ModelAdmin, request: HttpRequest) -> bool:
    """For actions declared with permissions=["run"]."""
    return request.user.has_perm("runs.run_probe")


class RunNowMixin:
    has_run_permission = has_run_permission


def add_run_now(admin_class: type[admin.ModelAdmin], action: Callable[..., None]) -> None:
    """Give another app's admin a "Run now" action (and the permission it checks)."""
    admin_class.actions = [*(admin_class.actions or ()), action]
    admin_class.has_run_permission = has_run_permission  # type: ignore[attr-defined]


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
