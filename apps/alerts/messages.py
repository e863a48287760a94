"""Notification texts: titles, message bodies, run links and alert fingerprints.

Texts are gettext'd; callers render them under the channel's language
(`translation.override(channel.language)` in delivery.py and sending.py).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from types import SimpleNamespace

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from apps.alerts.models import Alert, AlertFlip, FlipEvent, Notification, NotificationStatus
from apps.alerts.transports import base as transports
from apps.alerts.transports.render import event_name, severity_name
from apps.core.said import render, render_field
from apps.runs.root_cause import root_cause_text

# "<case> <verb> on <where>": title_of() puts them together with named placeholders.
VERBS = {
    FlipEvent.FIRING: gettext_lazy("failing"),
    FlipEvent.RESOLVED: gettext_lazy("recovered"),
    FlipEvent.FLAPPING: gettext_lazy("flapping"),
    FlipEvent.ACKNOWLEDGED: gettext_lazy("acknowledged"),
    FlipEvent.ESCALATED: gettext_lazy("escalated"),
    FlipEvent.SILENCED: gettext_lazy("silenced"),
    FlipEvent.TEST: gettext_lazy("test"),
}


def run_url(run_id: int | None) -> str:
    if run_id is None:
        return ""
    return settings.KUBEPROBE_PUBLIC_URL + reverse("admin:runs_proberun_change", args=[run_id])


def fingerprint(case_id: int, cluster_id: int) -> str:
    """Stable id of one (case, cluster) alert for receivers that deduplicate."""
    raw = f"{settings.KUBEPROBE_INSTALLATION}:{case_id}:{cluster_id}"
    return hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()


def _clusters(count: int) -> str:
    return ngettext("%(count)d cluster", "%(count)d clusters", count) % {"count": count}


def title_of(flips: list[AlertFlip]) -> str:
    first = flips[0]
    cases = sorted({f.alert.case.name for f in flips})
    severity = severity_name(first.severity)
    verb = str(VERBS.get(FlipEvent(first.event), first.event))
    if len(cases) > 1:  # an incident's message: several cases (apps/diagnosis)
        clusters = sorted({f.alert.cluster.name for f in flips})
        where = clusters[0] if len(clusters) == 1 else _clusters(len(clusters))
        return _("[%(severity)s] %(incident)s: %(cases)s %(verb)s on %(where)s") % {
            "severity": severity,
            "incident": render_field(first.alert, "incident_title") or _("incident"),
            "cases": ngettext("%(count)d case", "%(count)d cases", len(cases))
            % {"count": len(cases)},
            "verb": verb,
            "where": where,
        }
    clusters = sorted(f.alert.cluster.name for f in flips)
    where = (
        clusters[0]
        if len(clusters) == 1
        else f"{_clusters(len(clusters))} ({', '.join(clusters[:5])}"
        f"{'…' if len(clusters) > 5 else ''})"
    )
    title = _("[%(severity)s] %(case)s %(verb)s on %(where)s") % {
        "severity": severity,
        "case": first.alert.case.name,
        "verb": verb,
        "where": where,
    }
    if first.event == FlipEvent.FIRING and len(flips) == 1:
        detail = ": ".join(
            p
            for p in (
                first.alert.step,
                first.alert.error.splitlines()[0] if first.alert.error else "",
            )
            if p
        )
        if detail:
            title += f": {detail}"
    return title


def _dependents_note(flips: list[AlertFlip]) -> str:
    """Alerts kept quiet because one of these cases fires on the same cluster."""
    pairs = {(f.alert.case.name, f.alert.cluster_id) for f in flips}
    quiet = Alert.objects.filter(
        suppressed_by__in={name for name, _ in pairs},
        cluster_id__in={cluster for _, cluster in pairs},
    ).select_related("case", "cluster")
    lines = [
        _("%(case)s on %(cluster)s") % {"case": a.case.name, "cluster": a.cluster.name}
        for a in quiet
        if (a.suppressed_by, a.cluster_id) in pairs
    ]
    if not lines:
        return ""
    return _("also failing, not notified because they depend on this: %(alerts)s") % {
        "alerts": ", ".join(lines)
    }


def message_of(notification: Notification) -> transports.Message:
    flips = list(
        notification.flips.select_related("alert__case", "alert__cluster").order_by(
            "alert__cluster__name"
        )
    )
    if not flips:
        raise ValueError("a notification without flips")
    first = flips[0]
    items = tuple(
        transports.AlertItem(
            cluster=f.alert.cluster.name,
            fingerprint=fingerprint(f.alert.case_id, f.alert.cluster_id),
            step=f.alert.step,
            error=f.alert.error,
            run_url=run_url(f.alert.last_run_id),
            log_url=run_url(f.alert.last_run_id) + "#log" if f.alert.last_run_id else "",
            events_url=run_url(f.alert.last_run_id) + "#events" if f.alert.last_run_id else "",
            started_at=f.alert.firing_since or f.created_at,
            case=f.alert.case.name,
        )
        for f in flips
    )
    notes = [n for n in dict.fromkeys(render(f.note, f.note_params) for f in flips) if n]
    fired = _undelivered_firings(notification)
    if fired:
        notes.append(
            _(
                "fired %(fired)s UTC, recovered %(recovered)s UTC "
                "(the failure notice could not be delivered to this channel)"
            )
            % {
                "fired": ", ".join(f"{t:%Y-%m-%d %H:%M:%S}" for t in fired),
                "recovered": f"{first.created_at:%Y-%m-%d %H:%M:%S}",
            }
        )
    if first.event == FlipEvent.FIRING:
        dependents = _dependents_note(flips)
        if dependents:
            notes.append(dependents)
    diagnosed = next((f.alert for f in flips if f.alert.root_cause), None)
    diagnosis = root_cause_text(_in_language(diagnosed)) if diagnosed else ""
    incident = next(
        (render_field(f.alert, "incident_title") for f in flips if f.alert.incident_title), ""
    )
    several_cases = len({f.alert.case_id for f in flips}) > 1
    lines = [
        notification.title,
        _("Case: %(case)s   Severity: %(severity)s   Event: %(event)s")
        % {
            "case": first.alert.case.name,
            "severity": severity_name(first.severity),
            "event": event_name(first.event),
        },
    ]
    if incident:
        lines.append(_("Incident: %(incident)s") % {"incident": incident})
    if first.alert.reason and first.event != FlipEvent.RESOLVED:
        lines.append(_("Why: %(reason)s") % {"reason": render_field(first.alert, "reason")})
    for item in items:
        detail = ": ".join(p for p in (item.step, item.error) if p)
        lines.append(
            f"- {item.cluster}"
            + (f" [{item.case}]" if several_cases else "")
            + (f" — {detail}" if detail and first.event != FlipEvent.RESOLVED else "")
        )
        if item.run_url:
            lines.append("  " + _("run: %(url)s") % {"url": item.run_url})
    if diagnosis and first.event != FlipEvent.RESOLVED:
        lines.append(_("Diagnosis: %(diagnosis)s") % {"diagnosis": diagnosis})
    lines += notes
    return transports.Message(
        event=first.event,
        severity=first.severity,
        case=first.alert.case.name,
        title=notification.title,
        text="\n".join(lines),
        diagnosis=diagnosis if first.event != FlipEvent.RESOLVED else "",
        root_cause=diagnosed.root_cause if diagnosed else "",
        incident=incident,
        items=items,
        note="\n".join(notes),
        portal_url=settings.KUBEPROBE_PUBLIC_URL + reverse("admin:alerts_alert_changelist"),
        ended_at=first.created_at if first.event == FlipEvent.RESOLVED else None,
    )


def _in_language(alert: Alert) -> SimpleNamespace:
    """The alert's root cause with a shipped rule's summary in the active language
    (apps/diagnosis/summaries.py marks them); other summaries read as written."""
    summary = alert.root_cause_summary
    return SimpleNamespace(
        root_cause=alert.root_cause,
        root_cause_component=alert.root_cause_component,
        root_cause_summary=_(summary) if summary else "",  # gettext("") is the header
        root_cause_source=alert.root_cause_source,
        root_cause_confidence=alert.root_cause_confidence,
    )


def _undelivered_firings(notification: Notification) -> list[datetime]:
    """When this recovery's failures fired, for those whose notice this channel never
    delivered (it failed for good): the recovery message then says both."""
    if notification.event != FlipEvent.RESOLVED:
        return []
    return sorted(
        set(
            AlertFlip.objects.filter(
                event=FlipEvent.FIRING,
                alert_id__in=notification.flips.values("alert_id"),
                notifications__channel_id=notification.channel_id,
                notifications__status=NotificationStatus.FAILED,
                notifications__pk__lt=notification.pk,
            ).values_list("created_at", flat=True)
        )
    )
