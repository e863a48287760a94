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
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from apps.core.admin_utils import lazy_format
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
    modeladmin: admin.ModelAdmin, request: HttpRequest, result: CreateResult, what: str | Promise
) -> None:
    if not result.created and not result.skipped:
        modeladmin.message_user(
            request,
            _("Nothing to run: %(what)s is not covered by an enabled binding.") % {"what": what},
            messages.WARNING,
        )
        return
    if result.skipped:
        text = _(
            "Started %(started)s run(s); skipped %(skipped)s whose previous run is still active."
        )
    else:
        text = _("Started %(started)s run(s).")
    values = {"started": len(result.created), "skipped": result.skipped}
    modeladmin.message_user(request, text % values, messages.SUCCESS)


def run_now_action(
    what: str | Promise, runner: Callable[[QuerySet[Any], int | None], CreateResult]
) -> Callable[..., None]:
    @admin.action(
        description=lazy_format(gettext_noop("Run now: selected %(what)s"), what=what),
        permissions=["run"],
    )
    def run_now(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
    ) -> None:
        report_runs(
            modeladmin,
            request,
            runner(queryset, request.user.pk),
            _("the selection of %(what)s") % {"what": what},
        )

    return run_now
