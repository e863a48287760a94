"""Celery beat's scheduler (CELERY_BEAT_SCHEDULER): django-celery-beat's, plus a heartbeat."""

from __future__ import annotations

import logging
import time
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

from apps.core.heartbeat import beat_name, heartbeat_record

logger = logging.getLogger(__name__)


class Scheduler(DatabaseScheduler):  # type: ignore[misc]
    """Records beat's heartbeat on every tick, so /healthz can tell a beat that
    stopped (or hangs) from one whose workers stopped. At most once a second."""

    _last_beat = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        now = time.time()
        if now - self._last_beat >= 1.0:
            try:
                heartbeat_record(name=beat_name(), at=now)
                self._last_beat = now
            except Exception:  # Redis down: beat goes on, /healthz says why
                logger.warning("could not record beat's heartbeat", exc_info=True)
        return interval
