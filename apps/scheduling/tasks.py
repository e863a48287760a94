"""Celery entry points for triggers: thin, ids in, services do the work."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.retry import DATABASE_ERRORS, db_retry_countdown
from apps.scheduling.services import binding_fire_schedule

logger = logging.getLogger(__name__)


# max_retries=None: Celery's default (3) would cut the budget below short.
# acks_late + reject_on_worker_lost: a worker killed mid-tick has committed nothing
# (the claim and the runs are one transaction), and the tick is delivered again.
@shared_task(
    bind=True,
    name="apps.scheduling.tasks.fire_binding",
    ignore_result=True,
    max_retries=None,
    acks_late=True,
    reject_on_worker_lost=True,
)
def fire_binding(self, binding_id: int, tick_at: str | None = None) -> int:  # type: ignore[no-untyped-def]
    """A binding's beat tick. Returns how many runs it created.

    A database outage retries the tick with backoff instead of losing it. The
    retry carries the tick's own time (`tick_at`), so it claims the same slot
    and creates the same idempotency keys as the first attempt would have: a
    first attempt that did commit makes the retry a no-op, not a second round.
    """
    now = parse_datetime(tick_at) if tick_at else None
    now = now or timezone.now()
    try:
        return len(binding_fire_schedule(binding_id=binding_id, now=now).created)
    except DATABASE_ERRORS as exc:
        countdown = db_retry_countdown(self.request.retries)
        if countdown is None:
            logger.error(
                "binding %s: tick of %s lost, the database failed %d times: %s",
                binding_id,
                now.isoformat(),
                self.request.retries + 1,
                exc,
            )
            raise
        raise self.retry(
            kwargs={"binding_id": binding_id, "tick_at": now.isoformat()},
            countdown=countdown,
            # Beat's expiry (one period) would drop the retry; the budget bounds it instead.
            expires=None,
            exc=exc,
        ) from exc
