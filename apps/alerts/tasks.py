"""Celery entry points of alerting: thin, ids in, services do the work."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task

from apps.alerts import delivery, sending, services, silences, sweeps

logger = logging.getLogger(__name__)


def _guarded(what: str, step: Callable[[], Any]) -> None:
    # One failing pair or step must not cost the others their turn.
    try:
        step()
    except Exception:
        logger.exception("alerting: %s failed", what)


@shared_task(name="apps.alerts.tasks.deliver_flips", acks_late=True, ignore_result=True)
def deliver_flips() -> int:
    """Claim ready flips and send their notifications; racing copies share the work."""
    from django.core.cache import cache

    cache.delete(services.DELIVERY_SCHEDULED)  # flips from now on schedule anew
    count = len(delivery.flips_deliver())
    later = delivery.next_ready_in()
    # Eagerly (tests, trials without a worker) a countdown is ignored: the task
    # would call itself until Python's recursion limit. There the periodic
    # housekeeping sends what is not ready yet.
    if later is not None and not deliver_flips.app.conf.task_always_eager:
        services.schedule_delivery(later)
    return count


@shared_task(name="apps.alerts.tasks.alerts_housekeeping", ignore_result=True)
def alerts_housekeeping() -> None:
    """Timed transitions: acknowledgement expiry, escalation, silences that ended,
    dependencies that recovered, flapping that calmed down, probes gone stale, retries,
    and re-sends to receivers that forget alerts they stop hearing about."""
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("acknowledgement expiry", sweeps.alerts_expire_acknowledgements),
        ("escalation", sweeps.alerts_escalate),
        ("silences", silences.alerts_apply_silences),
        ("quiet alerts", sweeps.alerts_release_quiet),
        ("stale probes", sweeps.alerts_check_stale),
        ("delivery", delivery.flips_deliver),
        ("retries", sending.notifications_retry_due),
        ("re-sends", sending.notifications_resend),
    ]
    for what, step in steps:
        _guarded(what, step)
