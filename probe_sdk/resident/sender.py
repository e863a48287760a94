"""Delivering windows to the center: a bounded in-order outbox and the sending loop.

Closed windows queue in the outbox, oldest first, up to a bound; past it the
oldest are dropped and their samples counted. A batch takes up to 100 windows
from the head and gets an id once: it is retried with the same id and the
same bytes until the center has it (the center stores a batch id once), so
an outage delays windows but neither loses nor repeats them.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from probe_sdk.resident.bucket import TokenBucket

log = logging.getLogger("probe_sdk.resident")

MAX_BATCH_WINDOWS = 100
PERMANENT = {400, 404, 405, 413, 422}  # the center will never take this batch
SAMPLES_PATH = "/api/v1/resident/samples"


class Batch:
    def __init__(self, windows: List[Dict[str, Any]], header: Dict[str, Any]) -> None:
        self.id = uuid.uuid4().hex
        self.windows = windows
        self.samples = sum(int(w["count"]) for w in windows)
        body = dict(header, batch_id=self.id, windows=windows)
        self.body = json.dumps(body, separators=(",", ":")).encode()
        self.attempts = 0


class Outbox:
    def __init__(self, probe: str, cluster: str, max_windows: int) -> None:
        self.probe = probe
        self.cluster = cluster
        self.max_windows = max(1, max_windows)
        self.pending: Deque[Dict[str, Any]] = deque()
        self.in_flight: Optional[Batch] = None
        self.dropped = 0  # samples, since the runner started
        self.cond = threading.Condition()

    def put(self, window: Dict[str, Any]) -> None:
        with self.cond:
            self.pending.append(window)
            while len(self.pending) > self.max_windows:
                lost = self.pending.popleft()
                self.dropped += int(lost["count"])
            self.cond.notify_all()

    def batch(self, timeout: float) -> Optional[Batch]:
        """The batch to send next (the unconfirmed one first); None if none came in time."""
        with self.cond:
            if self.in_flight is None and not self.pending:
                self.cond.wait(timeout)
            if self.in_flight is None and self.pending:
                windows = [
                    self.pending.popleft() for _ in range(min(MAX_BATCH_WINDOWS, len(self.pending)))
                ]
                header = {"probe": self.probe, "cluster": self.cluster, "dropped": self.dropped}
                self.in_flight = Batch(windows, header)
            return self.in_flight

    def delivered(self, batch: Batch) -> None:
        with self.cond:
            if self.in_flight is batch:
                self.in_flight = None
            self.cond.notify_all()

    def discard(self, batch: Batch) -> None:
        """The center refused the batch for good: count its samples as dropped."""
        with self.cond:
            if self.in_flight is batch:
                self.in_flight = None
                self.dropped += batch.samples
            self.cond.notify_all()

    def empty(self) -> bool:
        with self.cond:
            return self.in_flight is None and not self.pending


def post(url: str, token: str, body: bytes, timeout: float) -> Tuple[int, str, Dict[str, str]]:
    """(status, answer text, headers); status 0 when the center could not be reached."""
    request = urllib.request.Request(  # noqa: S310 (the center's URL, http or https)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer " + token,
            "User-Agent": "kubeprobe-resident",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.status, answer.read().decode(errors="replace"), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), dict(exc.headers or {})
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
        return 0, "%s: %s" % (type(exc).__name__, exc), {}


class Sender:
    """Sends batches in order, one at a time, each taking a token from the bucket;
    retries with exponential backoff (and the center's Retry-After) on 5xx, 429,
    401/403 (a token may be fixed) and connection errors."""

    def __init__(
        self,
        outbox: Outbox,
        url: str,
        token: str,
        bucket: TokenBucket,
        retry_max: float = 30.0,
        timeout: float = 10.0,
        post_fn: Callable[[str, str, bytes, float], Tuple[int, str, Dict[str, str]]] = post,
    ) -> None:
        self.outbox = outbox
        self.url = url.rstrip("/") + SAMPLES_PATH
        self.token = token
        self.bucket = bucket
        self.retry_max = retry_max
        self.timeout = timeout
        self.post = post_fn
        self.stop = threading.Event()
        self.last_report = 0.0

    def run(self, until: Callable[[], bool]) -> None:
        """Send until `until()` is true (checked whenever there is nothing to send)."""
        delay = 0.0
        while not self.stop.is_set():
            batch = self.outbox.batch(timeout=0.2)
            if batch is None:
                if until():
                    return
                continue
            wait = self.bucket.wait_time()
            if wait > 0:
                self.stop.wait(wait)
                continue
            self.bucket.take()
            batch.attempts += 1
            status, text, headers = self.post(self.url, self.token, batch.body, self.timeout)
            if 200 <= status < 300:
                self.outbox.delivered(batch)
                self.last_report = time.time()
                delay = 0.0
                continue
            if status in PERMANENT:
                log.error(
                    "the center refused batch %s for good (HTTP %s: %s); its %d samples are dropped",
                    batch.id,
                    status,
                    text[:300],
                    batch.samples,
                )
                self.outbox.discard(batch)
                continue
            delay = min(self.retry_max, max(0.2, delay * 2))
            retry_after = headers.get("Retry-After", "")
            if status == 429 and retry_after.isdigit():
                delay = max(delay, float(retry_after))
            why = "HTTP %s: %s" % (status, text[:300]) if status else text
            log.warning(
                "batch %s (attempt %d) not delivered: %s; retrying in %.1f s",
                batch.id,
                batch.attempts,
                why,
                delay,
            )
            self.stop.wait(delay * (0.75 + random.random() / 4))  # noqa: S311 (jitter)
