"""Kubernetes API clients for target clusters: one per cluster, reused.

Each client honours the cluster's client settings: a token-bucket QPS limit
and a connect/read timeout on every call, with no silent retries inside the
client (callers decide what is worth retrying).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.conf import settings
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from apps.clusters import breaker
from apps.clusters.models import Cluster
from apps.clusters.ratelimit import SharedRateLimiter, bucket_key

# Answers worth retrying: throttling and server-side trouble.
TRANSIENT_STATUS = {429, 500, 502, 503, 504}


class ClusterUnreachable(Exception):
    """The cluster's API did not answer (refused, timed out, DNS, TLS)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message  # the root cause alone, e.g. "... Connection refused"


class BreakerOpen(ClusterUnreachable):
    """The cluster's circuit breaker is open: the call was not made (apps/clusters/breaker.py)."""

    def __init__(self, state: breaker.BreakerState) -> None:
        message = breaker.breaker_message(state)
        super().__init__(message, message)
        self.state = state


class BudgetSpent(ClusterUnreachable):
    """The caller's time budget for this cluster ran out (call_deadline); not the cluster's fault."""


# A deadline (time.monotonic()) that calls must finish by, set by call_deadline().
_deadline: ContextVar[float | None] = ContextVar("kubeprobe_call_deadline", default=None)
# Set by force_calls(): let calls through an open breaker (an operator's explicit check).
_forced: ContextVar[bool] = ContextVar("kubeprobe_breaker_forced", default=False)


@contextmanager
def call_deadline(deadline: float) -> Iterator[None]:
    """Calls inside finish by `deadline` (time.monotonic()): their timeout is cut
    to what is left, and none starts once it has passed (BudgetSpent)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def force_calls() -> Iterator[None]:
    """Calls inside go to the API server even if the cluster's breaker is open."""
    token = _forced.set(True)
    try:
        yield
    finally:
        _forced.reset(token)


class RateLimiter:
    """Token bucket: `qps` requests per second with bursts of `burst`."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.qps)
            self.stamp = now
            self.tokens -= 1
            wait = -self.tokens / self.qps if self.tokens < 0 else 0.0
        if wait:
            time.sleep(wait)


@dataclass
class ClusterClient:
    cluster_name: str
    api_client: k8s.ApiClient
    timeout: tuple[float, float]
    limiter: RateLimiter | SharedRateLimiter
    cluster_id: int | None = None  # None: no breaker (a client for an unsaved cluster)
    # What this process knows of the cluster's breaker: from the cluster rows it
    # was handed (observe) and from its own calls. The database decides the probe.
    breaker_view: breaker.BreakerState = field(default_factory=breaker.BreakerState)
    core: k8s.CoreV1Api = field(init=False)
    apps: k8s.AppsV1Api = field(init=False)

    def __post_init__(self) -> None:
        self.core = k8s.CoreV1Api(self.api_client)
        self.apps = k8s.AppsV1Api(self.api_client)

    def observe(self, state: breaker.BreakerState) -> None:
        """Learn the breaker from a freshly loaded cluster row.

        A row may be older than what this client saw itself (a cleanup pass
        loads its runs' clusters up front). An open row is taken as it is: if
        it is stale, the probe claim finds the database's later time and costs a
        query, never a connection. A closed row does not end an open view: that
        view ends at its probe time, when the database is asked.
        """
        mine = self.breaker_view
        if state.is_open or (not mine.is_open and state.failures > mine.failures):
            self.breaker_view = state

    def _admit(self) -> None:
        """Raise BreakerOpen unless this call may go to the API server."""
        state = self.breaker_view
        if not state.is_open or _forced.get() or self.cluster_id is None:
            return
        now = timezone.now()
        if state.next_probe_at is not None and state.next_probe_at > now:
            raise BreakerOpen(state)
        if breaker.breaker_claim_probe(self.cluster_id, now):
            return  # this call is the half-open attempt
        # Another caller has the attempt, or the breaker closed meanwhile.
        self.breaker_view = breaker.breaker_read(self.cluster_id)
        if self.breaker_view.is_open:
            raise BreakerOpen(self.breaker_view)

    def _timeout(self) -> tuple[tuple[float, float], bool]:
        """The request timeout within the caller's deadline, and whether it was cut."""
        deadline = _deadline.get()
        if deadline is None:
            return self.timeout, False
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise BudgetSpent(f"the time budget for cluster '{self.cluster_name}' is spent")
        connect, read = self.timeout
        return (min(connect, left), min(read, left)), left < read

    def _answered(self) -> None:
        if not self.breaker_view.clean:
            if self.cluster_id is not None:
                breaker.breaker_record_success(self.cluster_id)
            self.breaker_view = breaker.CLOSED

    def _unreachable(self, reason: str, cut: bool) -> ClusterUnreachable:
        if cut:  # a timeout the budget shortened proves nothing about the cluster: not counted
            return BudgetSpent(
                f"the time budget for cluster '{self.cluster_name}' ran out: {reason}", reason
            )
        if self.cluster_id is not None:
            self.breaker_view = breaker.breaker_record_failure(self.cluster_id, reason)
        return ClusterUnreachable(
            f"Kubernetes API of cluster '{self.cluster_name}' is unreachable: {reason}", reason
        )

    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call an API method with the cluster's breaker, rate limit and timeout.

        Raises ClusterUnreachable for network failures (counted by the breaker),
        BreakerOpen without calling while the breaker is open, BudgetSpent when
        the caller's deadline is reached; ApiException (an answer) passes through.
        """
        self._admit()
        timeout, cut = self._timeout()
        self.limiter.acquire()
        kwargs.setdefault("_request_timeout", timeout)
        try:
            result = method(*args, **kwargs)
        except ApiException as exc:
            if not exc.status:
                # The client raises TLS failures as an ApiException without a status.
                reason = " ".join(str(exc.reason or exc).split())
                raise self._unreachable(reason, cut and _timed_out(exc)) from exc
            self._answered()  # 4xx/5xx: the API server is there
            raise
        except (Urllib3Error, OSError) as exc:
            raise self._unreachable(_root_cause(exc), cut and _timed_out(exc)) from exc
        self._answered()
        return result

    def call_json(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Like call(), returning the raw JSON document (no model objects)."""
        response = self.call(method, *args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    def get_path(self, path: str) -> tuple[int, bytes]:
        """GET a non-resource path (/version, /readyz) through call(): (status, body), any status.

        A TLS failure is ClusterUnreachable like any other failure to connect (see call()).
        """
        request = self.api_client.param_serialize(
            method="GET",
            resource_path=path,
            header_params={"Accept": "application/json, text/plain"},
            auth_settings=["BearerToken"],
        )
        response = self.call(self.api_client.call_api, *request)
        response.read()
        return response.status, response.data or b""


def _timed_out(exc: BaseException) -> bool:
    """Whether a failure was a timeout (and not a refusal, reset or TLS error)."""
    seen: BaseException | None = exc
    for _ in range(10):  # chains are short; this bounds a cyclic one
        if not isinstance(seen, BaseException):
            return False
        if isinstance(seen, (TimeoutError, Urllib3Timeout)):
            return True
        seen = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
    return False


def _root_cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = reason.reason  # type: ignore[attr-defined]
    return str(reason or exc)


def api_error_message(exc: ApiException) -> str:
    """The API server's own message ("pods is forbidden: …") when it sent one."""
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _limiter(cluster: Cluster) -> RateLimiter | SharedRateLimiter:
    """The cluster's QPS limit: shared by all processes through Redis (ratelimit.py)."""
    burst = max(1, int(cluster.api_qps * 2))
    local = RateLimiter(cluster.api_qps, burst=burst)
    if cluster.pk is None or not settings.KUBEPROBE_SHARED_API_QPS:
        return local
    return SharedRateLimiter(bucket_key(cluster.pk), cluster.api_qps, burst, fallback=local)


_clients: dict[tuple[Any, ...], ClusterClient] = {}
_clients_lock = threading.Lock()


def cluster_client(cluster: Cluster) -> ClusterClient:
    """The cached client for a cluster; rebuilt when its kubeconfig or settings change."""
    key = (
        cluster.pk,
        cluster.kubeconfig_fingerprint,
        cluster.context,
        cluster.api_qps,
        cluster.api_timeout_seconds,
    )
    with _clients_lock:
        found = _clients.get(key)
        if found is not None:
            found.observe(breaker.breaker_state(cluster))
            return found
        for stale in [k for k in _clients if k[0] == cluster.pk]:
            _clients.pop(stale).api_client.close()
        configuration = k8s.Configuration()
        k8s_config.load_kube_config_from_dict(
            yaml.safe_load(cluster.kubeconfig),
            context=cluster.context or None,
            client_configuration=configuration,
            persist_config=False,
        )
        configuration.retries = 0  # fail fast; dispatch decides on retries
        timeout = float(cluster.api_timeout_seconds)
        created = ClusterClient(
            cluster_name=cluster.name,
            api_client=k8s.ApiClient(configuration),
            timeout=(min(timeout, 5.0), timeout),
            limiter=_limiter(cluster),
            cluster_id=cluster.pk,
            breaker_view=breaker.breaker_state(cluster),
        )
        _clients[key] = created
        return created


def clear_client_cache() -> None:
    with _clients_lock:
        for entry in _clients.values():
            entry.api_client.close()
        _clients.clear()
