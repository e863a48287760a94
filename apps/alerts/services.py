"""Alert state changes: evaluation after each run, human actions, and timed transitions.

Every change happens with the alert's row locked (SELECT … FOR UPDATE), and
every transition writes an AlertFlip in the same transaction; delivery
(apps/alerts/delivery.py) claims the flips afterwards. Concurrent workers
evaluating the same (case, cluster) therefore take turns, and a transition is
recorded once.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import serializers as drf_serializers
from rest_framework.exceptions import ValidationError as DRFValidationError

from apps.alerts.evaluation import Judgement, RuleView, RunView, judge
from apps.alerts.hints import hint_for
from apps.alerts.matchers import Target, matches
from apps.alerts.models import (
    DEFAULT_RULE,
    PROBLEM_STATES,
    Alert,
    AlertFlip,
    AlertRule,
    AlertState,
    AlertTimeline,
    Channel,
    FlipEvent,
    Severity,
    Silence,
    TimelineKind,
)
from apps.alerts.signals import pair_changed
from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.clusters.selectors import cluster_groups_of
from apps.runs.models import FINISHED_STATES, ProbeRun
from apps.scheduling.models import Binding
from apps.scheduling.services import binding_cases, binding_clusters
from apps.scheduling.services import binding_period as schedule_period

logger = logging.getLogger(__name__)

SPECIFICITY = ("binding", "case", "cluster", "group")
MAX_WINDOW_RUNS = 1000


# ------------------------------------------------------------------ reads


def rule_for(*, case: Case, cluster: Cluster, binding_id: int | None) -> AlertRule | None:
    """The most specific enabled rule: binding, case, cluster, group, then the default."""
    candidates = list(
        AlertRule.objects.filter(enabled=True)
        .filter(
            Q(binding_id=binding_id, binding_id__isnull=False)
            | Q(case=case)
            | Q(cluster=cluster)
            | Q(group__isnull=False)
            | Q(binding__isnull=True, case__isnull=True, cluster__isnull=True, group__isnull=True)
        )
        .order_by("pk")
    )
    group_rules = [r for r in candidates if r.group_id]
    if group_rules:
        mine = {g.pk for g in cluster_groups_of(cluster=cluster, among=_groups_of(group_rules))}
        candidates = [r for r in candidates if not r.group_id or r.group_id in mine]

    def rank(rule: AlertRule) -> int:
        for index, field in enumerate(SPECIFICITY):
            if getattr(rule, f"{field}_id"):
                return index
        return len(SPECIFICITY)

    return min(candidates, key=rank, default=None)


def _groups_of(rules: list[AlertRule]) -> Any:
    from apps.clusters.models import ClusterGroup

    return ClusterGroup.objects.filter(pk__in={r.group_id for r in rules})


def recent_runs(*, case_id: int, cluster_id: int, rule: RuleView, now: datetime) -> list[RunView]:
    """Finished runs, newest first: enough for the rule's counts, or its time window."""
    qs = ProbeRun.objects.filter(
        case_id=case_id, cluster_id=cluster_id, state__in=FINISHED_STATES
    ).order_by("-created_at", "-id")
    limit = rule.runs_needed()
    if rule.window_minutes:
        since = now - timedelta(minutes=rule.window_minutes)
        limit = max(limit, qs.filter(finished_at__gte=since).count())
    fields = ("id", "state", "finished_at", "steps", "errors", "reason", "duration_ms")
    return [RunView(**row) for row in qs.values(*fields)[: min(limit, MAX_WINDOW_RUNS)]]


def targets_of(pairs: list[tuple[Case, Cluster]]) -> dict[tuple[int, int], Target]:
    """What matchers see of many (case, cluster) pairs, in three queries whatever their number."""
    from apps.catalog.models import CaseSetMembership
    from apps.clusters.models import ClusterGroup

    cluster_ids = {cluster.pk for _, cluster in pairs}
    case_ids = {case.pk for case, _ in pairs}
    groups: dict[int, set[str]] = {pk: set() for pk in cluster_ids}
    for cluster_id, name in ClusterGroup.members.through.objects.filter(
        cluster_id__in=cluster_ids
    ).values_list("cluster_id", "clustergroup__name"):
        groups[cluster_id].add(name)
    selectors = list(ClusterGroup.objects.exclude(selector={}).values_list("name", "selector"))
    case_sets: dict[int, set[str]] = {pk: set() for pk in case_ids}
    for case_id, name in CaseSetMembership.objects.filter(case_id__in=case_ids).values_list(
        "case_id", "case_set__name"
    ):
        case_sets[case_id].add(name)
    out = {}
    for case, cluster in pairs:
        labels = dict(cluster.labels or {})
        by_selector = {
            name for name, sel in selectors if all(labels.get(k) == v for k, v in sel.items())
        }
        out[(case.pk, cluster.pk)] = Target(
            cluster=cluster.name,
            case=case.name,
            groups=frozenset(groups[cluster.pk] | by_selector),
            case_sets=frozenset(case_sets[case.pk]),
            labels=labels,
        )
    return out


def target_of(case: Case, cluster: Cluster) -> Target:
    return targets_of([(case, cluster)])[(case.pk, cluster.pk)]


def active_silences(now: datetime | None = None) -> list[Silence]:
    now = now or timezone.now()
    return list(Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).order_by("ends_at"))


def silence_for(target: Target, silences: list[Silence]) -> Silence | None:
    return next((s for s in silences if matches(s.matchers, target)), None)


def active_silence(*, target: Target, now: datetime | None = None) -> Silence | None:
    return silence_for(target, active_silences(now))


def firing_dependency(*, rule: AlertRule, cluster_id: int) -> Alert | None:
    """An alert of a case this rule depends on, in trouble on the same cluster."""
    depends = list(rule.depends_on.values_list("pk", flat=True))
    if not depends:
        return None
    return (
        Alert.objects.filter(case_id__in=depends, cluster_id=cluster_id, state__in=PROBLEM_STATES)
        .select_related("case")
        .first()
    )


# ------------------------------------------------------------------ writes


def _announce(alert: Alert) -> None:
    """Tell listeners (dashboards) the pair changed, once the transaction commits."""
    payload = {
        "alert_id": alert.pk,
        "case_id": alert.case_id,
        "cluster_id": alert.cluster_id,
        "state": alert.state,
        "severity": alert.severity,
        "latest_state": alert.latest_state,
        "latest_run_id": alert.latest_run_id,
    }

    def send() -> None:
        pair_changed.send_robust(sender=Alert, **payload)

    transaction.on_commit(send)


def _locked_alert(case_id: int, cluster_id: int) -> Alert:
    # Insert-if-missing without racing another worker, then lock the row.
    Alert.objects.bulk_create(
        [Alert(case_id=case_id, cluster_id=cluster_id)], ignore_conflicts=True
    )
    return (
        Alert.objects.select_for_update(of=("self",))
        .select_related("case", "cluster", "rule")
        .get(case_id=case_id, cluster_id=cluster_id)
    )


def _flip(
    alert: Alert,
    *,
    event: str,
    old: str,
    notify: bool,
    note: str = "",
    run_id: int | None = None,
    now: datetime,
) -> AlertFlip:
    flip = AlertFlip.objects.create(
        alert=alert,
        event=event,
        old_state=old,
        new_state=alert.state,
        severity=alert.severity,
        run_id=run_id,
        notify=notify,
        note=note,
        created_at=now,
    )
    text = f"{old} → {alert.state} ({event})"
    if note:
        text += f": {note}"
    if not notify:
        text += " [not notified]"
    AlertTimeline.objects.create(alert=alert, kind=TimelineKind.FLIP, text=text, at=now)
    transaction.on_commit(schedule_delivery)
    _announce(alert)
    return flip


DELIVERY_SCHEDULED = "alerts:delivery-scheduled"


def schedule_delivery(delay: float | None = None) -> None:
    """Make sure a delivery runs when the oldest new flip is ready.

    The earliest pending delivery time is kept in Redis: a storm of flips must not
    become a storm of tasks, but a flip that is ready sooner than the pending task
    gets its own. The task clears the key when it starts and schedules the next
    one for whatever it left unclaimed.
    """
    import time

    from django.core.cache import cache

    from apps.alerts.tasks import deliver_flips

    wait = settings.KUBEPROBE_ALERT_GROUP_WAIT_SECONDS if delay is None else delay
    due = time.time() + wait
    try:
        pending = cache.get(DELIVERY_SCHEDULED)
        if pending is not None and pending <= due + 0.05:
            return  # an earlier (or as early) delivery will claim this flip
        cache.set(DELIVERY_SCHEDULED, due, timeout=int(wait) + 30)
        deliver_flips.apply_async(countdown=wait)
    except Exception:  # the periodic delivery picks the flip up; never fail the transition
        logger.warning("could not enqueue alert delivery; the periodic sweep will send it")


def _flapping(alert: Alert, rule: AlertRule | None, now: datetime) -> bool:
    """True when one more transition would make this alert flap (or it already does)."""
    if alert.flapping_since:
        return True
    threshold = rule.flap_threshold if rule else 6
    recent = AlertFlip.objects.filter(
        alert=alert,
        event__in=(FlipEvent.FIRING, FlipEvent.RESOLVED),
        created_at__gte=now - timedelta(hours=1),
    ).count()
    return recent + 1 > threshold


def _start_flapping(alert: Alert, rule: AlertRule | None, now: datetime) -> None:
    alert.flapping_since = now
    threshold = rule.flap_threshold if rule else 6
    _flip(
        alert,
        event=FlipEvent.FLAPPING,
        old=alert.state,
        notify=True,
        note=f"more than {threshold} transitions in an hour; quiet until it is stable",
        now=now,
    )


def alert_evaluate(
    *,
    case_id: int,
    cluster_id: int,
    stale_for: timedelta | None = None,
    now: datetime | None = None,
) -> Alert | None:
    """Re-judge one (case, cluster) from its recent runs; record and flip what changed."""
    given = now
    with transaction.atomic():
        alert = _locked_alert(case_id, cluster_id)
        # After the lock: a worker that waited for it must not date its flip earlier
        # than the flip it waited behind.
        now = given or timezone.now()
        latest_binding = (
            ProbeRun.objects.filter(case_id=case_id, cluster_id=cluster_id)
            .order_by("-created_at", "-id")
            .values_list("binding_id", flat=True)
            .first()
        )
        rule = rule_for(case=alert.case, cluster=alert.cluster, binding_id=latest_binding)
        if rule is None:  # nobody wants alerts here; the dashboards still want the result
            rule_view = RuleView(consecutive_failures=1)
            runs = recent_runs(case_id=case_id, cluster_id=cluster_id, rule=rule_view, now=now)
            if runs:
                alert.latest_run_id, alert.latest_state = runs[0].id, runs[0].state
                alert.latest_duration_ms = runs[0].duration_ms
                alert.last_finished_at = runs[0].finished_at or alert.last_finished_at
            if alert.state in PROBLEM_STATES:  # its rule was disabled or deleted
                _resolve(alert, None, now, note="no enabled rule applies any more")
            alert.save()
            _announce(alert)
            return alert
        view = RuleView.of(rule)
        runs = recent_runs(case_id=case_id, cluster_id=cluster_id, rule=view, now=now)
        if runs:
            newest = runs[0]
            alert.latest_run_id, alert.latest_state = newest.id, newest.state
            alert.latest_duration_ms = newest.duration_ms
            alert.last_finished_at = newest.finished_at or alert.last_finished_at
        verdict = judge(view, runs, now, stale_for)
        _apply(alert, rule, verdict, now)
        alert.save()
        _announce(alert)
        return alert


def _apply(alert: Alert, rule: AlertRule, verdict: Judgement, now: datetime) -> None:
    old = alert.state
    run_id = verdict.run.id if verdict.run else None
    if verdict.firing:
        alert.rule = rule
        alert.reason = "; ".join(verdict.reasons)
        alert.step, alert.error = verdict.step, verdict.error
        alert.hint = hint_for(verdict.error, verdict.run.reason if verdict.run else "")
        alert.last_run_id = run_id
    if verdict.firing and old == AlertState.OK:
        silences = active_silences(now)  # usually none: then the target is not needed
        silence = silence_for(target_of(alert.case, alert.cluster), silences) if silences else None
        dependency = firing_dependency(rule=rule, cluster_id=alert.cluster_id)
        flapping = _flapping(alert, rule, now)
        alert.state = AlertState.SILENCED if silence else AlertState.FIRING
        alert.severity = rule.severity
        alert.firing_since = now
        alert.changed_at = now
        alert.escalated = False
        alert.suppressed_by = dependency.case.name if dependency else ""
        note = ""
        if silence:
            note = f"silenced until {silence.ends_at:%Y-%m-%d %H:%M} UTC ({silence.comment or silence})"
        elif dependency:
            note = (
                f"not notified: it depends on {dependency.case.name}, which is "
                f"{dependency.state} on {alert.cluster.name}"
            )
        if flapping and not alert.flapping_since:
            _start_flapping(alert, rule, now)
        notify = not (silence or dependency or alert.flapping_since)
        _flip(
            alert, event=FlipEvent.FIRING, old=old, notify=notify, note=note, run_id=run_id, now=now
        )
    elif verdict.healthy and old in PROBLEM_STATES:
        _resolve(alert, rule, now, run_id=verdict.run.id if verdict.run else None)


def _was_notified(alert: Alert) -> bool:
    """Did the current problem get a firing notification (so its end deserves one too)?"""
    last = (
        AlertFlip.objects.filter(alert=alert, event=FlipEvent.FIRING)
        .order_by("-created_at", "-id")
        .values_list("notify", flat=True)
        .first()
    )
    return bool(last)


def _last_said(alert: Alert) -> str | None:
    """The last firing/resolved/flapping event receivers were told about, if any."""
    last: str | None = (
        AlertFlip.objects.filter(
            alert=alert,
            notify=True,
            event__in=(FlipEvent.FIRING, FlipEvent.RESOLVED, FlipEvent.FLAPPING),
        )
        .order_by("-created_at", "-id")
        .values_list("event", flat=True)
        .first()
    )
    return last


def _resolve(
    alert: Alert,
    rule: AlertRule | None,
    now: datetime,
    run_id: int | None = None,
    note: str = "",
) -> None:
    old = alert.state
    notify = _was_notified(alert)
    flapping = _flapping(alert, rule, now)
    alert.state = AlertState.OK
    alert.changed_at = now
    if flapping and not alert.flapping_since:
        _start_flapping(alert, rule, now)
    alert.ack_note, alert.ack_by, alert.ack_until = "", None, None
    alert.suppressed_by = ""
    alert.escalated = False
    _flip(
        alert,
        event=FlipEvent.RESOLVED,
        old=old,
        notify=notify and not alert.flapping_since,
        note=note,
        run_id=run_id,
        now=now,
    )
    alert.firing_since = None


def alert_acknowledge(
    *, alert_id: int, user: Any, note: str = "", until: datetime | None = None
) -> Alert:
    """Someone is on it: quiet until `until` (or until it resolves)."""
    now = timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("case", "cluster")
            .get(pk=alert_id)
        )
        if alert.state not in (AlertState.FIRING, AlertState.ACKNOWLEDGED):
            raise ValueError(f"only a firing alert can be acknowledged; this one is {alert.state}")
        old = alert.state
        alert.state = AlertState.ACKNOWLEDGED
        alert.ack_note, alert.ack_by, alert.ack_until = note, user, until
        alert.changed_at = now
        expiry = f" until {until:%Y-%m-%d %H:%M} UTC" if until else ""
        AlertTimeline.objects.create(
            alert=alert,
            kind=TimelineKind.ACKNOWLEDGED,
            text=f"acknowledged by {user}{expiry}" + (f": {note}" if note else ""),
            user=user,
            at=now,
        )
        if old != AlertState.ACKNOWLEDGED:
            _flip(alert, event=FlipEvent.ACKNOWLEDGED, old=old, notify=True, note=note, now=now)
        alert.save()
        return alert


def alert_resolve_by_hand(*, alert_id: int, user: Any, note: str = "") -> Alert:
    """Close a problem now; the next failing run opens it again if the rule says so."""
    now = timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("case", "cluster", "rule")
            .get(pk=alert_id)
        )
        if alert.state not in PROBLEM_STATES:
            raise ValueError("this alert is not open")
        AlertTimeline.objects.create(
            alert=alert,
            kind=TimelineKind.RESOLVED,
            text=f"resolved by hand by {user}" + (f": {note}" if note else ""),
            user=user,
            at=now,
        )
        _resolve(alert, alert.rule, now, note=f"resolved by hand by {user}")
        alert.save()
        return alert


# ------------------------------------------------------------------ timed transitions


def alerts_expire_acknowledgements(*, now: datetime | None = None) -> int:
    """Acknowledgements past their expiry: the alert fires (and notifies) again."""
    now = now or timezone.now()
    count = 0
    due = Alert.objects.filter(state=AlertState.ACKNOWLEDGED, ack_until__lte=now)
    for alert_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            alert = (
                Alert.objects.select_for_update(of=("self",))
                .filter(pk=alert_id, state=AlertState.ACKNOWLEDGED, ack_until__lte=now)
                .first()
            )
            if alert is None:
                continue
            alert.state = AlertState.FIRING
            alert.changed_at = now
            note = (
                f"acknowledgement by {alert.ack_by} expired"
                if alert.ack_by
                else ("acknowledgement expired")
            )
            alert.ack_until = None
            _flip(
                alert,
                event=FlipEvent.FIRING,
                old=AlertState.ACKNOWLEDGED,
                notify=True,
                note=note,
                now=now,
            )
            alert.save()
            count += 1
    return count


def alerts_escalate(*, now: datetime | None = None) -> int:
    """Firing alerts older than their rule's escalation delay get the higher severity."""
    now = now or timezone.now()
    count = 0
    candidates = Alert.objects.filter(
        state=AlertState.FIRING,
        escalated=False,
        rule__escalate_after_minutes__isnull=False,
        rule__enabled=True,
        firing_since__isnull=False,
    ).select_related("rule")
    for candidate in candidates:
        rule = candidate.rule
        assert rule is not None and rule.escalate_after_minutes is not None
        if candidate.firing_since + timedelta(minutes=rule.escalate_after_minutes) > now:  # type: ignore[operator]
            continue
        with transaction.atomic():
            alert = (
                Alert.objects.select_for_update(of=("self",))
                .filter(pk=candidate.pk, state=AlertState.FIRING, escalated=False)
                .first()
            )
            if alert is None:
                continue
            old_severity = alert.severity
            alert.severity = rule.escalate_to
            alert.escalated = True
            _flip(
                alert,
                event=FlipEvent.ESCALATED,
                old=alert.state,
                notify=not alert.flapping_since and not alert.suppressed_by,
                note=f"firing for over {rule.escalate_after_minutes} min: {old_severity} → "
                f"{rule.escalate_to}",
                now=now,
            )
            alert.save()
            count += 1
    return count


def alerts_release_quiet(*, now: datetime | None = None) -> int:
    """Alerts kept quiet by a silence that ended, a dependency that recovered, or flapping
    that calmed down: notify their current state now."""
    now = now or timezone.now()
    count = 0
    quiet = Alert.objects.filter(
        Q(state=AlertState.SILENCED) | ~Q(suppressed_by="") | Q(flapping_since__isnull=False)
    ).select_related("case", "cluster", "rule")
    for candidate in quiet:
        with transaction.atomic():
            alert = (
                Alert.objects.select_for_update(of=("self",))
                .select_related("case", "cluster", "rule")
                .filter(pk=candidate.pk)
                .first()
            )
            if alert is not None and _release_one(alert, now):
                count += 1
    return count


def _release_one(alert: Alert, now: datetime) -> bool:
    rule = alert.rule
    if alert.flapping_since:
        threshold = rule.flap_threshold if rule else 6
        recent = AlertFlip.objects.filter(
            alert=alert,
            event__in=(FlipEvent.FIRING, FlipEvent.RESOLVED),
            created_at__gte=now - timedelta(hours=1),
        ).count()
        if recent > threshold // 2:
            return False
        alert.flapping_since = None
        # Tell receivers the state it settled in: resolved if they last heard firing or
        # flapping (a trigger for some), firing unless they already heard exactly that.
        said = _last_said(alert)
        if alert.state == AlertState.OK and said in (FlipEvent.FIRING, FlipEvent.FLAPPING):
            _flip(
                alert,
                event=FlipEvent.RESOLVED,
                old=alert.state,
                notify=True,
                note="stable again, healthy",
                now=now,
            )
        elif alert.state == AlertState.FIRING and said != FlipEvent.FIRING:
            _flip(
                alert,
                event=FlipEvent.FIRING,
                old=alert.state,
                notify=not alert.suppressed_by,
                note="stable again, still failing",
                now=now,
            )
        alert.save()
        return True
    if alert.state == AlertState.SILENCED:
        if active_silence(target=target_of(alert.case, alert.cluster), now=now):
            return False
        alert.state = AlertState.FIRING
        alert.changed_at = now
        _flip(
            alert,
            event=FlipEvent.FIRING,
            old=AlertState.SILENCED,
            notify=True,
            note="silence ended, still failing",
            now=now,
        )
        alert.save()
        return True
    if alert.suppressed_by:
        dependency = firing_dependency(rule=rule, cluster_id=alert.cluster_id) if rule else None
        if dependency is not None:
            return False
        was = alert.suppressed_by
        alert.suppressed_by = ""
        if alert.state in PROBLEM_STATES:
            _flip(
                alert,
                event=FlipEvent.FIRING,
                old=alert.state,
                notify=True,
                note=f"dependency {was} recovered; this case still fails",
                now=now,
            )
        alert.save()
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
            fired += int(bool(result and result.state != AlertState.OK))
    return fired


def silence_create(
    *,
    matchers: list[dict[str, str]],
    ends_at: datetime,
    starts_at: datetime | None = None,
    comment: str = "",
    user: Any = None,
    event: Any = None,
) -> Silence:
    """A validated silence (ValidationError names the field)."""
    silence = Silence(
        matchers=matchers,
        starts_at=starts_at or timezone.now(),
        ends_at=ends_at,
        comment=comment,
        created_by=user,
        event=event,
    )
    silence.full_clean()
    silence.save()
    if silence.is_active:
        transaction.on_commit(lambda: alerts_apply_silences())
    return silence


def alerts_apply_silences(*, now: datetime | None = None) -> int:
    """Firing alerts that an active silence matches become silenced: recorded, not notified.
    (Alerts that start firing under a silence are silenced at once; this catches silences
    made, or starting, while an alert already fires.)"""
    now = now or timezone.now()
    silences = active_silences(now)
    if not silences:
        return 0
    firing = list(Alert.objects.filter(state=AlertState.FIRING).select_related("case", "cluster"))
    targets = targets_of([(a.case, a.cluster) for a in firing])
    count = 0
    for candidate in firing:
        silence = silence_for(targets[(candidate.case_id, candidate.cluster_id)], silences)
        if silence is None:
            continue
        with transaction.atomic():
            alert = (
                Alert.objects.select_for_update(of=("self",))
                .select_related("case", "cluster")
                .filter(pk=candidate.pk, state=AlertState.FIRING)
                .first()
            )
            if alert is None:
                continue
            alert.state = AlertState.SILENCED
            alert.changed_at = now
            until = f"{silence.ends_at:%Y-%m-%d %H:%M} UTC"
            _flip(
                alert,
                event=FlipEvent.SILENCED,
                old=AlertState.FIRING,
                notify=False,
                note=f"silenced until {until} ({silence.comment or silence})",
                now=now,
            )
            alert.save()
            count += 1
    return count


def silence_update(*, silence: Silence, **fields: Any) -> Silence:
    """Change a silence's matchers, window or comment (ValidationError names the field)."""
    for field, value in fields.items():
        setattr(silence, field, value)
    silence.full_clean()
    silence.save()
    return silence


def silence_expire(*, silence_id: int, now: datetime | None = None) -> Silence:
    """End a silence now. One that has not started yet ends before it starts (its window
    becomes empty, as Alertmanager does); alerts it kept quiet are released by the next
    alerts_release_quiet sweep."""
    now = now or timezone.now()
    with transaction.atomic():
        silence = Silence.objects.select_for_update().get(pk=silence_id)
        if silence.ends_at <= now:
            raise ValueError(
                f"silence {silence.pk} already ended at {silence.ends_at:%Y-%m-%d %H:%M} UTC"
            )
        silence.starts_at = min(silence.starts_at, now)
        silence.ends_at = now
        silence.save(update_fields=["starts_at", "ends_at", "updated_at"])
        return silence


def alert_rule_delete(*, rule: AlertRule) -> None:
    """Delete a rule; the default rule stays, since pairs no other rule covers need it."""
    if rule.name == DEFAULT_RULE:
        raise ValueError(
            "the default rule cannot be deleted: it covers every case and cluster no other "
            "rule does; edit it, or disable it to stop alerting where no rule applies"
        )
    rule.delete()


def channel_save(
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    channel: Channel | None = None,
    commit: bool = True,
    **fields: Any,
) -> Channel:
    """Create or update a channel; the config is validated by its transport and stored
    encrypted. Secret fields left out (or masked) keep their stored value. With
    commit=False the channel is validated and filled in but not saved (admin forms)."""
    from apps.alerts.matchers import validate_matchers
    from apps.alerts.transports import base as transports

    current: dict[str, Any] = {}
    if channel is not None and channel.pk and channel.config_json:
        stored = Channel.objects.filter(pk=channel.pk).values_list("kind", "config_json").first()
        if stored and stored[0] == kind and stored[1]:
            current = json.loads(Channel.objects.get(pk=channel.pk).config_json)
    merged = _merge_masked(current, config, kind)
    try:
        validated = transports.validate_config(kind, merged)
    except DRFValidationError as exc:
        raise ChannelConfigError(exc.detail) from None
    channel = channel or Channel()
    channel.name, channel.kind = name, kind
    channel.config_json = json.dumps(validated, default=str)
    for field, value in fields.items():
        setattr(channel, field, value)
    if channel.matchers:
        try:
            validate_matchers(channel.matchers, allow_empty=True)
        except ValidationError as exc:
            raise ValidationError({"matchers": exc.messages}) from None
    bad = [s for s in channel.severities or [] if s not in Severity.values]
    if not isinstance(channel.severities, list) or bad:
        raise ValidationError(
            {"severities": f"A list of {', '.join(Severity.values)}; unknown: {bad}"}
        )
    if channel.enabled:
        channel.disabled_reason = ""
    channel.full_clean(exclude=["config_json"], validate_unique=commit)
    if commit:
        channel.save()
    return channel


def channel_kinds() -> list[dict[str, Any]]:
    """Every channel kind with its config fields (type, required, secret, default, help),
    so a UI can render the form for it."""
    from apps.alerts.transports import base as transports

    kinds = []
    for kind, label in transports.choices():
        cls = transports.get(kind)
        fields = []
        for name, field in cls.Config().fields.items():
            entry: dict[str, Any] = {
                "name": name,
                "type": _field_type(field),
                "required": bool(field.required),
                "secret": name in cls.secret_fields,
                "help_text": str(field.help_text or ""),
            }
            if field.default is not drf_serializers.empty:
                entry["default"] = field.get_default()
            if isinstance(field, drf_serializers.ChoiceField):
                entry["choices"] = list(field.choices)
            fields.append(entry)
        kinds.append({"kind": kind, "label": label, "fields": fields})
    return kinds


def _field_type(field: Any) -> str:
    from apps.alerts.transports.base import HttpUrlField

    # Subclasses first: a URL or email field is also a CharField.
    for cls, name in (
        (HttpUrlField, "url"),
        (drf_serializers.EmailField, "email"),
        (drf_serializers.ChoiceField, "choice"),
        (drf_serializers.CharField, "string"),
        (drf_serializers.BooleanField, "boolean"),
        (drf_serializers.IntegerField, "integer"),
        (drf_serializers.FloatField, "number"),
        (drf_serializers.ListField, "list"),
        (drf_serializers.DictField, "map"),
    ):
        if isinstance(field, cls):
            return name
    return "string"


class ChannelConfigError(ValidationError):
    """A bad channel kind or config. As a Django ValidationError it names `kind` or
    `config` (sub-fields inside the message, for forms); `detail` keeps the transport's
    nested errors ({"config": {"url": [...]}}) for the API."""

    def __init__(self, detail: Any) -> None:
        if isinstance(detail, dict) and "kind" in detail:
            self.detail: dict[str, Any] = {"kind": detail["kind"]}
        elif isinstance(detail, dict) and set(detail) == {"config"}:
            self.detail = {"config": detail["config"]}
        else:
            self.detail = {"config": detail}
        super().__init__({field: [_flatten(value)] for field, value in self.detail.items()})


def _merge_masked(current: dict[str, Any], sent: Any, kind: str) -> Any:
    """The config to validate: what was sent over what is stored. A value sent back as it
    was shown (••••, a redacted URL, a header map with masked values) keeps the stored one,
    so forms and PATCHes that echo a redacted config never overwrite a secret."""
    from apps.alerts.transports import base as transports

    if not isinstance(sent, dict):
        return sent  # validate_config names it
    shown = transports.redact(current, kind) if current else {}
    merged = dict(current)
    for name, value in sent.items():
        if value == transports.MASK or (name in current and value == shown.get(name)):
            continue
        stored = current.get(name)
        if isinstance(value, dict) and isinstance(stored, dict):
            value = {
                key: stored[key] if item == transports.MASK else item
                for key, item in value.items()
                if item != transports.MASK or key in stored
            }
        merged[name] = value
    return merged


def _flatten(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        return "; ".join(_flatten(v, f"{prefix}{k}: ") for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(v, prefix) for v in detail)
    return f"{prefix}{detail}"
