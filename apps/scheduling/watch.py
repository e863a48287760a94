"""Turn changes in clusters into events: the engine behind `manage.py watch_clusters`.

One thread per (cluster, resource, namespace) lists once, then watches from
the list's resourceVersion. A dropped stream is resumed from the last
resourceVersion seen; an expired one (410 Gone, which the API server sends as
an ERROR notification inside a 200 stream) is listed again and compared with
what was known. Errors back off exponentially up to a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import close_old_connections
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import HTTPError as Urllib3Error

from apps.clusters.k8s import ClusterUnreachable, cluster_client
from apps.clusters.models import Cluster
from apps.scheduling.models import EventSource

logger = logging.getLogger(__name__)

# resource → AppsV1Api list method
WORKLOADS = {
    "deployments": "list_namespaced_deployment",
    "daemonsets": "list_namespaced_daemon_set",
    "statefulsets": "list_namespaced_stateful_set",
}
MAX_BACKOFF = 60.0
WATCH_SECONDS = 300

Change = tuple[str, str, dict[str, Any]]  # kind, component, detail


def _template_hash(obj: dict[str, Any]) -> str:
    """What a rollout changes: the pod template (a scale does not touch it)."""
    template = (obj.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def _images(obj: dict[str, Any]) -> list[str]:
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c.get("image", "") for c in template.get("containers") or []]


def _ready(node: dict[str, Any]) -> str:
    """The Ready condition's status; "" while the node has not reported one yet."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return ""


def _kubelet(node: dict[str, Any]) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""))


@dataclass
class ResourceWatch:
    """What is remembered of one watched resource between events."""

    resource: str
    namespace: str = ""
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    listed: bool = False
    # Bookkeeping the tests (and a curious operator) can read.
    resource_version: str = ""
    lists: int = 0
    streams: int = 0  # watch streams opened
    expired: int = 0  # 410 Gone answers: the watch had to list again

    def remember(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        state: dict[str, Any] = {"uid": meta.get("uid", "")}
        if self.resource == "nodes":
            state |= {"ready": _ready(obj), "kubelet": _kubelet(obj)}
        else:
            state |= {"template": _template_hash(obj), "images": _images(obj)}
        previous = self.seen.get(meta.get("name", ""), {})
        self.seen[meta.get("name", "")] = state
        return previous

    def relist(self, items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """Take a full listing. The first one only sets the baseline; later ones
        (after a 410) are compared with what was known and give the notifications
        the lost watch would have delivered, so nothing that changed meanwhile is
        missed and nothing unchanged is reported again."""
        first = self.listed is False
        self.listed = True
        if first:
            for item in items:
                self.remember(item)
            return []
        notifications: list[tuple[str, dict[str, Any]]] = []
        present = set()
        for item in items:
            meta = item.get("metadata") or {}
            name = meta.get("name", "")
            present.add(name)
            known = self.seen.get(name)
            if known is None:
                notifications.append(("ADDED", item))
            elif known.get("uid") and meta.get("uid") and known["uid"] != meta["uid"]:
                # Deleted and created again under the same name while we were away.
                notifications += [("DELETED", {"metadata": {"name": name}}), ("ADDED", item)]
            else:
                notifications.append(("MODIFIED", item))
        for name in sorted(set(self.seen) - present):
            notifications.append(("DELETED", {"metadata": {"name": name}}))
        return notifications

    def classify(self, kind: str, obj: dict[str, Any]) -> Change | None:
        """The event a watch notification means, if any (status churn means none)."""
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        if kind == "DELETED":
            self.seen.pop(name, None)
            what = "node" if self.resource == "nodes" else self.resource[:-1]
            component = "node" if self.resource == "nodes" else name[:63]
            return ("cluster_change", component, self._about(name, change=f"{what} deleted"))
        previous = self.remember(obj)
        current = self.seen[name]
        if self.resource == "nodes":
            if kind == "ADDED" and not previous:
                return (
                    "cluster_change",
                    "node",
                    {
                        "name": name,
                        "change": "node added",
                        "ready": current["ready"] or "Unknown",
                    },
                )
            # A node is created before its kubelet reports: the first nodeInfo and the
            # first Ready condition complete its registration, they change nothing.
            if previous and previous["kubelet"] and previous["kubelet"] != current["kubelet"]:
                return (
                    "upgrade",
                    "kubelet",
                    {
                        "name": name,
                        "from": previous["kubelet"],
                        "to": current["kubelet"],
                    },
                )
            if previous and previous["ready"] and previous["ready"] != current["ready"]:
                return (
                    "cluster_change",
                    "node",
                    {
                        "name": name,
                        "change": f"Ready {previous['ready']} → {current['ready']}",
                    },
                )
            return None
        if kind == "ADDED" and not previous:
            details = self._about(name, change="created", images=current["images"])
            return ("component_release", name[:63], details)
        if previous and current["template"] != previous["template"]:
            details = self._about(
                name,
                generation=meta.get("generation"),
                images=current["images"],
                previous_images=previous["images"],
            )
            return ("component_release", name[:63], details)
        return None

    def _about(self, name: str, **details: Any) -> dict[str, Any]:
        """An event's details about the watched object ``name``."""
        return {"resource": self.resource, "namespace": self.namespace, "name": name, **details}


class ClusterWatcher:
    """Watches one cluster's workloads and nodes until `stop` is set (or `close()`)."""

    def __init__(
        self,
        cluster: Cluster,
        stop: threading.Event,
        record: Callable[[Cluster, str, str, dict[str, Any]], None] | None = None,
        watch_seconds: int = WATCH_SECONDS,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.cluster = cluster
        self.stop = stop
        self.record = record or _record_event
        self.watch_seconds = watch_seconds
        self.max_backoff = max_backoff
        self.threads: list[threading.Thread] = []
        self.targets: list[ResourceWatch] = []
        self.reconnects = 0
        self._streams: set[Any] = set()
        self._streams_lock = threading.Lock()

    def start(self) -> None:
        self.targets = [ResourceWatch("nodes")] + [
            ResourceWatch(resource, namespace)
            for namespace in self.cluster.watch_namespaces
            for resource in WORKLOADS
        ]
        for target in self.targets:
            thread = threading.Thread(
                target=self._loop,
                args=(target,),
                daemon=True,
                name=f"watch-{self.cluster.name}-{target.resource}-{target.namespace}",
            )
            thread.start()
            self.threads.append(thread)

    def close(self, timeout: float = 5.0) -> None:
        """Stop now: a quiet stream would otherwise hold its thread and connection
        until the next notification or the end of the watch."""
        self.stop.set()
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                response.shutdown()  # unless already finished or released
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _list_method(self, target: ResourceWatch) -> tuple[Any, tuple[Any, ...]]:
        client = cluster_client(self.cluster)
        if target.resource == "nodes":
            return client.core.list_node, ()
        return getattr(client.apps, WORKLOADS[target.resource]), (target.namespace,)

    def _handle(self, target: ResourceWatch, kind: str, raw: dict[str, Any]) -> None:
        name = (raw.get("metadata") or {}).get("name", "")
        before = target.seen.get(name)
        found = target.classify(kind, raw)
        if not found:
            return
        try:
            self.record(self.cluster, *found)
        except Exception:
            # Forget what this notification taught, so its replay classifies again.
            if before is None:
                target.seen.pop(name, None)
            else:
                target.seen[name] = before
            raise

    def _list(self, target: ResourceWatch) -> None:
        method, args = self._list_method(target)
        listing = cluster_client(self.cluster).call_json(method, *args)
        target.lists += 1
        # Through _handle, so a change found here that fails to record is found
        # again by the next listing instead of being taken as known.
        for kind, obj in target.relist(listing.get("items") or []):
            self._handle(target, kind, obj)
        target.resource_version = listing["metadata"]["resourceVersion"]

    def _open(self, target: ResourceWatch) -> Any:
        """A watch stream from target.resource_version (the response, unread)."""
        method, args = self._list_method(target)
        response = cluster_client(self.cluster).call(
            method,
            *args,
            watch=True,
            resource_version=target.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _preload_content=False,
            _request_timeout=(5, self.watch_seconds + 30),
        )
        with self._streams_lock:
            self._streams.add(response)
        target.streams += 1
        return response

    def _follow(self, target: ResourceWatch, response: Any) -> None:
        """Handle a stream's notifications until it ends."""
        try:
            # Raw JSON lines: no model validation, so no surprise from newer API fields.
            for line in iter_resp_lines(response):
                if self.stop.is_set():
                    return
                if not line:
                    continue
                notification = json.loads(line)
                raw = notification.get("object") or {}
                kind = notification.get("type")
                if kind == "ERROR":
                    # An expired resourceVersion comes this way, inside a 200 stream,
                    # not as an HTTP 410.
                    raise ApiException(status=raw.get("code"), reason=raw.get("message"))
                new_version = (raw.get("metadata") or {}).get(
                    "resourceVersion", target.resource_version
                )
                if kind != "BOOKMARK":
                    self._handle(target, kind, raw)
                # Only now: a change that failed to record is seen again.
                target.resource_version = new_version
        finally:
            with self._streams_lock:
                self._streams.discard(response)
            response.release_conn()

    def _loop(self, target: ResourceWatch) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            try:
                if not target.resource_version:
                    self._list(target)
                response = self._open(target)
                # The cluster answers again: the next trouble backs off from 1 s anew.
                backoff = 1.0
                self._follow(target, response)
                self.reconnects += 1
                continue
            except ApiException as exc:
                if exc.status == 410:
                    target.expired += 1
                    target.resource_version = ""  # too old: list again
                    continue
                problem = f"HTTP {exc.status} {exc.reason or ''}".strip()
            except (ClusterUnreachable, Urllib3Error, OSError) as exc:
                problem = str(exc)
            except Exception as exc:  # a watcher must outlive any one bad answer
                if not self.stop.is_set():
                    logger.exception(
                        "watch %s/%s on %s failed",
                        target.resource,
                        target.namespace,
                        self.cluster.name,
                    )
                problem = repr(exc)
            if self.stop.is_set():
                return  # close() cut the stream: not a problem worth a log line
            logger.warning(
                "watch %s/%s on %s: %s (again in %.0fs)",
                target.resource,
                target.namespace,
                self.cluster.name,
                problem,
                backoff,
            )
            self.stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)


def _record_event(cluster: Cluster, kind: str, component: str, detail: dict[str, Any]) -> None:
    from apps.scheduling.services import event_record

    close_old_connections()
    try:
        event_record(
            cluster=cluster, kind=kind, component=component, detail=detail, source=EventSource.WATCH
        )
    finally:
        close_old_connections()
