"""From flips to messages: claim, group, route, send, retry.

1. `flips_deliver()` claims unprocessed flips older than the group wait with
   one conditional UPDATE (`FOR UPDATE SKIP LOCKED`, `processed_at IS NULL`),
   so racing workers never take the same flip. Flips of one case with the same
   event and severity become one message listing the clusters; each enabled
   channel whose severities and matchers route it gets a Notification row, in
   the same transaction as the claim.
2. `notification_send()` claims one notification (pending/retrying → sending,
   with a lease) and sends it through its channel's transport. Transient
   errors retry with backoff; a permanent one disables the channel and says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from apps.alerts.matchers import matches
from apps.alerts.models import (
    Alert,
    AlertFlip,
    AlertState,
    AlertTimeline,
    Channel,
    FlipEvent,
    Notification,
    NotificationStatus,
    TimelineKind,
)
from apps.alerts.services import active_silences, silence_for, targets_of
from apps.alerts.transports import base as transports

logger = logging.getLogger(__name__)

# Alertmanager's group_wait: once the oldest flip of a group (case, event, severity)
# has waited long enough, the whole group goes, younger members included.
_CLAIM_SQL = """
UPDATE alerts_alertflip SET processed_at = %s
WHERE id IN (
    SELECT f.id FROM alerts_alertflip f JOIN alerts_alert a ON a.id = f.alert_id
    WHERE f.processed_at IS NULL AND (a.case_id, f.event, f.severity) IN (
        SELECT a2.case_id, f2.event, f2.severity
        FROM alerts_alertflip f2 JOIN alerts_alert a2 ON a2.id = f2.alert_id
        WHERE f2.processed_at IS NULL AND f2.created_at <= %s
    )
    ORDER BY f.created_at, f.id
    LIMIT %s
    FOR UPDATE OF f SKIP LOCKED
)
RETURNING id
"""
CLAIM_BATCH = 1000
VERBS = {
    FlipEvent.FIRING: "failing",
    FlipEvent.RESOLVED: "recovered",
    FlipEvent.FLAPPING: "flapping",
    FlipEvent.ACKNOWLEDGED: "acknowledged",
    FlipEvent.ESCALATED: "escalated",
    FlipEvent.SILENCED: "silenced",
    FlipEvent.TEST: "test",
}


def run_url(run_id: int | None) -> str:
    if run_id is None:
        return ""
    return settings.KUBEPROBE_PUBLIC_URL + reverse("admin:runs_proberun_change", args=[run_id])


def fingerprint(case_id: int, cluster_id: int) -> str:
    """Stable id of one (case, cluster) alert for receivers that deduplicate."""
    raw = f"{settings.KUBEPROBE_INSTALLATION}:{case_id}:{cluster_id}"
    return hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()


# ------------------------------------------------------------------ claim and route


def _claim(now: datetime) -> list[int]:
    ready = now - timedelta(seconds=settings.KUBEPROBE_ALERT_GROUP_WAIT_SECONDS)
    if connection.vendor != "postgresql":  # SQLite trials: one process, no SKIP LOCKED
        pending = AlertFlip.objects.filter(processed_at=None).order_by("created_at", "id")
        key = ("alert__case_id", "event", "severity")
        ready_groups = set(pending.filter(created_at__lte=ready).values_list(*key))
        ids = [
            pk for pk, *group in pending.values_list("pk", *key) if tuple(group) in ready_groups
        ][:CLAIM_BATCH]
        AlertFlip.objects.filter(pk__in=ids, processed_at=None).update(processed_at=now)
        return ids
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [now, ready, CLAIM_BATCH])
        return [row[0] for row in cursor.fetchall()]


def _routes(channel: Channel, flip: AlertFlip, target: Any) -> bool:
    if channel.severities and flip.severity not in channel.severities:
        return False
    if flip.event == FlipEvent.RESOLVED and not channel.send_resolved:
        return False
    return matches(channel.matchers or [], target)


def flips_deliver(*, now: datetime | None = None, send: bool = True) -> list[int]:
    """Claim ready flips, turn them into notifications; send them after commit."""
    now = now or timezone.now()
    created: list[int] = []
    with transaction.atomic():
        claimed = _claim(now)
        if not claimed:
            return []
        flips = list(
            AlertFlip.objects.filter(pk__in=claimed, notify=True)
            .select_related("alert__case", "alert__cluster")
            .order_by("created_at", "id")
        )
        channels = list(Channel.objects.filter(enabled=True))
        targets = targets_of([(f.alert.case, f.alert.cluster) for f in flips])
        silences = active_silences(now)
        # A group never holds one alert twice: when delivery fell behind, an alert's
        # second firing (a new episode) goes in a later message, after its recovery.
        groups: dict[tuple[int, str, str, int], list[tuple[AlertFlip, Any]]] = defaultdict(list)
        episodes: dict[tuple[int, str], int] = defaultdict(int)
        quiet: list[AlertTimeline] = []
        for flip in flips:
            alert = flip.alert
            target = targets[(alert.case_id, alert.cluster_id)]
            silence = (
                silence_for(target, silences)
                if flip.event in (FlipEvent.FIRING, FlipEvent.ESCALATED)
                else None
            )
            if silence is not None:  # silenced after the flip was written
                until = f"{silence.ends_at:%Y-%m-%d %H:%M} UTC"
                quiet.append(
                    AlertTimeline(
                        alert=alert,
                        kind=TimelineKind.NOTE,
                        text=f"{flip.event} not notified: silenced until {until}",
                        at=now,
                    )
                )
                continue
            episode = episodes[(alert.pk, flip.event)]
            episodes[(alert.pk, flip.event)] += 1
            groups[(alert.case_id, flip.event, flip.severity, episode)].append((flip, target))
        AlertTimeline.objects.bulk_create(quiet)
        for (_, event, severity, _episode), members in groups.items():
            for channel in channels:
                routed = [flip for flip, target in members if _routes(channel, flip, target)]
                if not routed:
                    continue
                notification = Notification.objects.create(
                    channel=channel,
                    event=event,
                    severity=severity,
                    title=title_of(routed)[:500],
                    created_at=now,
                )
                notification.flips.set(routed)
                created.append(notification.pk)
        if send and created:
            transaction.on_commit(lambda: notifications_send(created))
    return created


def next_ready_in(now: datetime | None = None) -> float | None:
    """Seconds until the oldest unclaimed flip is ready, or None when there is none."""
    now = now or timezone.now()
    oldest = (
        AlertFlip.objects.filter(processed_at=None)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if oldest is None:
        return None
    ready_at = oldest + timedelta(seconds=settings.KUBEPROBE_ALERT_GROUP_WAIT_SECONDS)
    return max(0.0, (ready_at - now).total_seconds())


# ------------------------------------------------------------------ messages


def title_of(flips: list[AlertFlip]) -> str:
    first = flips[0]
    case = first.alert.case.name
    verb = VERBS.get(FlipEvent(first.event), first.event)
    clusters = sorted(f.alert.cluster.name for f in flips)
    where = (
        clusters[0]
        if len(clusters) == 1
        else f"{len(clusters)} clusters ({', '.join(clusters[:5])}{'…' if len(clusters) > 5 else ''})"
    )
    title = f"[{first.severity}] {case} {verb} on {where}"
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
        f"{a.case.name} on {a.cluster.name}"
        for a in quiet
        if (a.suppressed_by, a.cluster_id) in pairs
    ]
    return (
        ("also failing, not notified because they depend on this: " + ", ".join(lines))
        if lines
        else ""
    )


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
        )
        for f in flips
    )
    notes = [n for n in dict.fromkeys(f.note for f in flips) if n]
    fired = _undelivered_firings(notification)
    if fired:
        notes.append(
            f"fired {', '.join(f'{t:%Y-%m-%d %H:%M:%S}' for t in fired)} UTC, "
            f"recovered {first.created_at:%Y-%m-%d %H:%M:%S} UTC "
            "(the failure notice could not be delivered to this channel)"
        )
    if first.event == FlipEvent.FIRING:
        dependents = _dependents_note(flips)
        if dependents:
            notes.append(dependents)
    hint = next((f.alert.hint for f in flips if f.alert.hint), "")
    lines = [
        notification.title,
        f"Case: {first.alert.case.name}   Severity: {first.severity}   Event: {first.event}",
    ]
    if first.alert.reason and first.event != FlipEvent.RESOLVED:
        lines.append(f"Why: {first.alert.reason}")
    for item in items:
        detail = ": ".join(p for p in (item.step, item.error) if p)
        lines.append(
            f"- {item.cluster}"
            + (f" — {detail}" if detail and first.event != FlipEvent.RESOLVED else "")
        )
        if item.run_url:
            lines.append(f"  run: {item.run_url}")
    if hint and first.event != FlipEvent.RESOLVED:
        lines.append(f"Likely cause: {hint}")
    lines += notes
    return transports.Message(
        event=first.event,
        severity=first.severity,
        case=first.alert.case.name,
        title=notification.title,
        text="\n".join(lines),
        hint=hint,
        items=items,
        note="\n".join(notes),
        portal_url=settings.KUBEPROBE_PUBLIC_URL + reverse("admin:alerts_alert_changelist"),
        ended_at=first.created_at if first.event == FlipEvent.RESOLVED else None,
    )


# ------------------------------------------------------------------ sending


def _claim_notification(notification_id: int, now: datetime) -> Notification | None:
    lease = now + timedelta(seconds=settings.KUBEPROBE_NOTIFY_LEASE_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimable = Q(status__in=[NotificationStatus.PENDING, NotificationStatus.RETRYING]) | Q(
        status=NotificationStatus.SENDING  # a sender died mid-send: its lease ran out
    )
    claimed = Notification.objects.filter(due & claimable, pk=notification_id).update(
        status=NotificationStatus.SENDING, attempts=F("attempts") + 1, next_attempt_at=lease
    )
    if not claimed:
        return None
    return Notification.objects.select_related("channel").get(pk=notification_id)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 5 * 2 ** (attempts - 1)))


def notification_send(notification_id: int, *, now: datetime | None = None) -> str | None:
    """Send one notification if it is due and nobody else is sending it; its new status."""
    now = now or timezone.now()
    notification = _claim_notification(notification_id, now)
    if notification is None:
        return None
    ahead = _unsent_before(notification)
    if ahead is not None:
        # A receiver must hear a failure before the recovery that ends it: wait for
        # the older message of the same alerts (retrying while the channel is down).
        Notification.objects.filter(pk=notification.pk).update(
            status=(
                NotificationStatus.RETRYING
                if notification.attempts > 1
                else NotificationStatus.PENDING
            ),
            attempts=F("attempts") - 1,
            next_attempt_at=max(ahead.next_attempt_at or now, now) + timedelta(seconds=1),
        )
        return NotificationStatus.PENDING
    if _superseded(notification):
        # A late retry must not undo what receivers already heard (a "firing" retried
        # after the "resolved" would reopen a PagerDuty incident for good).
        Notification.objects.filter(pk=notification.pk).update(
            status=NotificationStatus.SKIPPED,
            error="superseded: a newer notification of its alerts was already sent",
            next_attempt_at=None,
        )
        return NotificationStatus.SKIPPED
    return _attempt(notification, lambda: message_of(notification), retry=True)


def _unsent_before(notification: Notification) -> Notification | None:
    """An older notification on the same channel, about some of the same alerts,
    that is still to be sent (or being sent by another worker)."""
    return (
        Notification.objects.filter(
            channel_id=notification.channel_id,
            pk__lt=notification.pk,
            status__in=[
                NotificationStatus.PENDING,
                NotificationStatus.RETRYING,
                NotificationStatus.SENDING,
            ],
            flips__alert_id__in=notification.flips.values("alert_id"),
        )
        .order_by("pk")
        .first()
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


def _superseded(notification: Notification) -> bool:
    """Every alert it covers already had a newer notification sent on the same channel."""
    mine = set(notification.flips.values_list("alert_id", flat=True))
    if not mine:
        return False
    newer = set(
        Notification.objects.filter(
            channel_id=notification.channel_id,
            pk__gt=notification.pk,
            status=NotificationStatus.SENT,
            flips__alert_id__in=mine,
        ).values_list("flips__alert_id", flat=True)
    )
    return mine <= newer


def channel_send_test(*, channel_id: int) -> Notification:
    """The admin's "send test": a test message through the real transport and recording
    (a permanent refusal disables the channel), without retries."""
    channel = Channel.objects.get(pk=channel_id)
    portal = settings.KUBEPROBE_PUBLIC_URL + reverse("admin:alerts_alert_changelist")
    message = transports.make_test_message(portal_url=portal)
    notification = Notification.objects.create(
        channel=channel,
        event=FlipEvent.TEST,
        severity=message.severity,
        title=message.title,
        status=NotificationStatus.SENDING,
        attempts=1,
    )
    _attempt(notification, lambda: message, retry=False)
    notification.refresh_from_db()
    return notification


def _attempt(
    notification: Notification, build: Callable[[], transports.Message], *, retry: bool
) -> str:
    channel = notification.channel
    started = time.monotonic()
    status, error, permanent, wait = NotificationStatus.SENT, "", False, 0.0
    try:
        transport = transports.get(channel.kind)(json.loads(channel.config_json or "{}"))
        transport.send(build())
    except transports.PermanentError as exc:
        status, error, permanent = NotificationStatus.FAILED, str(exc), True
    except Exception as exc:  # transient, or a bug: retry either way, never lose the message
        if isinstance(exc, transports.TransientError):
            error, wait = str(exc), exc.retry_after or 0.0
        else:
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            logger.exception("sending notification %s failed unexpectedly", notification.pk)
        again = retry and notification.attempts < settings.KUBEPROBE_NOTIFY_MAX_ATTEMPTS
        status = NotificationStatus.RETRYING if again else NotificationStatus.FAILED
    duration = int((time.monotonic() - started) * 1000)
    done = timezone.now()
    delay = max(backoff(notification.attempts), timedelta(seconds=min(wait, 3600)))
    with transaction.atomic():
        Notification.objects.filter(pk=notification.pk).update(
            status=status,
            error=error[:2000],
            duration_ms=duration,
            sent_at=done if status == NotificationStatus.SENT else None,
            next_attempt_at=done + delay if status == NotificationStatus.RETRYING else None,
        )
        if permanent:  # the receiver refused for good (bad URL, revoked token): stop trying
            Channel.objects.filter(pk=channel.pk).update(
                enabled=False, disabled_reason=f"{done:%Y-%m-%d %H:%M} UTC: {error}"[:2000]
            )
        text = {
            NotificationStatus.SENT: f"notified via {channel.name} in {duration} ms",
            NotificationStatus.RETRYING: (
                f"sending via {channel.name} failed (attempt {notification.attempts}), "
                f"will retry: {error}"
            ),
            NotificationStatus.FAILED: f"sending via {channel.name} failed for good: {error}",
        }[status]
        alert_ids = notification.flips.values_list("alert_id", flat=True).distinct()
        AlertTimeline.objects.bulk_create(
            AlertTimeline(alert_id=alert_id, kind=TimelineKind.NOTIFICATION, text=text, at=done)
            for alert_id in alert_ids
        )
    return status


SEND_THREADS = 8


def notifications_send(ids: list[int]) -> None:
    """Send after commit: channels in parallel (each mostly waits on a receiver), but
    one channel's notifications in the order they were made, so a receiver never hears
    a "resolved" before the "firing" it ends."""
    by_channel: dict[int, list[int]] = defaultdict(list)
    for notification_id, channel_id in (
        Notification.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "channel_id")
    ):
        by_channel[channel_id].append(notification_id)
    queues = list(by_channel.values())
    if len(queues) <= 1:
        for queue in queues:
            for notification_id in queue:
                notification_send(notification_id)
        return

    def send(queue: list[int]) -> None:
        try:
            for notification_id in queue:
                notification_send(notification_id)
        finally:
            connection.close()  # each thread has its own connection

    with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(queues))) as pool:
        list(pool.map(send, queues))


def notifications_retry_due(*, now: datetime | None = None) -> int:
    """Send notifications whose retry time came, and those whose sender died."""
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(
            status__in=[
                NotificationStatus.PENDING,
                NotificationStatus.RETRYING,
                NotificationStatus.SENDING,
            ],
            next_attempt_at__lte=now,
        )
        .order_by("pk")  # oldest first: a recovery may be waiting behind its failure
        .values_list("pk", flat=True)[:500]
    )
    stuck_pending = list(
        Notification.objects.filter(
            status=NotificationStatus.PENDING,
            next_attempt_at__isnull=True,
            created_at__lte=now - timedelta(seconds=30),
        ).values_list("pk", flat=True)[:500]
    )
    for notification_id in due + stuck_pending:
        notification_send(notification_id, now=now)
    return len(due) + len(stuck_pending)


def notifications_resend(*, now: datetime | None = None) -> list[int]:
    """Send still-firing alerts again to receivers that forget unrepeated alerts
    (Alertmanager resolves an alert it has not heard of for a while)."""
    now = now or timezone.now()
    created: list[int] = []
    for channel in Channel.objects.filter(enabled=True):
        transport = transports.get(channel.kind)(json.loads(channel.config_json or "{}"))
        interval = transport.resend_interval()
        if not interval:
            continue
        last_sent = (
            Notification.objects.filter(
                channel=channel, flips__alert=OuterRef("pk"), status=NotificationStatus.SENT
            )
            .order_by("-created_at")
            .values("created_at")[:1]
        )
        latest_firing = (
            AlertFlip.objects.filter(alert=OuterRef("pk"), event=FlipEvent.FIRING)
            .order_by("-created_at", "-id")
            .values("pk")[:1]
        )
        due = (
            Alert.objects.filter(
                state__in=(AlertState.FIRING, AlertState.ACKNOWLEDGED),
                flapping_since=None,
                suppressed_by="",
            )
            .annotate(last_sent=Subquery(last_sent), flip_id=Subquery(latest_firing))
            .filter(last_sent__lt=now - timedelta(seconds=interval), flip_id__isnull=False)
            .values_list("case_id", "severity", "flip_id")
        )
        groups: dict[tuple[int, str], list[int]] = defaultdict(list)
        for case_id, severity, flip_id in due:
            groups[(case_id, severity)].append(flip_id)
        with transaction.atomic():
            for (_, severity), flip_ids in groups.items():
                flips = list(
                    AlertFlip.objects.filter(pk__in=flip_ids).select_related(
                        "alert__case", "alert__cluster"
                    )
                )
                notification = Notification.objects.create(
                    channel=channel,
                    event=FlipEvent.FIRING,
                    severity=severity,
                    title=("(still firing) " + title_of(flips))[:500],
                    created_at=now,
                )
                notification.flips.set(flips)
                created.append(notification.pk)
    notifications_send(created)
    return created
