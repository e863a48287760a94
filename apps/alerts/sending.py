"""Sending notifications: claim one, send it through its transport, retry, resend.

`notification_send()` claims one notification (pending/retrying → sending,
with a lease) and sends it through its channel's transport. Transient
errors retry with backoff; a permanent one disables the channel and says why.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.alerts.messages import message_of, title_of
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
from apps.alerts.transports import base as transports

logger = logging.getLogger(__name__)


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
    with translation.override(channel.language):
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
        # Every human text of the message and of the transport's payload in the channel's
        # language; machine-readable keys and values stay as they are.
        with translation.override(channel.language):
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
            for (_case, severity), flip_ids in groups.items():
                flips = list(
                    AlertFlip.objects.filter(pk__in=flip_ids).select_related(
                        "alert__case", "alert__cluster"
                    )
                )
                with translation.override(channel.language):
                    title = (_("(still firing) %(title)s") % {"title": title_of(flips)})[:500]
                notification = Notification.objects.create(
                    channel=channel,
                    event=FlipEvent.FIRING,
                    severity=severity,
                    title=title,
                    created_at=now,
                )
                notification.flips.set(flips)
                created.append(notification.pk)
    notifications_send(created)
    return created
