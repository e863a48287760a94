"""A cluster's api_qps holds across worker processes: one token bucket in Redis."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from apps.clusters import ratelimit
from apps.clusters.k8s import RateLimiter, clear_client_cache, cluster_client
from apps.clusters.ratelimit import SharedRateLimiter
from tests.factories import ClusterFactory


def test_two_limiters_on_one_bucket_share_its_rate() -> None:
    # Two instances, as two processes would hold: only Redis is shared.
    key = f"test-qps-{uuid.uuid4().hex}"
    limiters = [SharedRateLimiter(key, qps=20, burst=4, fallback=None) for _ in range(2)]
    stamps: list[float] = []
    lock = threading.Lock()

    def take(limiter: SharedRateLimiter) -> None:
        for _ in range(12):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=take, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(stamps) == 24
    # 24 requests at 20/s with a burst of 4: the last may go 20 intervals after the start,
    # not 8 (as two buckets of their own would allow).
    assert stamps[-1] - started >= (24 - 4) / 20 - 0.05
    # And the burst went at once: the limiter only delays what is over the rate.
    assert sorted(stamps)[3] - started < 0.5


def test_without_redis_each_process_keeps_its_own_limit(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setattr(ratelimit, "_client", None)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    local = RateLimiter(qps=1000, burst=1)
    calls: list[int] = []
    monkeypatch.setattr(local, "acquire", lambda: calls.append(1))
    limiter = SharedRateLimiter("test-qps-away", qps=5, burst=1, fallback=local)
    limiter.acquire()
    limiter.acquire()
    assert calls == [1, 1]
    monkeypatch.setattr(ratelimit, "_client", None)  # the next test reconnects


@pytest.mark.django_db
def test_a_cluster_client_limits_through_the_shared_bucket(settings: Any) -> None:
    clear_client_cache()
    cluster = ClusterFactory(api_qps=7)
    limiter = cluster_client(cluster).limiter
    assert isinstance(limiter, SharedRateLimiter)
    assert limiter.qps == 7 and limiter.burst == 14
    assert limiter.key.endswith(f":api-qps:{cluster.pk}")
    settings.KUBEPROBE_SHARED_API_QPS = False
    clear_client_cache()
    assert isinstance(cluster_client(cluster).limiter, RateLimiter)
