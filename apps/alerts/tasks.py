"""Celery entry points of alerting: thin, ids in, services do the work."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import shared_task

from apps.alerts import delivery, judging, sending, services, silences, sweeps

logger = logging.getLogger(__name__)


def _guarded(what: str, step: Callable[[], Any]) -> None:
    # One failing pair or step must not cost the others their turn.
    try:
        step()
    except Exception:
        logger.exception("alerting: %s failed", what)


@shared_task(name="apps.alerts.tasks.evaluate_alerts", acks_late=True, ignore_result=True)
def evaluate_alerts(pairs: list[tuple[int, int]]) -> None:
    """Re-judge many (case, cluster) pairs: what the report path hands off in bulk."""
    for case_id, cluster_id in pairs:
        _guarded(
            f"judging case {case_id} on cluster {cluster_id}",
            partial(services.alert_evaluate, case_id=case_id, cluster_id=cluster_id),
        )


@shared_task(name="apps.alerts.tasks.judge_finished_runs", ignore_result=True)
def judge_finished_runs() -> int:
    """The post-run pipeline's guarantee: judge finished runs the watermark has not passed."""
    return judging.finished_runs_judge()


@shared_task(name="apps.alerts.tasks.deliver_flips", acks_late=True, ignore_result=True)
def deliver_flips() -> int:
    """Claim ready flips and send their notifications; racing copies share the work."""
    from django.core.cache import cache

    cache.delete(services.DELIVERY_SCHEDULED)  # flips from now on schedule anew
    count = len(delivery.flips_deliver())
    later = delivery.next_ready_in()
    if later is not None:
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
