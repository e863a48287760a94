"""Alerting listens to events: an upgrade may open a silence. (Finished runs reach
alerting through the post-run pipeline, apps/postrun.)"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.dispatch import receiver

from apps.alerts import silences
from apps.scheduling.models import Binding, Event
from apps.scheduling.signals import event_recorded

logger = logging.getLogger(__name__)


@receiver(event_recorded, dispatch_uid="alerts.silence_upgrades")
def silence_upgrades(sender: Any, event: Event, bindings: list[Binding], **kwargs: Any) -> None:
    """An upgrade event opens a silence on its cluster when a binding it fires asks for one."""
    if event.kind != "upgrade":
        return
    asked = [b.upgrade_silence_minutes for b in bindings if b.upgrade_silence_minutes]
    if not asked:
        return
    minutes = upgrade_minutes(event.detail, default=max(asked))
    silences.silence_create(
        matchers=[{"name": "cluster", "value": event.cluster.name}],
        starts_at=event.created_at,
        ends_at=event.created_at + timedelta(minutes=minutes),
        comment=f"upgrade{' of ' + event.component if event.component else ''} "
        f"(event {event.pk}), {minutes} min",
        event=event,
    )


def upgrade_minutes(detail: dict[str, Any], default: int) -> int:
    """The event's own duration_minutes when it is a sane number, else the binding's."""
    value = (detail or {}).get("duration_minutes")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 7 * 24 * 60:
        return int(value)
    return default
