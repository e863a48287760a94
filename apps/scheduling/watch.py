"""Turn changes in clusters into events: the engine behind `manage.py watch_clusters`.

One thread per (cluster, resource, namespace) lists once, then watches from
the list's resourceVersion. A dropped stream is resumed from the last
resourceVersion seen; an expired one (410 Gone) is listed again. Errors back
off exponentially up to a minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
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
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "Unknown"


def _kubelet(node: dict[str, Any]) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""))


@dataclass
class ResourceWatch:
    """What is remembered of one watched resource between events."""

    resource: str
    namespace: str = ""
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    listed: bool = False

    def remember(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        state: dict[str, Any]
        if self.resource == "nodes":
            state = {"ready": _ready(obj), "kubelet": _kubelet(obj)}
        else:
            state = {"template": _template_hash(obj), "images": _images(obj)}
        previous = self.seen.get(meta.get("name", ""), {})
        self.seen[meta.get("name", "")] = state
        return previous

    def relist(self, items: list[dict[str, Any]]) -> list[Change]:
        """Take a full listing. The first one only sets the baseline; later ones
        (after a 410) are compared with what was known, so nothing that changed
        while the watch was down is missed."""
        first = self.listed is False
        self.listed = True
        if first:
            for item in items:
                self.remember(item)
            return []
        changes = []
        present = set()
        for item in items:
            name = (item.get("metadata") or {}).get("name", "")
            present.add(name)
            change = self.classify("MODIFIED" if name in self.seen else "ADDED", item)
            if change:
                changes.append(change)
        for name in set(self.seen) - present:
            change = self.classify("DELETED", {"metadata": {"name": name}})
            if change:
                changes.append(change)
        return changes

    def classify(self, kind: str, obj: dict[str, Any]) -> Change | None:
        """The event a watch notification means, if any (status churn means none)."""
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        if kind == "DELETED":
            self.seen.pop(name, None)
            what = "node" if self.resource == "nodes" else self.resource[:-1]
            return (
                "cluster_change",
                "node" if self.resource == "nodes" else name[:63],
                {
                    "resource": self.resource,
                    "namespace": self.namespace,
                    "name": name,
                    "change": f"{what} deleted",
                },
            )
        previous = self.remember(obj)
        current = self.seen[name]
        if self.resource == "nodes":
            if kind == "ADDED" and not previous:
                return (
                    "cluster_change",
                    "node",
                    {"name": name, "change": "node added", "ready": current["ready"]},
                )
            if previous and previous["kubelet"] != current["kubelet"]:
                return (
                    "upgrade",
                    "kubelet",
                    {
                        "name": name,
                        "from": previous["kubelet"],
                        "to": current["kubelet"],
                    },
                )
            if previous and previous["ready"] != current["ready"]:
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
            return (
                "component_release",
                name[:63],
                {
                    "resource": self.resource,
                    "namespace": self.namespace,
                    "name": name,
                    "change": "created",
                    "images": current["images"],
                },
            )
        if previous and current["template"] != previous["template"]:
            return (
                "component_release",
                name[:63],
                {
                    "resource": self.resource,
                    "namespace": self.namespace,
                    "name": name,
                    "generation": meta.get("generation"),
                    "images": current["images"],
                    "previous_images": previous["images"],
                },
            )
        return None


class ClusterWatcher:
    """Watches one cluster's workloads and nodes until `stop` is set."""

    def __init__(
        self,
        cluster: Cluster,
        stop: threading.Event,
        record: Callable[[Cluster, str, str, dict[str, Any]], None] | None = None,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.cluster = cluster
        self.stop = stop
        self.record = record or _record_event
        self.watch_seconds = watch_seconds
        self.threads: list[threading.Thread] = []
        self.reconnects = 0

    def start(self) -> None:
        targets = [ResourceWatch("nodes")] + [
            ResourceWatch(resource, namespace)
            for namespace in self.cluster.watch_namespaces
            for resource in WORKLOADS
        ]
        for target in targets:
            thread = threading.Thread(
                target=self._loop,
                args=(target,),
                daemon=True,
                name=f"watch-{self.cluster.name}-{target.resource}-{target.namespace}",
            )
            thread.start()
            self.threads.append(thread)

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

    def _loop(self, target: ResourceWatch) -> None:
        resource_version = ""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                method, args = self._list_method(target)
                client = cluster_client(self.cluster)
                if not resource_version:
                    listing = client.call_json(method, *args)
                    for change in target.relist(listing.get("items") or []):
                        self.record(self.cluster, *change)
                    resource_version = listing["metadata"]["resourceVersion"]
                response = client.call(
                    method,
                    *args,
                    watch=True,
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=self.watch_seconds,
                    _preload_content=False,
                    _request_timeout=(5, self.watch_seconds + 30),
                )
                try:
                    # Raw JSON lines: no model validation, so no surprise from newer API fields.
                    for line in iter_resp_lines(response):
                        if self.stop.is_set():
                            break
                        notification = json.loads(line)
                        raw = notification.get("object") or {}
                        kind = notification.get("type")
                        if kind == "ERROR":
                            if raw.get("code") == 410:
                                resource_version = ""  # too old: list again
                                break
                            raise ApiException(status=raw.get("code"), reason=raw.get("message"))
                        new_version = (raw.get("metadata") or {}).get(
                            "resourceVersion", resource_version
                        )
                        if kind != "BOOKMARK":
                            self._handle(target, kind, raw)
                        # Only now: a change that failed to record is seen again.
                        resource_version = new_version
                finally:
                    response.release_conn()
                backoff = 1.0
                self.reconnects += 1
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = ""
                    continue
                logger.warning(
                    "watch %s/%s on %s: HTTP %s",
                    target.resource,
                    target.namespace,
                    self.cluster.name,
                    exc.status,
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except (ClusterUnreachable, Urllib3Error, OSError) as exc:
                logger.warning(
                    "watch %s/%s on %s: %s",
                    target.resource,
                    target.namespace,
                    self.cluster.name,
                    exc,
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # a watcher must outlive any one bad answer
                logger.exception(
                    "watch %s/%s on %s failed", target.resource, target.namespace, self.cluster.name
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)


def _record_event(cluster: Cluster, kind: str, component: str, detail: dict[str, Any]) -> None:
    from apps.scheduling.services import event_record

    close_old_connections()
    try:
        event_record(
            cluster=cluster, kind=kind, component=component, detail=detail, source=EventSource.WATCH
        )
    finally:
        close_old_connections()
