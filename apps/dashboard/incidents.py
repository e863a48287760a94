"""Incident pages (list, detail with timeline and member alerts) and the label forms.

Incidents span clusters, so only users who see every cluster see them (others
get 404, like any page of something they may not see). Labelling needs
``diagnosis.change_incident`` (an incident) or ``diagnosis.change_rundiagnosis``
(a run).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.dashboard.access import sees_all_clusters
from apps.dashboard.selectors import run_alerts
from apps.dashboard.views import dashboard_view
from apps.diagnosis import selectors, services
from apps.diagnosis.inputs import LabelForm
from apps.diagnosis.models import Incident, IncidentState

INCIDENT_LABEL_PERMISSION = "diagnosis.change_incident"
RUN_LABEL_PERMISSION = "diagnosis.change_rundiagnosis"


def _require_all_clusters(request: HttpRequest) -> None:
    if not sees_all_clusters(request.user):
        raise Http404("No incidents to show.")


@dashboard_view
@require_GET
def incidents(request: HttpRequest) -> HttpResponse:
    _require_all_clusters(request)
    state = request.GET.get("state", "")
    if state and state not in IncidentState.values:
        messages.error(request, f"Unknown state {state!r}: use open or resolved.")
        state = ""
    rows = list(selectors.incidents_list(state=state)[:500])
    context = {"live_scope": "incidents", "incidents": rows, "state": state}
    if request.GET.get("fragment") == "1":
        return render(request, "dashboard/_incidents_table.html", context)
    return render(request, "dashboard/incidents.html", context)


@dashboard_view
@require_GET
def incident_detail(request: HttpRequest, incident_id: int) -> HttpResponse:
    _require_all_clusters(request)
    try:
        incident = selectors.incident_detail(incident_id=incident_id)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None
    context = {
        "live_scope": f"incident:{incident.pk}",
        "incident": incident,
        "members": incident.members.select_related("alert__case", "alert__cluster", "run").order_by(
            "left_at", "joined_at"
        ),
        "timeline": incident.timeline.select_related("user"),
        "can_label": request.user.has_perm(INCIDENT_LABEL_PERMISSION),
        "label_form": LabelForm(initial={"category": incident.category}, auto_id=False),
    }
    if request.GET.get("fragment") == "1":
        return render(request, "dashboard/_incident_detail.html", context)
    return render(request, "dashboard/incident.html", context)


@dashboard_view
@require_POST
def incident_label(request: HttpRequest, incident_id: int) -> HttpResponse:
    _require_all_clusters(request)
    if not Incident.objects.filter(pk=incident_id).exists():
        raise Http404("No such incident.")
    if not request.user.has_perm(INCIDENT_LABEL_PERMISSION):
        raise PermissionDenied("Labelling incidents needs diagnosis.change_incident.")
    form = LabelForm(request.POST)
    if form.is_valid():
        services.incident_label(
            incident_id=incident_id,
            category=form.cleaned_data["category"],
            user=request.user,
            note=form.cleaned_data["note"],
        )
        messages.success(request, "Root cause recorded.")
    else:
        messages.error(request, f"Not labelled: {form.errors.as_text()}")
    return redirect(reverse("dashboard:incident", args=[incident_id]))


@dashboard_view
@require_POST
def run_label(request: HttpRequest, run_id: int) -> HttpResponse:
    if run_alerts.run_page(user=request.user, run_id=run_id) is None:
        raise Http404("No such run.")
    if not request.user.has_perm(RUN_LABEL_PERMISSION):
        raise PermissionDenied("Labelling runs needs diagnosis.change_rundiagnosis.")
    form = LabelForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not labelled: {form.errors.as_text()}")
    else:
        try:
            services.run_label(
                run_id=run_id, category=form.cleaned_data["category"], user=request.user
            )
        except ValueError as exc:
            messages.error(request, f"Not labelled: {exc}")
        else:
            messages.success(request, "Root cause recorded.")
    return redirect(reverse("dashboard:run", args=[run_id]))
