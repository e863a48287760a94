"""Celery entry points of resident probes: thin, ids in, services do the work."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(name="apps.resident.tasks.apply_probe", acks_late=True, ignore_result=True)
def apply_probe(probe_id: int) -> None:
    """Bring every cluster in step with one probe: apply, update or remove its ProbeConfig."""
    from apps.resident import applying

    applying.resident_probe_sync(probe_id=probe_id)


@shared_task(name="apps.resident.tasks.remove_probeconfigs", acks_late=True, ignore_result=True)
def remove_probeconfigs() -> int:
    """Remove deleted probes' ProbeConfigs (and token Secrets); failures stay for the resync."""
    from apps.resident import applying

    return applying.probeconfigs_remove_pending()


@shared_task(name="apps.resident.tasks.resync_probeconfigs", ignore_result=True)
def resync_probeconfigs() -> int:
    """Periodic resync: every probe (and what a removed target left behind) again."""
    from apps.resident import applying

    return applying.resident_probes_resync()


@shared_task(name="apps.resident.tasks.judge_resident", ignore_result=True)
def judge_resident() -> int:
    """Judge every (resident probe, cluster) by its alert rule."""
    from apps.resident import alerting

    return alerting.resident_alerts_judge()


@shared_task(name="apps.resident.tasks.resident_housekeeping", ignore_result=True)
def resident_housekeeping() -> None:
    """Daily partitions ahead, and retention by dropping whole days."""
    from apps.resident import storage

    created = storage.partitions_ensure(days_ahead=3)
    dropped = storage.partitions_drop(
        keep_days=settings.KUBEPROBE_RESIDENT_RETENTION_DAYS,
        rollup_keep_days=settings.KUBEPROBE_RESIDENT_ROLLUP_RETENTION_DAYS,
    )
    if created or dropped:
        logger.info("resident partitions: created %s, dropped %s", created, dropped)
