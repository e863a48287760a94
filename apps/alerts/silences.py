"""Silence writes: create, update, expire, and silencing the firing alerts they match."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.alerts.models import Alert, AlertState, FlipEvent, Silence
from apps.alerts.said import silenced_note
from apps.alerts.selectors import active_silences, silence_for, targets_of
from apps.alerts.services import _move_to, alert_change


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
        if silence is not None:
            silence_it = partial(_silence, silence=silence, now=now)
            count += alert_change(candidate.pk, silence_it, state=AlertState.FIRING) is not None
    return count


def _silence(alert: Alert, silence: Silence, now: datetime) -> bool:
    note = silenced_note(silence)
    _move_to(alert, AlertState.SILENCED, event=FlipEvent.SILENCED, notify=False, note=note, now=now)
    return True


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
