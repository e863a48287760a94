"""Heartbeats of the processes that make probes run: beat and a worker on each queue.

Beat records a heartbeat on every tick of its scheduler (apps/core/beat.py).
Beat also sends `apps.core.tasks.heartbeat` to every Celery queue every
``KUBEPROBE_HEARTBEAT_SECONDS``; the worker that takes it records the queue's
heartbeat. A queue whose heartbeat is older than
``KUBEPROBE_HEARTBEAT_STALE_SECONDS`` has no worker taking its messages in time
(none running, or all stuck behind a backlog). The times live in the shared
cache (Redis), under the installation's key prefix.
"""

from __future__ import annotations

import time

from django.core.cache import cache

BEAT = "beat"


def _key(name: str) -> str:
    return f"heartbeat:{name}"


def installation_queues() -> list[str]:
    """This installation's Celery queues, default first (names as the app has them now)."""
    from kubeprobe_site.celery import app
    from kubeprobe_site.queues import queue_names

    return queue_names(app.conf.task_default_queue)


def beat_name() -> str:
    from kubeprobe_site.celery import app

    # Per default queue, as everything else of an installation on a shared Redis.
    return f"{BEAT}:{app.conf.task_default_queue}"


def heartbeat_record(*, name: str, at: float | None = None) -> None:
    cache.set(_key(name), time.time() if at is None else at, timeout=None)


def heartbeat_ages(*, names: list[str], now: float | None = None) -> dict[str, float | None]:
    """Seconds since each heartbeat (None: never recorded), in one round trip."""
    now = time.time() if now is None else now
    found = cache.get_many([_key(name) for name in names])
    ages: dict[str, float | None] = {}
    for name in names:
        at = found.get(_key(name))
        ages[name] = None if at is None else max(0.0, now - float(at))
    return ages
