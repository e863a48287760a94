"""The fake API server: storage, REST verbs, watches, faults and the test-facing API.

The controllers (scheduler, kubelet, Deployment/ReplicaSet/StatefulSet/Endpoints
controllers, garbage collector) live in `controllers.py`; see the package
docstring for the whole picture.
"""

from __future__ import annotations

import copy
import itertools
import json
import queue
import random
import string
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from tests.fakekube.controllers import Controllers
from tests.fakekube.util import (
    BUILTIN_KINDS,
    NAME_RE,
    ApiError,
    Kind,
    fault_error,
    json_patch,
    match_fields,
    match_labels,
    match_selector,
    merge_patch,
    not_found,
    now_iso,
    selector_string,
    status_body,
    strategic_merge_patch,
    success_body,
)

K8S_VERBS = {"POST": {"create"}, "PUT": {"update"}, "PATCH": {"patch"}, "DELETE": {"delete"}}
SCALABLE = {"deployments", "statefulsets", "replicasets"}
# Built-in kinds whose DELETE answers the object, not a Status (custom ones all do).
RETURN_DELETED = {"pods", "services", "serviceaccounts", "persistentvolumeclaims", "resourcequotas"}


class FakeKube(Controllers):
    def __init__(
        self,
        nodes: int = 1,
        *,
        kubelet_delay: float = 0.05,
        scheduler_delay: float = 0.0,
        pod_delete_delay: float = 0.0,
        controllers: bool = True,
    ) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.uids: dict[str, tuple[str, str, str]] = {}
        self.kinds: dict[str, Kind] = {k.rid: k for k in BUILTIN_KINDS}
        self.lock = threading.RLock()
        self.rv = itertools.count(1)
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, type, rid, obj)
        self.watchers: list[tuple[str, str, queue.Queue[Any]]] = []
        self.faults: list[tuple[str, str, int, str | None]] = []
        self.lost_answers: list[tuple[str, str, int]] = []
        self.denied: dict[str, tuple[int, str, str | None]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # verb, path, query
        self.logs: dict[str, str] = defaultdict(lambda: "probe starting\n")
        self.kubelet_delay = kubelet_delay
        self.scheduler_delay = scheduler_delay
        self.pod_delete_delay = pod_delete_delay
        self.token = "fake-token-" + uuid.uuid4().hex
        self._changes = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        Controllers.__init__(self)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        for ns in ("default", "kubeprobe", "kube-system"):
            self.add("namespaces", "", {"metadata": {"name": ns}})
        for i in range(1, nodes + 1):
            self.add_node(f"node-{i}")
        if controllers:
            threading.Thread(target=self._controller_loop, daemon=True).start()

    # ------------------------------------------------------------ test API

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        with self.lock:
            for _, _, q in self.watchers:
                q.put(None)
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, context: str = "fake") -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {"token": self.token}}],
                "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
            }
        )

    def drop_watches(self) -> None:
        """End every open watch stream, as a load balancer timeout would."""
        with self.lock:
            for _, _, q in self.watchers:
                q.put(None)

    def expire_history(self) -> None:
        """Forget past changes: watches from an older resourceVersion get 410 Gone."""
        with self.lock:
            marker = next(self.rv)
            self.history = [(marker, "BOOKMARK", "", {"metadata": {}})]

    def watch_count(self) -> int:
        with self.lock:
            return len(self.watchers)

    def fail_next(self, verb: str, resource: str, status: int, message: str | None = None) -> None:
        """Answer the next matching request with `status` and a real Status body.

        `verb` is an HTTP verb (GET, POST, ...) or a Kubernetes one (create, list,
        watch, get, update, patch, delete); `resource` a plural (`pods`), optionally
        with a subresource (`pods/log`) or a group (`kubedefenders.example.com`)."""
        with self.lock:
            self.faults.append((verb, resource, status, message))

    def lose_next_answer(self, verb: str, resource: str, status: int) -> None:
        """Carry out the next matching request, then answer it with an error
        (a gateway timeout after the API server already saved the object)."""
        with self.lock:
            self.lost_answers.append((verb, resource, status))

    def deny_create(
        self,
        resource: str,
        message: str | None = None,
        status: int = 403,
        namespace: str | None = None,
    ) -> None:
        """Refuse every create of `resource` from now on, from clients and from the
        controllers alike (an admission webhook or an exhausted ResourceQuota)."""
        with self.lock:
            self.denied[self._rid(resource)] = (status, message or "", namespace)

    def allow_create(self, resource: str) -> None:
        with self.lock:
            self.denied.pop(self._rid(resource), None)
            self._wake.set()

    def register_kind(
        self,
        group_version: str,
        plural: str,
        kind: str,
        namespaced: bool = True,
        *,
        status_subresource: bool = False,
    ) -> str:
        """Serve a custom resource, as installing its CRD would; returns its storage
        name (`<plural>.<group>`) for get/list/add. A CustomResourceDefinition object
        is created too, so clients that look for the CRD find it."""
        group, _, version = group_version.rpartition("/")
        if not group:
            raise ValueError("custom resources need a group: 'example.com/v1'")
        with self.lock:
            self._register(group, version, plural, kind, namespaced, status_subresource)
            crd_name = f"{plural}.{group}"
            if ("customresourcedefinitions", "", crd_name) not in self.objects:
                self._create(
                    self.kinds["customresourcedefinitions"],
                    "",
                    crd_body(group, [version], plural, kind, namespaced, status_subresource),
                    admit=False,
                )
        return f"{plural}.{group}"

    def _register(
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        namespaced: bool,
        status_subresource: bool,
    ) -> Kind:
        rid = f"{plural}.{group}"
        existing = self.kinds.get(rid)
        if existing is not None:
            if version not in existing.versions:
                existing.versions.append(version)
            return existing
        self.kinds[rid] = Kind(
            rid=rid,
            group=group,
            versions=[version],
            plural=plural,
            kind=kind,
            namespaced=namespaced,
            status_subresource=status_subresource,
            builtin=False,
        )
        return self.kinds[rid]

    def _rid(self, resource: str) -> str:
        """A storage name from what tests write: `pods`, `deployments`, or a custom
        resource's `plural.group` (its bare plural, if only one group has it)."""
        resource = resource.split("/")[0]
        if resource in self.kinds:
            return resource
        custom = [k.rid for k in self.kinds.values() if not k.builtin and k.plural == resource]
        return custom[0] if len(custom) == 1 else resource

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((self._rid(resource), namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        rid = self._rid(resource)
        with self.lock:
            return [
                copy.deepcopy(o)
                for (r, ns, _), o in self.objects.items()
                if r == rid and (namespace is None or ns == namespace)
            ]

    def add(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as given (no admission, overwriting any with its name).
        A pod added without `status.phase` is run by the scheduler and kubelet;
        workloads are picked up by their controllers."""
        with self.lock:
            kind = self.kinds[self._rid(resource)]
            obj = copy.deepcopy(obj)
            obj.setdefault("apiVersion", kind.api_version)
            obj.setdefault("kind", kind.kind)
            meta = obj.setdefault("metadata", {})
            if namespace:
                meta["namespace"] = namespace
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta.setdefault("generation", 1)
            self._defaults(kind, obj)
            self._save(kind.rid, namespace, obj, "ADDED")
            self._created(kind, obj)
            return copy.deepcopy(obj)

    def update(self, resource: str, namespace: str, obj: dict[str, Any]) -> None:
        """Store an object as given (no generation bump, no resourceVersion check)."""
        with self.lock:
            self._save(self._rid(resource), namespace, copy.deepcopy(obj), "MODIFIED")

    def remove(self, resource: str, namespace: str, name: str) -> None:
        """Make an object vanish at once, ignoring finalizers."""
        with self.lock:
            self._remove(self._rid(resource), namespace, name)

    def delete(
        self, resource: str, namespace: str, name: str, propagation: str | None = None
    ) -> None:
        """Delete as a client would (finalizers, graceful pods, garbage collection)."""
        with self.lock:
            kind = self.kinds[self._rid(resource)]
            self._delete(kind, namespace, name, {"propagationPolicy": propagation})

    def event(
        self,
        namespace: str,
        involved: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "kubelet",
    ) -> None:
        meta = involved["metadata"]
        now = now_iso()
        self.add(
            "events",
            namespace,
            {
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}"},
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion"),
                    "kind": involved.get("kind"),
                    "name": meta["name"],
                    "namespace": namespace,
                    "uid": meta.get("uid"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": component},
                "reportingComponent": component,
            },
        )

    def events_for(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Events about the object `name` in `namespace`, oldest first."""
        return [
            e
            for e in self.list("events", namespace)
            if e.get("involvedObject", {}).get("name") == name
        ]

    # ------------------------------------------------------------ storage

    def _save(self, rid: str, namespace: str, obj: dict[str, Any], kind: str) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        key = (rid, namespace, obj["metadata"]["name"])
        old = self.objects.get(key)
        if old is not None and old["metadata"].get("uid") != obj["metadata"].get("uid"):
            self.uids.pop(old["metadata"].get("uid"), None)
        self.objects[key] = obj
        if obj["metadata"].get("uid"):
            self.uids[obj["metadata"]["uid"]] = key
        self._emit(kind, rid, obj)

    def _remove(self, rid: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.pop((rid, namespace, name), None)
        if obj is not None:
            self.uids.pop(obj["metadata"].get("uid"), None)
            obj["metadata"]["resourceVersion"] = str(next(self.rv))
            self._emit("DELETED", rid, obj)
            self._forget(obj)
        return obj

    def _emit(self, kind: str, rid: str, obj: dict[str, Any]) -> None:
        self._changes += 1
        self._wake.set()
        rv = int(obj["metadata"]["resourceVersion"])
        snapshot = copy.deepcopy(obj)
        self.history.append((rv, kind, rid, snapshot))
        ns = obj["metadata"].get("namespace", "")
        for res, wns, q in list(self.watchers):
            if res == rid and (not wns or wns == ns):
                q.put((kind, snapshot))

    def _defaults(self, kind: Kind, obj: dict[str, Any]) -> None:
        """What the API server fills in on create."""
        spec = obj.get("spec")
        if kind.rid == "pods":
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("serviceAccountName", "default")
            if not (obj.get("status") or {}).get("phase"):
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
                self._manage_pod(obj)
        elif kind.rid == "customresourcedefinitions":
            names = (obj.get("spec") or {}).get("names") or {}
            obj["status"] = crd_body(
                (obj.get("spec") or {}).get("group", ""),
                [v.get("name") for v in (obj.get("spec") or {}).get("versions") or []],
                names.get("plural", ""),
                names.get("kind", ""),
                True,
                False,
            )["status"]
        elif kind.rid == "services" and isinstance(spec, dict):
            self._allocate_service(obj)
        elif kind.rid in ("deployments", "statefulsets", "replicasets") and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            if kind.rid == "deployments":
                spec.setdefault("progressDeadlineSeconds", 600)
                spec.setdefault("revisionHistoryLimit", 10)
                strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
                if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                    strategy["type"] = "RollingUpdate"
                    ru = strategy.setdefault("rollingUpdate", {})
                    ru.setdefault("maxSurge", "25%")
                    ru.setdefault("maxUnavailable", "25%")
            if kind.rid == "statefulsets":
                spec.setdefault("podManagementPolicy", "OrderedReady")
                spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
                spec.setdefault("revisionHistoryLimit", 10)
        elif kind.rid == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
            obj["metadata"].setdefault("labels", {})
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def _allocate_service(self, obj: dict[str, Any]) -> None:
        spec = obj["spec"]
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
            if not spec.get("clusterIP"):
                self._next_cluster_ip += 1
                n = self._next_cluster_ip
                spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                self._next_node_port += 1
                port["nodePort"] = self._next_node_port
        obj.setdefault("status", {"loadBalancer": {}})

    # ------------------------------------------------------------ verbs

    def _admit(self, kind: Kind, namespace: str, obj: dict[str, Any]) -> None:
        """Validation and admission on create, with the API server's messages."""
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))  # noqa: S311
            meta["name"] = meta["generateName"] + suffix
        name = meta.get("name", "")
        if not name:
            raise ApiError(
                422,
                f'{kind.kind} "" is invalid: metadata.name: Required value: '
                "name or generateName is required",
                kind=kind.kind,
            )
        if not NAME_RE.match(name) or len(name) > 253:
            raise ApiError(
                422,
                f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                name=name,
                kind=kind.kind,
            )
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise ApiError(
                400,
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        if namespace:
            ns = self.objects.get(("namespaces", "", namespace))
            if ns is None:
                raise ApiError(
                    404, f'namespaces "{namespace}" not found', name=namespace, kind="namespaces"
                )
            if ns["metadata"].get("deletionTimestamp") and kind.rid != "events":
                raise ApiError(
                    403,
                    f'{kind.plural} "{name}" is forbidden: unable to create new content in '
                    f"namespace {namespace} because it is being terminated",
                    reason="Forbidden",
                    name=name,
                    kind=kind.plural,
                )
        denied = self.denied.get(kind.rid)
        if denied is not None and (denied[2] is None or denied[2] == namespace):
            code, message, _ = denied
            raise ApiError(
                code,
                message
                or f'{kind.plural} "{name}" is forbidden: exceeded quota: compute-quota, '
                "requested: pods=1, used: pods=10, limited: pods=10",
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        if kind.rid == "pods":
            containers = (obj.get("spec") or {}).get("containers") or []
            if not containers:
                raise ApiError(
                    422,
                    f'Pod "{name}" is invalid: spec.containers: Required value',
                    name=name,
                    kind="Pod",
                )
            for i, c in enumerate(containers):
                if not c.get("image"):
                    raise ApiError(
                        422,
                        f'Pod "{name}" is invalid: spec.containers[{i}].image: Required value',
                        name=name,
                        kind="Pod",
                    )
        if kind.rid in ("deployments", "statefulsets", "replicasets", "daemonsets"):
            spec = obj.get("spec") or {}
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            selector = spec.get("selector")
            if not selector or not match_selector(selector, labels):
                raise ApiError(
                    422,
                    f'{kind.kind}.apps "{name}" is invalid: spec.template.metadata.labels: '
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template "
                    "`labels`",
                    name=name,
                    group="apps",
                    kind=kind.kind,
                )

    def _create(
        self, kind: Kind, namespace: str, body: dict[str, Any], admit: bool = True
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        if admit:
            self._admit(kind, namespace, obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        if (kind.rid, namespace, name) in self.objects:
            raise ApiError(
                409,
                f'{kind.qualified} "{name}" already exists',
                reason="AlreadyExists",
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        obj["apiVersion"] = obj.get("apiVersion") or kind.api_version
        obj["kind"] = kind.kind
        if namespace:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        if kind.status_subresource and kind.rid not in ("services",):
            obj.pop("status", None)
        self._defaults(kind, obj)
        self._save(kind.rid, namespace, obj, "ADDED")
        self._created(kind, obj)
        return copy.deepcopy(obj)

    def _write(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        new: dict[str, Any],
        sub: str = "",
        check_rv: bool = True,
    ) -> dict[str, Any]:
        """Replace an object (or its status) as PUT/PATCH does."""
        key = (kind.rid, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise not_found(kind, name)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if check_rv and rv and rv != current["metadata"].get("resourceVersion"):
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        if (new.get("metadata") or {}).get("name", name) != name:
            raise ApiError(
                400, "the name of the object does not match the name on the URL", name=name
            )
        if sub == "status":
            updated = copy.deepcopy(current)
            updated["status"] = copy.deepcopy(new.get("status"))
        else:
            updated = copy.deepcopy(new)
            updated.setdefault("apiVersion", current.get("apiVersion"))
            updated["kind"] = current.get("kind")
            if kind.status_subresource:
                if "status" in current:
                    updated["status"] = copy.deepcopy(current["status"])
                else:
                    updated.pop("status", None)
        meta = updated.setdefault("metadata", {})
        for k in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if k in current["metadata"]:
                meta[k] = current["metadata"][k]
            else:
                meta.pop(k, None)
        meta.pop("resourceVersion", None)

        def body_of(o: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in o.items() if k not in ("metadata", "status", "kind")}

        if sub != "status" and body_of(updated) != body_of(current):
            meta["generation"] = current["metadata"].get("generation", 1) + 1
        if kind.rid == "services":
            self._keep_service_allocation(current, updated)
        compare = copy.deepcopy(current)
        compare["metadata"].pop("resourceVersion", None)
        if compare == updated:
            return copy.deepcopy(current)  # a no-op write changes nothing, not even the RV
        self._save(kind.rid, namespace, updated, "MODIFIED")
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._finish_deletion(kind.rid, namespace, name)
        return copy.deepcopy(updated)

    def _keep_service_allocation(self, current: dict[str, Any], updated: dict[str, Any]) -> None:
        spec, old = updated.setdefault("spec", {}), current.get("spec") or {}
        for key in ("clusterIP", "clusterIPs"):
            if key in old and not spec.get(key):
                spec[key] = old[key]
        spec.setdefault("type", old.get("type", "ClusterIP"))
        spec.setdefault("sessionAffinity", old.get("sessionAffinity", "None"))
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))

    def _delete(
        self, kind: Kind, namespace: str, name: str, options: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Delete as the API server does; returns (object, gone_now)."""
        key = (kind.rid, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise not_found(kind, name)
        meta = current["metadata"]
        pre = options.get("preconditions") or {}
        if (pre.get("uid") and pre["uid"] != meta.get("uid")) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion")
        ):
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {kind.qualified} "{name}": Precondition failed',
                name=name,
                group=kind.group,
                kind=kind.plural,
            )
        policy = options.get("propagationPolicy")
        if not policy and options.get("orphanDependents") is True:
            policy = "Orphan"
        policy = policy or "Background"
        if policy not in ("Foreground", "Background", "Orphan"):
            raise ApiError(
                400,
                f'DeleteOptions.propagationPolicy: Unsupported value: "{policy}": supported '
                'values: "Foreground", "Background", "Orphan"',
            )
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            return copy.deepcopy(current), False  # already going
        if policy == "Foreground" and self._has_dependents(meta.get("uid", "")):
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and self._has_dependents(meta.get("uid", "")):
            finalizers.append("orphan")
        grace = 0.0
        if kind.rid == "pods":
            # The fake kubelet takes pod_delete_delay to stop containers (0: at once),
            # whatever grace period was asked for, except an explicit 0.
            grace = 0.0 if options.get("gracePeriodSeconds") == 0 else self.pod_delete_delay
            if not (current.get("spec") or {}).get("nodeName"):
                grace = 0.0  # never ran anywhere: no kubelet to wait for
        if kind.rid == "namespaces":
            updated = copy.deepcopy(current)
            updated["metadata"]["deletionTimestamp"] = now_iso()
            updated["metadata"]["finalizers"] = finalizers or []
            if not updated["metadata"]["finalizers"]:
                updated["metadata"].pop("finalizers")
            updated["status"] = {"phase": "Terminating"}
            self._save(kind.rid, namespace, updated, "MODIFIED")
            return copy.deepcopy(updated), False
        if not finalizers and grace <= 0:
            gone = self._remove(*key)
            assert gone is not None
            return gone, True
        updated = copy.deepcopy(current)
        updated["metadata"]["deletionTimestamp"] = now_iso()
        if finalizers:
            updated["metadata"]["finalizers"] = finalizers
        if kind.rid == "pods":
            updated["metadata"]["deletionGracePeriodSeconds"] = int(grace)
            if grace > 0:
                self._graceful[updated["metadata"]["uid"]] = time.monotonic() + grace
        self._save(kind.rid, namespace, updated, "MODIFIED")
        return copy.deepcopy(updated), False

    def _finish_deletion(self, rid: str, namespace: str, name: str) -> None:
        """A deleting object with no finalizers left (and no grace period) goes."""
        obj = self.objects.get((rid, namespace, name))
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        if obj["metadata"].get("finalizers"):
            return
        uid = obj["metadata"].get("uid", "")
        if uid in self._graceful and self._graceful[uid] > time.monotonic():
            return
        if rid == "namespaces":
            return  # the namespace controller removes it once empty
        self._graceful.pop(uid, None)
        self._remove(rid, namespace, name)

    def _has_dependents(self, uid: str) -> bool:
        return any(
            any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])
            for o in self.objects.values()
        )

    # ------------------------------------------------------------ HTTP

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        code: int,
        body: Any,
        content_type: str = "application/json",
    ) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, path: str) -> tuple[str, str, str, str, str, str] | None:
        """(group, version, plural, namespace, name, subresource) of an API path."""
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, parts = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, parts = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = ""
        if parts and parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        if not parts:
            return None
        resource = parts[0]
        name = parts[1] if len(parts) > 1 else ""
        sub = parts[2] if len(parts) > 2 else ""
        return group, version, resource, namespace, name, sub

    def _kind_for(self, group: str, version: str, plural: str) -> Kind | None:
        for kind in self.kinds.values():
            if kind.plural == plural and kind.group == group and version in kind.versions:
                return kind
        return None

    def _take_fault(
        self, verb: str, plural: str, rid: str, sub: str, is_watch: bool, has_name: bool
    ) -> tuple[int, str | None] | None:
        k8s = set(K8S_VERBS.get(verb, set()))
        if verb == "GET":
            k8s = {"watch"} if is_watch else ({"get"} if has_name else {"list"})
        names = {plural, rid} | ({f"{plural}/{sub}", f"{rid}/{sub}"} if sub else set())
        with self.lock:
            for i, (fverb, fres, code, message) in enumerate(self.faults):
                if (fverb == verb or fverb in k8s) and fres in names:
                    del self.faults[i]
                    return code, message
        return None

    def _handle(self, h: BaseHTTPRequestHandler, verb: str) -> None:
        url = urlparse(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(h, 401, status_body(401, "Unauthorized", "Unauthorized"))
            return
        self.requests.append((verb, url.path, query))
        try:
            discovery = self._discovery(url.path)
            if discovery is not None:
                self._send(h, 200, discovery)
                return
            route = self._route(url.path)
            if route is None:
                raise ApiError(404, "the server could not find the requested resource")
            group, version, plural, namespace, name, sub = route
            kind = self._kind_for(group, version, plural)
            is_watch = query.get("watch") in ("true", "1", "True")
            fault = self._take_fault(
                verb, plural, kind.rid if kind else plural, sub, is_watch, bool(name)
            )
            if fault is not None:
                code, message = fault
                error = fault_error(code, verb, kind, plural, namespace, name)
                if message:
                    error.body["message"] = message
                raise error
            if kind is None:
                raise ApiError(
                    404,
                    "the server could not find the requested resource",
                    details={"group": group, "kind": plural},
                )
            if namespace and not kind.namespaced:
                raise ApiError(404, "the server could not find the requested resource")
            self._dispatch(h, verb, kind, version, namespace, name, sub, query, raw)
        except ApiError as exc:
            self._send(h, exc.code, exc.body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _dispatch(
        self,
        h: BaseHTTPRequestHandler,
        verb: str,
        kind: Kind,
        version: str,
        namespace: str,
        name: str,
        sub: str,
        query: dict[str, str],
        raw: bytes,
    ) -> None:
        def out(obj: dict[str, Any]) -> dict[str, Any]:
            if kind.group and not kind.builtin:
                obj["apiVersion"] = f"{kind.group}/{version}"
            return obj

        if verb == "GET" and not name:
            if query.get("watch") in ("true", "1", "True"):
                self._watch(h, kind, namespace, query)
                return
            self._send(h, 200, self._list_body(kind, namespace, query, out))
            return
        if verb == "DELETE" and not name:
            with self.lock:
                body = json.loads(raw or b"{}")
                doomed = [
                    o["metadata"]["name"]
                    for o in self._select(kind, namespace, query)
                    if not o["metadata"].get("deletionTimestamp")
                ]
                for doomed_name in doomed:
                    self._delete(kind, namespace, doomed_name, body)
            self._send(h, 200, {**status_body(200, "", ""), "status": "Success"})
            return
        if verb == "POST" and sub == "eviction":
            with self.lock:
                self._delete(
                    kind, namespace, name, (json.loads(raw or b"{}").get("deleteOptions") or {})
                )
            self._send(h, 201, {**status_body(201, "", ""), "status": "Success"})
            return
        if verb == "POST":
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ApiError(400, "the body of the request was in an unknown format")
            with self.lock:
                created = self._create(kind, namespace, body)
            lost = next(
                (f for f in self.lost_answers if f[0] == verb and f[1] in (kind.plural, kind.rid)),
                None,
            )
            if lost is not None:
                self.lost_answers.remove(lost)
                self._send(h, lost[2], status_body(lost[2], "Timeout", "the answer was lost"))
            else:
                self._send(h, 201, out(created))
            return
        if sub == "log":
            if kind.rid != "pods":
                raise ApiError(404, "the server could not find the requested resource")
            if self.get("pods", namespace, name) is None:
                raise not_found(kind, name)
            lines = self.logs[name].splitlines(keepends=True)
            tail = int(query.get("tailLines") or len(lines) or 1)
            self._send(h, 200, "".join(lines[-tail:]), "text/plain")
            return
        if sub == "scale":
            self._scale(h, verb, kind, namespace, name, raw, h.headers.get("Content-Type", ""))
            return
        if sub not in ("", "status"):
            raise ApiError(404, "the server could not find the requested resource")
        if verb == "GET":
            with self.lock:
                obj = self.objects.get((kind.rid, namespace, name))
                if obj is None:
                    raise not_found(kind, name)
                self._send(h, 200, out(copy.deepcopy(obj)))
            return
        if verb == "DELETE":
            options = json.loads(raw or b"{}")
            for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
                if key in query:
                    value: Any = query[key]
                    if key == "gracePeriodSeconds":
                        value = int(value)
                    elif key == "orphanDependents":
                        value = value == "true"
                    options.setdefault(key, value)
            with self.lock:
                obj, gone = self._delete(kind, namespace, name, options)
            if gone and kind.builtin and kind.rid not in RETURN_DELETED:
                self._send(h, 200, success_body(kind, obj))
            else:
                self._send(h, 200, out(obj))
            return
        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        with self.lock:
            current = self.objects.get((kind.rid, namespace, name))
            if (
                verb == "PATCH"
                and current is None
                and content_type == "application/apply-patch+yaml"
            ):
                body = yaml.safe_load(raw or b"{}")
                created = self._create(kind, namespace, body)
                self._send(h, 201, out(created))
                return
            if current is None:
                raise not_found(kind, name)
            if verb == "PATCH":
                updated = self._patched(kind, current, raw, content_type)
                result = self._write(kind, namespace, name, updated, sub, check_rv=True)
            else:
                body = json.loads(raw or b"{}")
                result = self._write(kind, namespace, name, body, sub)
        self._send(h, 200, out(result))

    def _patched(
        self, kind: Kind, current: dict[str, Any], raw: bytes, content_type: str
    ) -> dict[str, Any]:
        if content_type == "application/json-patch+json":
            ops = json.loads(raw or b"[]")
            return json_patch(current, ops)  # type: ignore[no-any-return]
        if content_type == "application/apply-patch+yaml":
            return merge_patch(current, yaml.safe_load(raw or b"{}"))  # type: ignore[no-any-return]
        body = json.loads(raw or b"{}")
        if content_type == "application/strategic-merge-patch+json":
            if not kind.builtin:
                raise ApiError(
                    415,
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml",
                )
            return strategic_merge_patch(current, body)  # type: ignore[no-any-return]
        return merge_patch(current, body)  # type: ignore[no-any-return]

    def _scale(
        self,
        h: BaseHTTPRequestHandler,
        verb: str,
        kind: Kind,
        namespace: str,
        name: str,
        raw: bytes,
        content_type: str,
    ) -> None:
        if kind.rid not in SCALABLE:
            raise ApiError(404, "the server could not find the requested resource")
        with self.lock:
            obj = self.objects.get((kind.rid, namespace, name))
            if obj is None:
                raise not_found(kind, name)

            def scale_of(o: dict[str, Any]) -> dict[str, Any]:
                meta = o["metadata"]
                return {
                    "kind": "Scale",
                    "apiVersion": "autoscaling/v1",
                    "metadata": {
                        k: meta[k]
                        for k in (
                            "name",
                            "namespace",
                            "uid",
                            "resourceVersion",
                            "creationTimestamp",
                        )
                        if k in meta
                    },
                    "spec": {"replicas": (o.get("spec") or {}).get("replicas", 1)},
                    "status": {
                        "replicas": (o.get("status") or {}).get("replicas", 0),
                        "selector": selector_string((o.get("spec") or {}).get("selector")),
                    },
                }

            if verb == "GET":
                self._send(h, 200, scale_of(obj))
                return
            current = scale_of(obj)
            if verb == "PATCH":
                ct = content_type.split(";")[0].strip()
                wanted = self._patched(self.kinds["deployments"], current, raw, ct)
            else:
                wanted = json.loads(raw or b"{}")
            replicas = (wanted.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(
                    422,
                    f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                    f"{replicas}: must be greater than or equal to 0",
                )
            updated = copy.deepcopy(obj)
            updated["spec"]["replicas"] = replicas
            rv = (wanted.get("metadata") or {}).get("resourceVersion")
            if rv:
                updated["metadata"]["resourceVersion"] = rv
            else:
                updated["metadata"].pop("resourceVersion", None)
            result = self._write(kind, namespace, name, updated)
            self._send(h, 200, scale_of(result))

    def _select(self, kind: Kind, namespace: str, query: dict[str, str]) -> list[dict[str, Any]]:
        return [
            o
            for (r, ns, _), o in self.objects.items()
            if r == kind.rid
            and (not namespace or ns == namespace)
            and match_labels(o["metadata"].get("labels") or {}, query.get("labelSelector", ""))
            and match_fields(o, query.get("fieldSelector", ""))
        ]

    def _list_body(
        self, kind: Kind, namespace: str, query: dict[str, str], out: Any
    ) -> dict[str, Any]:
        with self.lock:
            items = [out(copy.deepcopy(o)) for o in self._select(kind, namespace, query)]
            rv = str(next(self.rv))
        limit = int(query.get("limit") or 0)
        start = int(query.get("continue") or 0)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if limit:
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": meta,
            "items": items,
        }

    def _discovery(self, path: str) -> dict[str, Any] | None:
        """/version, /api, /apis and the resource lists under them."""
        path = path.rstrip("/")
        if path == "/version":
            return {
                "major": "1",
                "minor": "30",
                "gitVersion": "v1.30.1",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        with self.lock:
            kinds = list(self.kinds.values())
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for k in kinds:
                if k.group:
                    versions = groups.setdefault(k.group, [])
                    versions.extend(v for v in k.versions if v not in versions)
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                        "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                    }
                    for g, vs in groups.items()
                ],
            }
        parts = [p for p in path.split("/") if p]
        if (parts[:1] == ["api"] and len(parts) == 2) or (
            parts[:1] == ["apis"] and len(parts) == 3
        ):
            group = "" if parts[0] == "api" else parts[1]
            version = parts[-1]
            served = [k for k in kinds if k.group == group and version in k.versions]
            if not served:
                return None
            resources = []
            for k in served:
                verbs = [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]
                resources.append(
                    {
                        "name": k.plural,
                        "singularName": k.kind.lower(),
                        "namespaced": k.namespaced,
                        "kind": k.kind,
                        "verbs": verbs,
                    }
                )
                if k.status_subresource:
                    resources.append(
                        {
                            "name": f"{k.plural}/status",
                            "singularName": "",
                            "namespaced": k.namespaced,
                            "kind": k.kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources,
            }
        return None

    def _watch(
        self, h: BaseHTTPRequestHandler, kind: Kind, namespace: str, query: dict[str, str]
    ) -> None:
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 30)
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")

        def wanted(obj: dict[str, Any]) -> bool:
            return match_labels(obj["metadata"].get("labels") or {}, labels) and match_fields(
                obj, fields
            )

        q: queue.Queue[Any] = queue.Queue()
        with self.lock:
            first = self.history[0] if self.history else None
            expired = first is not None and (
                since < first[0] if first[1] == "BOOKMARK" else since < first[0] - 1
            )
            if since and expired:
                self._send(h, 410, status_body(410, "Expired", "too old resource version"))
                return
            if since:
                backlog = [
                    (k, obj)
                    for rv, k, res, obj in self.history
                    if res == kind.rid
                    and rv > since
                    and (not namespace or obj["metadata"].get("namespace") == namespace)
                ]
            else:  # no resourceVersion: the current state first, as ADDED events
                backlog = [("ADDED", copy.deepcopy(o)) for o in self._select(kind, namespace, {})]
            entry = (kind.rid, namespace, q)
            self.watchers.append(entry)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def write(k: str, obj: dict[str, Any]) -> None:
            if k != "BOOKMARK" and not wanted(obj):
                return
            line = json.dumps({"type": k, "object": obj}).encode() + b"\n"
            h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            h.wfile.flush()

        deadline = time.monotonic() + timeout
        try:
            for k, obj in backlog:
                write(k, obj)
            while not self._stopped.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = q.get(timeout=min(remaining, 0.5))
                except queue.Empty:
                    continue
                if item is None:
                    break
                write(*item)
            h.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self.lock:
                if entry in self.watchers:
                    self.watchers.remove(entry)


def crd_body(
    group: str,
    versions: list[str],
    plural: str,
    kind: str,
    namespaced: bool,
    status_subresource: bool,
) -> dict[str, Any]:
    now = now_iso()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
            },
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    **({"subresources": {"status": {}}} if status_subresource else {}),
                }
                for i, v in enumerate(versions)
            ],
        },
        "status": {
            "acceptedNames": {"plural": plural, "kind": kind},
            "storedVersions": versions[:1],
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": now,
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        },
    }
