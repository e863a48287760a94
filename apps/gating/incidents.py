"""Open incidents on a cluster as gate reasons, with their root causes (apps.diagnosis)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from apps.clusters.models import Cluster
from apps.core.said import Said, say, word
from apps.diagnosis.models import Incident, IncidentState
from apps.gating import said as m
from apps.gating.evaluation import said_reason


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
        cause: Any = word(m.CAUSE, incident.category) if incident.category else say(m.NOT_KNOWN)
        if incident.component:
            cause = say(m.WITH_PART, text=cause, part=incident.component)
        if incident.source:
            source = word(m.SOURCE, incident.source)
            cause = (
                say(m.HOW, text=cause, source=source, confidence=f"{incident.confidence:.0%}")
                if incident.confidence
                else say(m.HOW_SOURCE, text=cause, source=source)
            )
        title = Said(incident.title_params) if incident.title_params else incident.title
        line = say(m.INCIDENT, id=incident.pk, title=title, cause=cause)
        if not denies:
            line = say(m.SUFFIXED, text=line, suffix=say(m.INCIDENT_QUIET))
        reasons.append(
            said_reason(
                line,
                kind="incident",
                effect="deny" if denies else "none",
                incident=incident.pk,
                category=incident.category,
                component=incident.component,
            )
        )
    return reasons
