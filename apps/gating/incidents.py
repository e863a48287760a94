"""Open incidents on a cluster as gate reasons, with their root causes (apps.diagnosis)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _

from apps.clusters.models import Cluster
from apps.core.said import render_field
from apps.diagnosis.models import Incident, IncidentState
from apps.runs.models import RootCause, RootCauseSource

CATEGORIES = dict(RootCause.choices)
SOURCES = dict(RootCauseSource.choices)


def open_incidents_on(*, cluster: Cluster) -> list[Incident]:
    """Open incidents of the cluster itself, and case-wide ones with a current member
    alert on it (a registry outage failing this cluster among many)."""
    return list(
        Incident.objects.filter(state=IncidentState.OPEN)
        .filter(
            Q(cluster=cluster) | Q(members__alert__cluster=cluster, members__left_at__isnull=True)
        )
        .distinct()
        .order_by("opened_at", "id")
    )


def incident_reasons(*, cluster: Cluster, denies: bool) -> list[dict[str, Any]]:
    """One reason per open incident touching the cluster: deny, or listed only when the
    policy says open incidents do not deny."""
    reasons = []
    for incident in open_incidents_on(cluster=cluster):
        cause = CATEGORIES.get(incident.category, incident.category) or "not known yet"
        if incident.component:
            cause += f" ({incident.component})"
        how = ""
        if incident.source:
            how = f", {SOURCES.get(incident.source, incident.source).lower()}"
            how += f" {incident.confidence:.0%}" if incident.confidence else ""
        quiet = "" if denies else " " + _("(policy: incidents do not deny; not counted)")
        reasons.append(
            {
                "kind": "incident",
                "effect": "deny" if denies else "none",
                "incident": incident.pk,
                "category": incident.category,
                "component": incident.component,
                "message": _("Incident #%(id)s open: %(title)s; root cause: %(cause)s")
                % {
                    "id": incident.pk,
                    "title": render_field(incident, "title"),
                    "cause": f"{cause}{how}",
                }
                + quiet,
            }
        )
    return reasons
