"""Alert state machine: evaluation after each run, flips, and human actions (ack, resolve).

Every change happens with the alert's row locked (SELECT … FOR UPDATE), and
every transition writes an AlertFlip in the same transaction; delivery
(apps/alerts/delivery.py) claims the flips afterwards. Concurrent workers
evaluating the same (case, cluster) therefore take turns, and a transition is
recorded once. Timed transitions are in apps/alerts/sweeps.py, silences in
apps/alerts/silences.py, channel configuration in apps/alerts/channels.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.alerts import flip_writes
from apps.alerts.evaluation import Judgement, RuleView, judge
from apps.alerts.models import (
    DEFAULT_FLAP_THRESHOLD,
    DEFAULT_RULE,
    PROBLEM_STATES,
    Alert,
    AlertFlip,
    AlertRule,
    AlertState,
    AlertTimeline,
    FlipEvent,
    Silence,
    TimelineKind,
)
from apps.alerts.selectors import (
    ROOT_CAUSE_FIELDS,
    active_silences,
    firing_dependency,
    recent_runs,
    rule_for,
    silence_for,
    target_of,
)
from apps.alerts.signals import pair_changed
from apps.runs.models import ProbeRun, RootCause, RootCauseSource

logger = logging.getLogger(__name__)


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


def alert_change(alert_id: int, change: Callable[[Alert], bool], **still: Any) -> Alert | None:
    """Lock one alert, let `change` change it (and write its flips), save it.

    `still` filters the locked row again (a concurrent change may have made the
    change moot: then nothing happens). `change` returns whether it changed
    anything; a change is saved, and listeners (dashboards) hear of it once
    committed. Returns the changed alert, or None. Every change outside the
    post-run pipeline goes through here.
    """
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("case", "cluster", "rule")
            .filter(pk=alert_id, **still)
            .first()
        )
        if alert is None or not change(alert):
            return None
        alert.save()
        _announce(alert)
        return alert


def flap_threshold(rule: AlertRule | None) -> int:
    return rule.flap_threshold if rule else DEFAULT_FLAP_THRESHOLD


def _flip(
    alert: Alert,
    *,
    event: str,
    notify: bool,
    note: str = "",
    old: str | None = None,
    run_id: int | None = None,
    now: datetime,
) -> AlertFlip:
    """Record (and have delivered, once committed) an event of the alert in its current
    state, coming from state ``old`` (default: the current one; escalations and the like
    change no state)."""
    old = alert.state if old is None else old
    flip = AlertFlip(
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
    timeline = AlertTimeline(alert=alert, kind=TimelineKind.FLIP, text=text, at=now)
    batch = flip_writes.pending()
    if batch is not None:  # a batch writes its flips together (flip_writes.py)
        batch.flips.append(flip)
        batch.timelines.append(timeline)
        return flip
    flip.save()
    timeline.save()
    transaction.on_commit(schedule_delivery)
    return flip


def _silenced_note(silence: Silence) -> str:
    """What a flip into silence says: until when, and why."""
    return f"silenced until {silence.ends_at:%Y-%m-%d %H:%M} UTC ({silence.comment or silence})"


def _move_to(
    alert: Alert, state: str, *, event: str, notify: bool, note: str, now: datetime
) -> AlertFlip:
    """The alert goes to ``state`` now; the flip records the state it left."""
    old = alert.state
    alert.state = state
    alert.changed_at = now
    return _flip(alert, event=event, old=old, notify=notify, note=note, now=now)


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
    threshold = flap_threshold(rule)
    known = _history(alert)
    if known is not None:
        return known.recent_transitions + 1 > threshold
    recent = AlertFlip.objects.filter(
        alert=alert,
        event__in=(FlipEvent.FIRING, FlipEvent.RESOLVED),
        created_at__gte=now - flip_writes.FLAP_WINDOW,
    ).count()
    return recent + 1 > threshold


def _history(alert: Alert) -> flip_writes.FlipHistory | None:
    """The alert's flip history as the open batch read it beforehand, if it did."""
    batch = flip_writes.pending()
    return batch.history.get(alert.pk) if batch is not None else None


def _start_flapping(alert: Alert, rule: AlertRule | None, now: datetime) -> None:
    alert.flapping_since = now
    threshold = flap_threshold(rule)
    _flip(
        alert,
        event=FlipEvent.FLAPPING,
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
    """Re-judge one (case, cluster) from its recent runs; record and flip what changed.

    The post-run pipeline calls it and pushes the pair to dashboards after.
    """
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
        return alert


def alert_record_verdict(
    *,
    case_id: int,
    cluster_id: int,
    verdict: Judgement,
    severity: str,
    now: datetime | None = None,
) -> Alert:
    """Feed a judgement made outside the run loop (a resident probe's series,
    apps/resident/alerting.py) through the same state machine: flips, flapping,
    silences and channels. No AlertRule is behind it, so no escalation or dependency."""
    given = now
    with transaction.atomic():
        alert = _locked_alert(case_id, cluster_id)
        now = given or timezone.now()
        _apply(alert, None, verdict, now, severity=severity)
        alert.save()
        _announce(alert)
        return alert


def _apply(
    alert: Alert,
    rule: AlertRule | None,
    verdict: Judgement,
    now: datetime,
    severity: str | None = None,
    silences: list[Silence] | None = None,
) -> None:
    """``silences``: the active ones, when the caller read them already (a batch)."""
    old = alert.state
    run_id = verdict.run.id if verdict.run else None
    if verdict.firing:
        alert.rule = rule
        alert.reason = "; ".join(verdict.reasons)
        alert.step, alert.error = verdict.step, verdict.error
        _copy_root_cause(alert, verdict)
        alert.last_run_id = run_id
    if verdict.firing and old == AlertState.OK:
        if silences is None:
            silences = active_silences(now)  # usually none: then the target is not needed
        silence = silence_for(target_of(alert.case, alert.cluster), silences) if silences else None
        dependency = firing_dependency(rule=rule, cluster_id=alert.cluster_id) if rule else None
        flapping = _flapping(alert, rule, now)
        alert.state = AlertState.SILENCED if silence else AlertState.FIRING
        alert.severity = severity or (rule.severity if rule else alert.severity)
        alert.firing_since = now
        alert.changed_at = now
        alert.escalated = False
        alert.suppressed_by = dependency.case.name if dependency else ""
        note = ""
        if silence:
            note = _silenced_note(silence)
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


STALE_SUMMARY = (
    "KubeProbe itself: the probe has not finished a run in time; check the workers, the "
    "cluster's executor and skipped runs on the binding"
)


def _copy_root_cause(alert: Alert, verdict: Judgement) -> None:
    """The alert says what the diagnosis of its run said (the post-run pipeline
    diagnoses a failed run before judging it); a pair that stopped reporting is
    the probe's own trouble."""
    run = verdict.run
    if run is not None and not run.ok:
        for field in ROOT_CAUSE_FIELDS:
            setattr(alert, field, getattr(run, field))
    else:
        stale = "stopped running" in verdict.error
        alert.root_cause = RootCause.PROBE if stale else ""
        alert.root_cause_component = ""
        alert.root_cause_confidence = 0.9 if stale else None
        alert.root_cause_source = RootCauseSource.RULE if stale else ""
        alert.root_cause_summary = STALE_SUMMARY if stale else ""


def _was_notified(alert: Alert) -> bool:
    """Did the current problem get a firing notification (so its end deserves one too)?"""
    known = _history(alert)
    if known is not None:
        return known.last_firing_notified
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

    def acknowledge(alert: Alert) -> bool:
        if alert.state not in (AlertState.FIRING, AlertState.ACKNOWLEDGED):
            raise ValueError(f"only a firing alert can be acknowledged; this one is {alert.state}")
        old = alert.state
        alert.state = AlertState.ACKNOWLEDGED
        alert.ack_note, alert.ack_by, alert.ack_until = note, user, until
        alert.changed_at = now
        expiry = f" until {until:%Y-%m-%d %H:%M} UTC" if until else ""
        _by_hand_note(
            alert, TimelineKind.ACKNOWLEDGED, f"acknowledged by {user}{expiry}", note, user, now
        )
        if old != AlertState.ACKNOWLEDGED:
            _flip(alert, event=FlipEvent.ACKNOWLEDGED, old=old, notify=True, note=note, now=now)
        return True

    return _change_by_hand(alert_id, acknowledge)


def alert_resolve_by_hand(*, alert_id: int, user: Any, note: str = "") -> Alert:
    """Close a problem now; the next failing run opens it again if the rule says so."""
    now = timezone.now()

    def resolve(alert: Alert) -> bool:
        if alert.state not in PROBLEM_STATES:
            raise ValueError("this alert is not open")
        _by_hand_note(alert, TimelineKind.RESOLVED, f"resolved by hand by {user}", note, user, now)
        _resolve(alert, alert.rule, now, note=f"resolved by hand by {user}")
        return True

    return _change_by_hand(alert_id, resolve)


def _by_hand_note(alert: Alert, kind: str, what: str, note: str, user: Any, now: datetime) -> None:
    """The timeline line of a person's action, with their note."""
    text = what + (f": {note}" if note else "")
    AlertTimeline.objects.create(alert=alert, kind=kind, text=text, user=user, at=now)


def _change_by_hand(alert_id: int, change: Callable[[Alert], bool]) -> Alert:
    """alert_change for a person's action: ``change`` refuses with ValueError, so nothing
    back means no such alert."""
    alert = alert_change(alert_id, change)
    if alert is None:
        raise Alert.DoesNotExist(f"no alert {alert_id}")
    return alert


def alert_rule_delete(*, rule: AlertRule) -> None:
    """Delete a rule; the default rule stays, since pairs no other rule covers need it."""
    if rule.name == DEFAULT_RULE:
        raise ValueError(
            "the default rule cannot be deleted: it covers every case and cluster no other "
            "rule does; edit it, or disable it to stop alerting where no rule applies"
        )
    rule.delete()
