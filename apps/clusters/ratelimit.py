"""A cluster's API rate limit shared by every worker process: a token bucket in Redis.

With one bucket per process, four dispatch processes could send a cluster four
times its `api_qps`. Here every process reserves its request's slot in one
Redis key per cluster (GCRA: the key holds the bucket's "theoretical arrival
time"; a Lua script reads Redis' own clock, so hosts' clocks do not matter)
and sleeps until that slot, as the in-process bucket does. One round trip per
request. If Redis cannot be reached, the process falls back to its own bucket
(the limit then holds per process, as before) and logs it once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: microseconds per request, burst. Returns microseconds to wait.
_RESERVE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - (tonumber(ARGV[2]) - 1) * interval - now
if wait < 0 then wait = 0 end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return wait
"""

_client_lock = threading.Lock()
_client: Any = None
_warned = False


def _script() -> Any:
    global _client
    with _client_lock:
        if _client is None:
            connection = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
            )
            _client = connection.register_script(_RESERVE)
        return _client


class SharedRateLimiter:
    """`qps` requests per second with bursts of `burst`, across all processes on one Redis."""

    def __init__(self, key: str, qps: float, burst: int, fallback: Any) -> None:
        self.key = key
        self.qps = qps
        self.burst = burst
        self.interval_us = max(1, int(1_000_000 / qps))
        self.fallback = fallback  # the process's own bucket, if Redis is away

    def acquire(self) -> None:
        global _warned
        try:
            wait_us = int(_script()(keys=[self.key], args=[self.interval_us, self.burst]))
        except redis.RedisError as exc:
            if not _warned:
                logger.warning("shared API rate limit unavailable, limiting per process: %s", exc)
                _warned = True
            self.fallback.acquire()
            return
        if wait_us:
            time.sleep(wait_us / 1_000_000)


def bucket_key(cluster_id: int) -> str:
    """One bucket per cluster of this installation and database."""
    database = settings.DATABASES["default"]["NAME"]
    return f"kubeprobe:{settings.KUBEPROBE_INSTALLATION}:{database}:api-qps:{cluster_id}"
