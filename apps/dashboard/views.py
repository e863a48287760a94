"""Dashboard pages: thin views over apps/dashboard/selectors/ and the existing services.

Pages of clusters, runs and alerts the user may not see answer 404 (not 403),
so their names do not leak; actions the user's role may not take answer 403.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET, require_POST

from apps.alerts import inbox as alert_inbox
from apps.alerts import services as alert_services
from apps.alerts import silences as alert_silences
from apps.alerts.inputs import AcknowledgeForm, QuickSilenceForm
from apps.catalog.models import Case
from apps.dashboard import access
from apps.dashboard.forms import FilterForm
from apps.dashboard.selectors import (
    cluster_case,
    grid,
    matrix,
    resident,
    run_alerts,
    stats,
    visibility,
)
from apps.diagnosis.inputs import LabelForm
from apps.gating.selectors import gate_decisions_recent
from apps.resident.models import ResidentProbe
from apps.runs.models import Trigger
from apps.runs.services import manual_key, runs_create

LOGIN_URL = "admin:login"
RUN_PERMISSION = "runs.run_probe"
ACK_PERMISSION = "alerts.change_alert"
SILENCE_PERMISSION = "alerts.add_silence"

View = Callable[..., HttpResponse]


def dashboard_view(view: View) -> View:
    """Login required: anonymous users go to the admin login with ?next=."""
    return login_required(view, login_url=LOGIN_URL)


def _query(request: HttpRequest) -> str:
    return request.GET.urlencode()


def _without(request: HttpRequest, name: str) -> str:
    query = request.GET.copy()
    query.pop(name, None)
    return query.urlencode()


TABLE_ROWS = 500  # clusters per page of the table fallback (?render=table)


def _table_page(request: HttpRequest, total: int) -> tuple[int, int] | HttpResponse:
    """(page, pages) of the table fallback; 400 for a page that is not a whole number, 404 past the last."""
    raw = request.GET.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        return HttpResponseBadRequest(gettext("page must be a positive whole number"))
    pages = max(1, -(-total // TABLE_ROWS))
    if int(raw) > pages:
        raise Http404(
            ngettext("The table has %(pages)d page.", "The table has %(pages)d pages.", pages)
            % {"pages": pages}
        )
    return int(raw), pages


# The overview is a shell: filters, legend, counters. static/dashboard/grid.js draws the
# matrix from grid.json (only the rows in view are in the DOM); ?render=table is the
# paginated server-rendered table, for browsers without JavaScript.
@dashboard_view
@gzip_page
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    form, filters = FilterForm.parse(request.GET)
    context: dict[str, Any] = {
        "live_scope": "overview",
        "form": form,
        "filters": filters,
        "query": _query(request),
    }
    if request.GET.get("render") != "table":
        context["options"] = matrix.filter_options(user=request.user)
        context["counters"] = run_alerts.firing_counts(user=request.user)
        context["grid_url"] = reverse("dashboard:grid") + (
            f"?{request.GET.urlencode()}" if request.GET else ""
        )
        return render(request, "dashboard/overview.html", context)
    page = grid.grid_overview(user=request.user, filters=filters)
    numbers = _table_page(request, page.row_count)
    if isinstance(numbers, HttpResponse):
        return numbers
    number, pages = numbers
    first = (number - 1) * TABLE_ROWS
    table_rows = grid.grid_slice(page, first, first + TABLE_ROWS)
    shown = {row.cluster_id for _title, rows, _total in table_rows for row in rows}
    context.update(
        matrix=page,
        options=page.options,
        counters=page.counters,
        table_rows=table_rows,
        table_page=number,
        table_pages=pages,
        pager_query=_without(request, "page"),
        resident=resident.resident_matrix(user=request.user, cluster_ids=shown),
    )
    return render(request, "dashboard/overview_table.html", context)


@dashboard_view
@gzip_page
@require_GET
def grid_data(request: HttpRequest) -> HttpResponse:
    """The overview's matrix for grid.js: same filters as the page (format: grid.grid_json)."""
    _, filters = FilterForm.parse(request.GET)
    page = grid.grid_overview(user=request.user, filters=filters)
    shown = {row.cluster_id for _title, rows in page.sections for row in rows}
    residents = resident.resident_matrix(user=request.user, cluster_ids=shown)
    return JsonResponse(grid.grid_json(page, residents))


@dashboard_view
@require_GET
def resident_detail(request: HttpRequest, name: str) -> HttpResponse:
    probe = get_object_or_404(ResidentProbe, name=name)
    page = resident.resident_page(user=request.user, probe=probe)
    return render(
        request,
        "dashboard/resident.html",
        {"live_scope": f"resident:{probe.pk}", "page": page, "probe": probe},
    )


@dashboard_view
@require_GET
def cluster_detail(request: HttpRequest, name: str) -> HttpResponse:
    cluster = visibility.visible_cluster(user=request.user, name=name)
    if cluster is None:
        raise Http404("No such cluster.")
    form, filters = FilterForm.parse(request.GET)
    page = cluster_case.cluster_page(cluster=cluster, filters=filters)
    return render(
        request,
        "dashboard/cluster.html",
        {
            "live_scope": f"cluster:{cluster.pk}",
            "form": form,
            "page": page,
            "cluster": cluster,
            "counters": page.counters,
            "windows": [w for w, _ in stats.WINDOWS],
            "case_sets": matrix.filter_options(user=request.user).case_sets,
            "gate_decisions": list(gate_decisions_recent(cluster=cluster)),
        },
    )


@dashboard_view
@gzip_page
@require_GET
def case_detail(request: HttpRequest, name: str) -> HttpResponse:
    case = get_object_or_404(Case, name=name)
    form, filters = FilterForm.parse(request.GET)
    page = cluster_case.case_page(user=request.user, case=case, filters=filters)
    return render(
        request,
        "dashboard/case.html",
        {
            "live_scope": f"case:{case.pk}",
            "form": form,
            "page": page,
            "case": case,
            "options": page.options,
            "counters": page.counters,
            "windows": [w for w, _ in stats.WINDOWS],
        },
    )


def _run_context(request: HttpRequest, page: run_alerts.RunPage) -> dict[str, Any]:
    return {
        "live_scope": f"run:{page.run.pk}",
        "page": page,
        "run": page.run,
        "alert": page.alert,
        "counters": page.counters,
        "can_run": request.user.has_perm(RUN_PERMISSION),
        # An operator confirms or corrects a failed run's root cause (apps/dashboard/incidents.py).
        "can_label": request.user.has_perm("diagnosis.change_rundiagnosis")
        and page.run.state in ("failed", "error", "timed_out"),
        "label_form": LabelForm(initial={"category": page.run.root_cause}, auto_id=False),
    }


@dashboard_view
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    page = run_alerts.run_page(user=request.user, run_id=run_id)
    if page is None:
        raise Http404("No such run.")
    context = _run_context(request, page)
    if request.GET.get("fragment") == "1":
        # The live script swaps this into <div id="run-detail"> when the run changes.
        return render(request, "dashboard/_run_detail.html", context)
    return render(request, "dashboard/run.html", context)


@dashboard_view
@require_POST
def run_again(request: HttpRequest, run_id: int) -> HttpResponse:
    page = run_alerts.run_page(user=request.user, run_id=run_id)
    if page is None:
        raise Http404("No such run.")
    if not request.user.has_perm(RUN_PERMISSION):
        raise PermissionDenied(_("Running probes by hand needs the runs.run_probe permission."))
    run = page.run
    # As the admin's "Run again": one manual run of the same case on the same cluster.
    result = runs_create(
        pairs=[(run.case, run.cluster)],
        trigger=Trigger.MANUAL,
        key=manual_key(),
        requested_by_id=request.user.pk,
    )
    if result.created:
        messages.success(request, _("Started run %(run)s.") % {"run": result.created[0]})
        return redirect("dashboard:run", run_id=result.created[0])
    messages.warning(
        request, _("Not started: the previous run of this case on this cluster is still active.")
    )
    return redirect("dashboard:run", run_id=run.pk)


@dashboard_view
@require_GET
def alerts(request: HttpRequest) -> HttpResponse:
    page = run_alerts.alerts_page(user=request.user)
    # The live script swaps the fragment in when alerts change.
    template = "_alerts_list" if request.GET.get("fragment") == "1" else "alerts"
    return render(
        request,
        f"dashboard/{template}.html",
        {
            "live_scope": "alerts",
            "page": page,
            "counters": page.counters,
            "can_ack": request.user.has_perm(ACK_PERMISSION),
            "can_silence": request.user.has_perm(SILENCE_PERMISSION),
            "ack_form": AcknowledgeForm(auto_id=False),
            "silence_form": QuickSilenceForm(auto_id=False),
        },
    )


@dashboard_view
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    """What `inbox` channels received: the notifications a chat or mail channel would get."""
    if not access.sees_all_clusters(request.user):
        # Messages name clusters of every group.
        raise PermissionDenied(_("The inbox shows messages about every cluster."))
    template = "_inbox_list" if request.GET.get("fragment") == "1" else "inbox"
    return render(
        request,
        f"dashboard/{template}.html",
        {
            "live_scope": "alerts",
            "messages_kept": alert_inbox.inbox_messages_recent(),
            "inbox_channels": alert_inbox.inbox_channels(),
            "counters": run_alerts.firing_counts(user=request.user),
        },
    )


def _back(request: HttpRequest) -> HttpResponse:
    return redirect(reverse("dashboard:alerts"))


def _alert_form(
    request: HttpRequest, alert_id: int, permission: str, form_class: type[forms.Form], failed: str
) -> tuple[Any, Any]:
    """The visible alert and its valid form for an action on it; (alert, None) after
    telling the user why the form was refused. 404 for an alert the user cannot see,
    403 without the permission."""
    alert = visibility.visible_alert(user=request.user, alert_id=alert_id)
    if alert is None:
        raise Http404("No such alert.")
    if not request.user.has_perm(permission):
        raise PermissionDenied(
            _("This needs the %(permission)s permission.") % {"permission": permission}
        )
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, f"{failed}: {_errors(form)}")
        return alert, None
    return alert, form


@dashboard_view
@require_POST
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert, form = _alert_form(
        request, alert_id, ACK_PERMISSION, AcknowledgeForm, "Not acknowledged"
    )
    if form is None:
        return _back(request)
    try:
        alert_services.alert_acknowledge(
            alert_id=alert.pk, user=request.user, note=form.cleaned_data["note"], until=form.until()
        )
    except ValueError as exc:
        messages.error(request, _("Not acknowledged: %(error)s") % {"error": exc})
    else:
        messages.success(
            request,
            _("Acknowledged %(case)s on %(cluster)s.")
            % {"case": alert.case, "cluster": alert.cluster},
        )
    return _back(request)


@dashboard_view
@require_POST
def alert_silence(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert, form = _alert_form(
        request, alert_id, SILENCE_PERMISSION, QuickSilenceForm, "Not silenced"
    )
    if form is None:
        return _back(request)
    ends_at = timezone.now() + timedelta(hours=form.cleaned_data["hours"])
    try:
        alert_silences.silence_create(
            matchers=[
                {"name": "cluster", "value": alert.cluster.name},
                {"name": "case", "value": alert.case.name},
            ],
            ends_at=ends_at,
            comment=form.cleaned_data["comment"],
            user=request.user,
        )
    except ValidationError as exc:
        messages.error(request, _("Not silenced: %(errors)s") % {"errors": "; ".join(exc.messages)})
    else:
        text = gettext("Silenced %(case)s on %(cluster)s until %(until)s UTC.") % {
            "case": alert.case,
            "cluster": alert.cluster,
            "until": f"{ends_at:%Y-%m-%d %H:%M}",
        }
        messages.success(request, text)
    return _back(request)


def _errors(form: Any) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


@dashboard_view
@gzip_page
@require_GET
def state_json(request: HttpRequest) -> HttpResponse:
    """Cells of a page, for the live script's resync: ?scope=overview|cluster:<id>|case:<id>;
    with ?part=resident (overview only) the resident cells instead."""
    scope = request.GET.get("scope", "overview")
    kind, _, raw_id = scope.partition(":")
    _, filters = FilterForm.parse(request.GET)
    case = cluster = None
    if kind == "overview" and not raw_id:
        pass
    elif kind in ("cluster", "case") and raw_id.isdigit():
        if kind == "cluster":
            cluster = visibility.visible_cluster_by_id(user=request.user, cluster_id=int(raw_id))
            if cluster is None:
                raise Http404("No such cluster.")
        else:
            case = get_object_or_404(Case, pk=int(raw_id))
    else:
        return JsonResponse(
            {"error": "scope must be overview, cluster:<id> or case:<id>"}, status=400
        )
    if request.GET.get("part") == "resident" and kind == "overview":
        # The overview's resident columns instead (resident-matrix.js refreshes them).
        found = resident.resident_matrix(user=request.user).cells.values()
        return JsonResponse({"scope": scope, "resident": [c.as_json() for c in found]})
    cells = matrix.matrix_cells(user=request.user, filters=filters, case=case, cluster=cluster)
    return JsonResponse({"scope": scope, "cells": [c.as_json() for c in cells]})
