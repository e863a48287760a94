"""Scrape-time metrics of the Celery queues and the heartbeats (registered by CoreConfig).

Depth is LLEN of each queue's Redis list; lag is the age of its oldest
message, read from the `kubeprobe_sent_at` header that every message gets when
published (``stamp_sent_at``, connected to Celery's before_task_publish). Kombu
LPUSHes and BRPOPs, so the oldest message is the list's last element. One
pipelined round trip for all queues.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, Metric

from apps.core.heartbeat import beat_name, heartbeat_ages, installation_queues

SENT_AT_HEADER = "kubeprobe_sent_at"

_broker: redis.Redis | None = None


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """before_task_publish receiver: when the message was sent (for the queue lag)."""
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def _broker_client() -> redis.Redis:
    global _broker
    if _broker is None:
        _broker = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2
        )
    return _broker


def _sent_at(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None  # not a Celery message of ours


class QueueCollector:
    def collect(self) -> Iterator[Metric]:
        queues = installation_queues()
        pipe = _broker_client().pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
            pipe.lindex(queue, -1)
        replies = pipe.execute()
        now = time.time()
        depth = GaugeMetricFamily(
            "kubeprobe_queue_messages", "Messages waiting in the Celery queue.", labels=["queue"]
        )
        lag = GaugeMetricFamily(
            "kubeprobe_queue_lag_seconds",
            "Age of the oldest message waiting in the Celery queue (0 when empty).",
            labels=["queue"],
        )
        for i, queue in enumerate(queues):
            length, oldest = int(replies[2 * i]), replies[2 * i + 1]
            depth.add_metric([queue], length)
            sent_at = _sent_at(oldest) if length else None
            lag.add_metric([queue], max(0.0, now - sent_at) if sent_at is not None else 0.0)
        yield depth
        yield lag


class HeartbeatCollector:
    def collect(self) -> Iterator[Metric]:
        names = {"beat": beat_name(), **{q: f"queue:{q}" for q in installation_queues()}}
        ages = heartbeat_ages(names=list(names.values()))
        age = GaugeMetricFamily(
            "kubeprobe_heartbeat_age_seconds",
            "Seconds since beat ticked (component=beat) or a worker took the queue's "
            "heartbeat (component=<queue>); missing when never recorded.",
            labels=["component"],
        )
        for component, key in names.items():
            seconds = ages[key]
            if seconds is not None:
                age.add_metric([component], seconds)
        yield age
