"""From flips to notifications: claim ready flips, group them, route them to channels.

`flips_deliver()` claims unprocessed flips older than the group wait with
one conditional UPDATE (`FOR UPDATE SKIP LOCKED`, `processed_at IS NULL`),
so racing workers never take the same flip. Flips of one case with the same
event and severity become one message listing the clusters; flips of alerts
in one open incident (Alert.incident_ref, set by apps/diagnosis) become one
message whatever their case; each enabled
channel whose severities and matchers route it gets a Notification row, in
the same transaction as the claim. Sending is apps/alerts/sending.py.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone, translation

from apps.alerts.matchers import matches
from apps.alerts.messages import title_of
from apps.alerts.models import (
    AlertFlip,
    AlertTimeline,
    Channel,
    FlipEvent,
    Notification,
    TimelineKind,
)
from apps.alerts.said import EVENT, QUIET_SILENCED
from apps.alerts.selectors import active_silences, silence_for, targets_of
from apps.alerts.sending import notifications_send
from apps.core.said import say, stored, word

# Alertmanager's group_wait: once the oldest flip of a group (incident or case, event,
# severity) has waited long enough, the whole group goes, younger members included.
_CLAIM_SQL = """
UPDATE alerts_alertflip SET processed_at = %s
WHERE id IN (
    SELECT f.id FROM alerts_alertflip f JOIN alerts_alert a ON a.id = f.alert_id
    WHERE f.processed_at IS NULL
    AND (COALESCE(NULLIF(a.incident_ref, ''), a.case_id::text), f.event, f.severity) IN (
        SELECT COALESCE(NULLIF(a2.incident_ref, ''), a2.case_id::text), f2.event, f2.severity
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


def _claim(now: datetime) -> list[int]:
    ready = now - timedelta(seconds=settings.KUBEPROBE_ALERT_GROUP_WAIT_SECONDS)
    if connection.vendor != "postgresql":  # SQLite trials: one process, no SKIP LOCKED
        pending = AlertFlip.objects.filter(processed_at=None).order_by("created_at", "id")
        key = ("alert__incident_ref", "alert__case_id", "event", "severity")

        def group(ref: str, case_id: int, *rest: str) -> tuple[object, ...]:
            return (ref or str(case_id), *rest)

        ready_groups = {
            group(*row) for row in pending.filter(created_at__lte=ready).values_list(*key)
        }
        ids = [pk for pk, *row in pending.values_list("pk", *key) if group(*row) in ready_groups][
            :CLAIM_BATCH
        ]
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
        groups: dict[tuple[str, str, str, int], list[tuple[AlertFlip, Any]]] = defaultdict(list)
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
                until = f"{silence.ends_at:%Y-%m-%d %H:%M}"
                text, params = stored(
                    say(QUIET_SILENCED, event=word(EVENT, flip.event), until=until)
                )
                quiet.append(
                    AlertTimeline(
                        alert=alert, kind=TimelineKind.NOTE, text=text, text_params=params, at=now
                    )
                )
                continue
            episode = episodes[(alert.pk, flip.event)]
            episodes[(alert.pk, flip.event)] += 1
            # One message per open incident, else per case.
            by = alert.incident_ref or f"case-{alert.case_id}"
            groups[(by, flip.event, flip.severity, episode)].append((flip, target))
        AlertTimeline.objects.bulk_create(quiet)
        for (_, event, severity, _episode), members in groups.items():
            for channel in channels:
                routed = [flip for flip, target in members if _routes(channel, flip, target)]
                if not routed:
                    continue
                with translation.override(channel.language):  # the title is stored as sent
                    title = title_of(routed)[:500]
                notification = Notification.objects.create(
                    channel=channel, event=event, severity=severity, title=title, created_at=now
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
