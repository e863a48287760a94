"""Severity → action writes: plan the policies' actions for an incident, deliver them,
approve or reject disruptive ones. Every step writes a line on the incident's timeline."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from apps.actions import executors
from apps.actions import said as m
from apps.actions.models import (
    COUNTED_STATES,
    ActionKind,
    ActionPolicy,
    ActionRun,
    ActionState,
)
from apps.alerts.models import SEVERITY_RANK, Alert, Severity
from apps.alerts.said import SEVERITY
from apps.alerts.transports import base as transports
from apps.core.said import Said, render_field, render_known, say, stored, word
from apps.diagnosis.models import (
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentMember,
    IncidentState,
)

logger = logging.getLogger(__name__)


def _timeline(incident_id: int, line: Said, user: Any = None) -> None:
    text, params = stored(line)
    IncidentEvent.objects.create(
        incident_id=incident_id,
        kind=IncidentEventKind.ACTION,
        text=text,
        text_params=params,
        user=user,
    )


def _matches(policy: ActionPolicy, category: str, severity: str) -> bool:
    if policy.category and policy.category != category:
        return False
    if policy.severity:
        return SEVERITY_RANK[Severity(severity)] >= SEVERITY_RANK[Severity(policy.severity)]
    return True


def _rate_limited(policy: ActionPolicy, cluster_id: int, now: datetime) -> bool:
    since = now - timedelta(minutes=policy.rate_limit_minutes)
    done = ActionRun.objects.filter(
        cluster_id=cluster_id, created_at__gte=since, state__in=COUNTED_STATES
    ).exclude(kind="")
    return done.count() >= policy.rate_limit_count


def _enqueue(action_ids: list[int]) -> None:
    from apps.actions.tasks import deliver_action

    for action_id in action_ids:
        deliver_action.delay(action_id)


@transaction.atomic
def actions_plan(*, alert: Alert, now: datetime | None = None) -> list[ActionRun]:
    """An alert in trouble that belongs to an open incident: each matching policy's
    response, once per (policy, incident, cluster). The safeguards decide its state:
    rate limited, dry run, awaiting approval, or queued; delivery runs after commit."""
    now = now or timezone.now()
    incident = (
        Incident.objects.filter(
            state=IncidentState.OPEN, members__alert=alert, members__left_at__isnull=True
        )
        .order_by("-opened_at")
        .first()
    )
    if incident is None:
        return []
    planned = []
    for policy in ActionPolicy.objects.filter(enabled=True).order_by("order", "name"):
        if not _matches(policy, incident.category, alert.severity):
            continue
        if ActionRun.objects.filter(
            policy=policy, incident=incident, cluster_id=alert.cluster_id
        ).exists():
            continue
        state = ActionState.QUEUED
        if policy.action:
            # Lock the cluster's recent actions, so two workers do not both pass the limit.
            list(
                ActionRun.objects.select_for_update()
                .filter(cluster_id=alert.cluster_id)
                .values_list("pk", flat=True)[:1000]
            )
            if _rate_limited(policy, alert.cluster_id, now):
                state = ActionState.RATE_LIMITED
            elif policy.dry_run:
                state = ActionState.DRY_RUN
            elif policy.disruptive:
                state = ActionState.AWAITING_APPROVAL
        action = ActionRun.objects.create(
            policy=policy,
            incident=incident,
            cluster_id=alert.cluster_id,
            severity=alert.severity,
            kind=policy.action,
            state=state,
        )
        action.request = _request(action, _context(action, alert.case.name))
        ActionRun.objects.filter(pk=action.pk).update(request=action.request)
        _timeline(incident.pk, _planned_text(action))
        planned.append(action)
    ids = [a.pk for a in planned]
    if ids:
        transaction.on_commit(lambda: _enqueue(ids))
    return planned


def actions_plan_many(*, alerts: list[Alert], now: datetime | None = None) -> list[ActionRun]:
    """actions_plan() of many judged alerts (the post-run pipeline's batch): with no
    enabled policy nothing is read per alert; otherwise one query finds the alerts in
    trouble that belong to an open incident, and only those are planned."""
    troubled = {a.pk: a for a in alerts if a.is_problem}
    if not troubled or not ActionPolicy.objects.filter(enabled=True).exists():
        return []
    members = set(
        IncidentMember.objects.filter(
            alert_id__in=list(troubled), left_at=None, incident__state=IncidentState.OPEN
        ).values_list("alert_id", flat=True)
    )
    planned: list[ActionRun] = []
    for alert_id in sorted(members):
        planned += actions_plan(alert=troubled[alert_id], now=now)
    return planned


def _context(action: ActionRun, case: str) -> dict[str, str]:
    incident = action.incident
    return {
        "INCIDENT": str(incident.pk),
        "CATEGORY": incident.category,
        "COMPONENT": incident.component,
        "CLUSTER": action.cluster.name,
        "CASE": case,
        "SEVERITY": action.severity,
        "TITLE": incident.title,
    }


def _request(action: ActionRun, context: dict[str, str]) -> dict[str, Any]:
    """What the action sends, rendered now with the incident's context (shown in the
    admin, and sent as it is once approved)."""
    policy = action.policy
    request: dict[str, Any] = {"context": context}
    if policy.action == ActionKind.WEBHOOK:
        request["webhook"] = {
            "url": policy.webhook_url,
            "body": executors.webhook_body(context, policy.name, action.pk),
        }
    elif policy.action == ActionKind.JOB:
        request["job"] = executors.job_manifest(
            template=policy.job_template,
            namespace=policy.job_namespace,
            context=context,
            action_id=action.pk,
        )
    return request


def _what(action: ActionRun) -> Said:
    if action.kind == ActionKind.WEBHOOK:
        return say(m.WHAT_WEBHOOK, url=action.policy.webhook_url)
    if action.kind == ActionKind.JOB:
        return say(m.WHAT_JOB, cluster=action.cluster.name, namespace=action.policy.job_namespace)
    return say(m.WHAT_NONE)


def _planned_text(action: ActionRun) -> Said:
    what = _what(action)
    if action.state == ActionState.RATE_LIMITED:
        text = say(
            m.RATE_LIMITED,
            what=what,
            count=action.policy.rate_limit_count,
            minutes=action.policy.rate_limit_minutes,
        )
    elif action.state == ActionState.DRY_RUN:
        text = say(m.DRY_RUN, what=what)
    elif action.state == ActionState.AWAITING_APPROVAL:
        text = say(m.AWAITING, what=what)
    elif not action.kind:
        text = say(m.NOTIFY_ONLY)
    else:
        text = say(m.QUEUED, what=what)
    return say(
        m.PLANNED,
        policy=action.policy.name,
        severity=word(SEVERITY, action.severity),
        cluster=action.cluster.name,
        text=text,
    )


def action_deliver(*, action_id: int) -> ActionRun:
    """Send the policy's notifications and pages (once), then run the action if it is
    queued (claimed by a conditional update, so it runs once)."""
    action = ActionRun.objects.select_related("policy", "incident", "cluster").get(pk=action_id)
    if ActionRun.objects.filter(pk=action_id, announced_at=None).update(
        announced_at=timezone.now()
    ):
        _announce(action)
    if not ActionRun.objects.filter(pk=action_id, state=ActionState.QUEUED).update(
        state=ActionState.RUNNING
    ):
        action.refresh_from_db()
        return action
    ok, outcome = _act(action)
    ActionRun.objects.filter(pk=action_id).update(
        state=ActionState.SUCCEEDED if ok else ActionState.FAILED,
        outcome=outcome,
        finished_at=timezone.now(),
    )
    if action.kind:
        done = m.SUCCEEDED if ok else m.FAILED
        what = _what(action)
        _timeline(
            action.incident_id, say(done, policy=action.policy.name, what=what, outcome=outcome)
        )
    action.refresh_from_db()
    return action


def _act(action: ActionRun) -> tuple[bool, str]:
    if action.kind == ActionKind.WEBHOOK:
        webhook = action.request["webhook"]
        return executors.call_webhook(
            url=webhook["url"], secret=action.policy.webhook_secret, body=webhook["body"]
        )
    if action.kind == ActionKind.JOB:
        return executors.create_job(cluster=action.cluster, manifest=action.request["job"])
    return True, "nothing to run"


def _announce(action: ActionRun) -> None:
    policy, incident = action.policy, action.incident
    sends = [(c, action.severity, False) for c in policy.notify_channels.all()]
    sends += [(c, Severity.CRITICAL, True) for c in policy.escalate_channels.all()]
    for channel, severity, paged in sends:
        names = {"policy": policy.name, "channel": channel.name}
        try:
            with translation.override(channel.language):  # the message and the transport's words
                transport = transports.get(channel.kind)(json.loads(channel.config_json or "{}"))
                transport.send(_incident_message(action, severity))
        except transports.TransportError as exc:
            _timeline(
                incident.pk, say(m.NOT_PAGED if paged else m.NOT_NOTIFIED, **names, error=str(exc))
            )
            continue
        sent = say(m.PAGED if paged else m.NOTIFIED, **names, severity=word(SEVERITY, severity))
        _timeline(incident.pk, sent)


def _incident_message(action: ActionRun, severity: str) -> transports.Message:
    """What a policy's channel receives about the incident, in the active language."""
    incident = action.incident
    title = render_field(incident, "title")
    cause = incident.get_category_display() if incident.category else gettext("not known yet")
    if incident.component:
        cause = f"{cause} ({incident.component})"
    summary = render_known(incident.summary)
    return transports.Message(
        event="firing",
        severity=severity,
        case=action.request.get("context", {}).get("CASE", ""),
        title=gettext("Incident #%(id)s: %(title)s") % {"id": incident.pk, "title": title},
        text=f"{title}\n" + gettext("Root cause: %(cause)s") % {"cause": cause} + f"\n{summary}",
        diagnosis=summary or incident.category,
        items=(
            transports.placeholder_item(
                f"{incident.ref}:{action.cluster.name}", cluster=action.cluster.name
            ),
        ),
        root_cause=incident.category,
        incident=incident.ref,
    )


def action_approve(*, action_id: int, user: Any) -> bool:
    """A disruptive action approved: queued, and delivered after commit. False if it was
    not waiting (approved or rejected already)."""
    with transaction.atomic():
        done = ActionRun.objects.filter(pk=action_id, state=ActionState.AWAITING_APPROVAL).update(
            state=ActionState.QUEUED, approved_by=user
        )
        if done:
            action = ActionRun.objects.select_related("policy", "cluster").get(pk=action_id)
            _timeline(
                action.incident_id, say(m.APPROVED, user=str(user), what=_what(action)), user=user
            )
            transaction.on_commit(lambda: _enqueue([action_id]))
    return bool(done)


def action_reject(*, action_id: int, user: Any) -> bool:
    with transaction.atomic():
        done = ActionRun.objects.filter(pk=action_id, state=ActionState.AWAITING_APPROVAL).update(
            state=ActionState.REJECTED, approved_by=user, finished_at=timezone.now()
        )
        if done:
            action = ActionRun.objects.select_related("policy", "cluster").get(pk=action_id)
            _timeline(
                action.incident_id, say(m.REJECTED, user=str(user), what=_what(action)), user=user
            )
    return bool(done)
