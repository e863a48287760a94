"""Kubernetes API clients for target clusters: one per cluster, reused.

Each client honours the cluster's client settings: a token-bucket QPS limit
and a connect/read timeout on every call, with no silent retries inside the
client (callers decide what is worth retrying).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from apps.clusters.models import Cluster

# Answers worth retrying: throttling and server-side trouble.
TRANSIENT_STATUS = {429, 500, 502, 503, 504}


class ClusterUnreachable(Exception):
    """The cluster's API did not answer (refused, timed out, DNS, TLS)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message  # the root cause alone, e.g. "... Connection refused"


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
    limiter: RateLimiter
    core: k8s.CoreV1Api = field(init=False)
    apps: k8s.AppsV1Api = field(init=False)

    def __post_init__(self) -> None:
        self.core = k8s.CoreV1Api(self.api_client)
        self.apps = k8s.AppsV1Api(self.api_client)

    def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call an API method with the cluster's rate limit and timeout.

        Raises ClusterUnreachable for network failures; ApiException passes through.
        """
        self.limiter.acquire()
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            return method(*args, **kwargs)
        except ApiException:
            raise
        except (Urllib3Error, OSError) as exc:
            reason = _root_cause(exc)
            raise ClusterUnreachable(
                f"Kubernetes API of cluster '{self.cluster_name}' is unreachable: {reason}", reason
            ) from exc

    def call_json(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Like call(), returning the raw JSON document (no model objects)."""
        response = self.call(method, *args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    def get_path(self, path: str) -> tuple[int, bytes]:
        """GET a non-resource path (/version, /readyz) through call(): (status, body), any status.

        A TLS failure, which the client raises as an ApiException without a status,
        is raised as ClusterUnreachable like any other failure to connect.
        """
        request = self.api_client.param_serialize(
            method="GET",
            resource_path=path,
            header_params={"Accept": "application/json, text/plain"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.call(self.api_client.call_api, *request)
        except ApiException as exc:
            if exc.status:
                raise
            reason = " ".join(str(exc.reason or exc).split())
            raise ClusterUnreachable(
                f"Kubernetes API of cluster '{self.cluster_name}' is unreachable: {reason}", reason
            ) from exc
        response.read()
        return response.status, response.data or b""


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
            limiter=RateLimiter(cluster.api_qps, burst=max(1, int(cluster.api_qps * 2))),
        )
        _clients[key] = created
        return created


def clear_client_cache() -> None:
    with _clients_lock:
        for entry in _clients.values():
            entry.api_client.close()
        _clients.clear()
