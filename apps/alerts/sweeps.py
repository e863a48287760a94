"""Timed alert transitions: expired acknowledgements, escalation, released quiet alerts, stale pairs."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from django.db.models import Q
from django.utils import timezone

from apps.alerts import said as m
from apps.alerts.models import PROBLEM_STATES, Alert, AlertFlip, AlertState, FlipEvent
from apps.alerts.selectors import active_silence, firing_dependency, rule_for, target_of
from apps.alerts.services import (
    _announce,
    _flip,
    _last_said,
    _move_to,
    alert_change,
    alert_evaluate,
    flap_threshold,
)
from apps.core.said import say, word
from apps.scheduling.models import Binding
from apps.scheduling.services import binding_cases, binding_clusters
from apps.scheduling.services import binding_period as schedule_period


def alerts_expire_acknowledgements(*, now: datetime | None = None) -> int:
    """Acknowledgements past their expiry: the alert fires (and notifies) again."""
    now = now or timezone.now()

    def expire(alert: Alert) -> bool:
        note = (
            f"acknowledgement by {alert.ack_by} expired"
            if alert.ack_by
            else "acknowledgement expired"
        )
        alert.ack_until = None
        _move_to(alert, AlertState.FIRING, event=FlipEvent.FIRING, notify=True, note=note, now=now)
        return True

    still = {"state": AlertState.ACKNOWLEDGED, "ack_until__lte": now}
    due = Alert.objects.filter(**still).values_list("pk", flat=True)
    return sum(alert_change(alert_id, expire, **still) is not None for alert_id in due)


def alerts_escalate(*, now: datetime | None = None) -> int:
    """Firing alerts older than their rule's escalation delay get the higher severity."""
    now = now or timezone.now()

    def escalate(alert: Alert) -> bool:
        rule = alert.rule
        if rule is None or rule.escalate_after_minutes is None or alert.firing_since is None:
            return False
        if alert.firing_since + timedelta(minutes=rule.escalate_after_minutes) > now:
            return False
        old_severity = alert.severity
        alert.severity = rule.escalate_to
        alert.escalated = True
        _flip(
            alert,
            event=FlipEvent.ESCALATED,
            notify=not alert.flapping_since and not alert.suppressed_by,
            note=say(
                m.ESCALATED,
                minutes=rule.escalate_after_minutes,
                old=word(m.SEVERITY, old_severity),
                new=word(m.SEVERITY, rule.escalate_to),
            ),
            now=now,
        )
        return True

    candidates = Alert.objects.filter(
        state=AlertState.FIRING,
        escalated=False,
        rule__escalate_after_minutes__isnull=False,
        rule__enabled=True,
        firing_since__isnull=False,
    ).select_related("rule")
    count = 0
    for candidate in candidates:
        rule = candidate.rule
        assert rule is not None and rule.escalate_after_minutes is not None
        if candidate.firing_since + timedelta(minutes=rule.escalate_after_minutes) > now:  # type: ignore[operator]
            continue  # not due: no lock taken
        still = {"state": AlertState.FIRING, "escalated": False}
        count += alert_change(candidate.pk, escalate, **still) is not None
    return count


def alerts_release_quiet(*, now: datetime | None = None) -> int:
    """Alerts kept quiet by a silence that ended, a dependency that recovered, or flapping
    that calmed down: notify their current state now."""
    now = now or timezone.now()
    quiet = Alert.objects.filter(
        Q(state=AlertState.SILENCED) | ~Q(suppressed_by="") | Q(flapping_since__isnull=False)
    ).values_list("pk", flat=True)
    return sum(alert_change(pk, partial(_release_one, now=now)) is not None for pk in quiet)


def _release_one(alert: Alert, now: datetime) -> bool:
    rule = alert.rule
    if alert.flapping_since:
        recent = AlertFlip.objects.filter(
            alert=alert,
            event__in=(FlipEvent.FIRING, FlipEvent.RESOLVED),
            created_at__gte=now - timedelta(hours=1),
        ).count()
        if recent > flap_threshold(rule) // 2:
            return False
        alert.flapping_since = None
        # Tell receivers the state it settled in: resolved if they last heard firing or
        # flapping (a trigger for some), firing unless they already heard exactly that.
        said = _last_said(alert)
        if alert.state == AlertState.OK and said in (FlipEvent.FIRING, FlipEvent.FLAPPING):
            _flip(alert, event=FlipEvent.RESOLVED, notify=True, note=say(m.STABLE_HEALTHY), now=now)
        elif alert.state == AlertState.FIRING and said != FlipEvent.FIRING:
            note = say(m.STABLE_FAILING)
            _flip(alert, event=FlipEvent.FIRING, notify=not alert.suppressed_by, note=note, now=now)
        return True
    if alert.state == AlertState.SILENCED:
        if active_silence(target=target_of(alert.case, alert.cluster), now=now):
            return False
        note = say(m.SILENCE_ENDED)
        _move_to(alert, AlertState.FIRING, event=FlipEvent.FIRING, notify=True, note=note, now=now)
        return True
    if alert.suppressed_by:
        dependency = firing_dependency(rule=rule, cluster_id=alert.cluster_id) if rule else None
        if dependency is not None:
            return False
        was = alert.suppressed_by
        alert.suppressed_by = ""
        if alert.state in PROBLEM_STATES:
            note = say(m.DEPENDENCY_RECOVERED, case=was)
            _flip(alert, event=FlipEvent.FIRING, notify=True, note=note, now=now)
        return True
    return False


def alerts_check_stale(*, now: datetime | None = None) -> int:
    """Scheduled (case, cluster) pairs with no finished run for K × their schedule fire."""
    now = now or timezone.now()
    due: dict[tuple[int, int], tuple[timedelta, datetime]] = {}  # pair → (limit, reference)
    for binding in Binding.objects.filter(enabled=True).exclude(interval_seconds=None, cron=""):
        period = schedule_period(binding, now)
        if period is None:
            continue
        clusters = binding_clusters(binding=binding)  # once per binding, not per case
        for case in binding_cases(binding=binding):
            for cluster in clusters:
                rule = rule_for(case=case, cluster=cluster, binding_id=binding.pk)
                if rule is None or rule.stale_factor is None:
                    continue
                limit = period * rule.stale_factor
                key = (case.pk, cluster.pk)
                # A pair that never finished a run is measured from the binding's creation.
                if key not in due or limit < due[key][0]:
                    due[key] = (limit, binding.created_at)
    if not due:
        return 0
    known = {
        (a["case_id"], a["cluster_id"]): a
        for a in Alert.objects.filter(
            case_id__in={k[0] for k in due}, cluster_id__in={k[1] for k in due}
        ).values("case_id", "cluster_id", "last_finished_at", "state")
    }
    fired = 0
    for (case_id, cluster_id), (limit, since) in due.items():
        alert = known.get((case_id, cluster_id))
        if alert and alert["state"] != AlertState.OK:
            continue
        last = (alert["last_finished_at"] if alert else None) or since
        if now - last > limit:
            result = alert_evaluate(
                case_id=case_id, cluster_id=cluster_id, stale_for=now - last, now=now
            )
            if result is not None and result.state != AlertState.OK:
                _announce(result)
                fired += 1
    return fired
