"""A fake Kubernetes API server for tests: real HTTP, real JSON, in memory.

No real API server can run here, so this speaks enough of the Kubernetes REST
API for the official `kubernetes` client: create/get/list/watch/replace/patch/
delete of namespaced and cluster-scoped objects, label and field selectors,
resourceVersions, pod logs and events. A small "kubelet" moves pods through
their phases the way a real node would, and images with special names make it
fail the way real clusters fail:

    fake/unschedulable     stays Pending, PodScheduled=False (Unschedulable)
    fake/imagepullbackoff  container waiting: ImagePullBackOff
    fake/createerror       container waiting: CreateContainerConfigError
    fake/oomkilled         Failed, container terminated OOMKilled (137)
    fake/evicted           Failed, reason Evicted
    fake/exit1             Failed, container terminated Error (1)
    anything else          Running (and Ready)

Faults: `fail_next(verb, resource, status)` answers the next matching request
with that status.
"""

from __future__ import annotations

import copy
import itertools
import json
import queue
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

CLUSTER_SCOPED = {"nodes", "namespaces"}
KINDS = {
    "pods": ("v1", "Pod"),
    "events": ("v1", "Event"),
    "nodes": ("v1", "Node"),
    "namespaces": ("v1", "Namespace"),
    "services": ("v1", "Service"),
    "endpoints": ("v1", "Endpoints"),
    "secrets": ("v1", "Secret"),
    "configmaps": ("v1", "ConfigMap"),
    "deployments": ("apps/v1", "Deployment"),
    "daemonsets": ("apps/v1", "DaemonSet"),
    "statefulsets": ("apps/v1", "StatefulSet"),
    "replicasets": ("apps/v1", "ReplicaSet"),
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def match_labels(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_value(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def match_fields(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, value = term.replace("==", "=").split("=", 1)
        if str(field_value(obj, key) or "") != value:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.lock = threading.RLock()
        self.rv = itertools.count(1)
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, type, resource, obj)
        self.watchers: list[tuple[str, str, queue.Queue[Any]]] = []
        self.faults: list[tuple[str, str, int]] = []
        self.lost_answers: list[tuple[str, str, int]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # verb, path, query
        self.logs: dict[str, str] = defaultdict(lambda: "probe starting\n")
        self.kubelet_delay = 0.05
        self.token = "fake-token-" + uuid.uuid4().hex
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
        self._stopped = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.add("namespaces", "", {"metadata": {"name": "kubeprobe"}})
        self.add("namespaces", "", {"metadata": {"name": "kube-system"}})

    # ------------------------------------------------------------ test API

    def stop(self) -> None:
        self._stopped.set()
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

    def fail_next(self, verb: str, resource: str, status: int) -> None:
        self.faults.append((verb, resource, status))

    def lose_next_answer(self, verb: str, resource: str, status: int) -> None:
        """Carry out the next matching request, then answer it with an error
        (a gateway timeout after the API server already saved the object)."""
        self.lost_answers.append((verb, resource, status))

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (r, ns, _), o in self.objects.items()
                if r == resource and (namespace is None or ns == namespace)
            ]

    def add(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            api_version, kind = KINDS[resource]
            obj = copy.deepcopy(obj)
            obj.setdefault("apiVersion", api_version)
            obj.setdefault("kind", kind)
            meta = obj.setdefault("metadata", {})
            if namespace:
                meta["namespace"] = namespace
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta.setdefault("generation", 1)
            self._save(resource, namespace, obj, "ADDED")
            return copy.deepcopy(obj)

    def update(self, resource: str, namespace: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self._save(resource, namespace, copy.deepcopy(obj), "MODIFIED")

    def remove(self, resource: str, namespace: str, name: str) -> None:
        with self.lock:
            obj = self.objects.pop((resource, namespace, name), None)
            if obj is not None:
                obj["metadata"]["resourceVersion"] = str(next(self.rv))
                self._emit("DELETED", resource, obj)

    def event(
        self,
        namespace: str,
        involved: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
    ) -> None:
        meta = involved["metadata"]
        self.add(
            "events",
            namespace,
            {
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:8]}"},
                "involvedObject": {
                    "kind": involved.get("kind"),
                    "name": meta["name"],
                    "namespace": namespace,
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "lastTimestamp": now_iso(),
            },
        )

    # ------------------------------------------------------------ storage

    def _save(self, resource: str, namespace: str, obj: dict[str, Any], kind: str) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        self.objects[(resource, namespace, obj["metadata"]["name"])] = obj
        self._emit(kind, resource, obj)

    def _emit(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, kind, resource, copy.deepcopy(obj)))
        ns = obj["metadata"].get("namespace", "")
        for res, wns, q in list(self.watchers):
            if res == resource and (not wns or wns == ns):
                q.put((kind, copy.deepcopy(obj)))

    # ------------------------------------------------------------ kubelet

    def _kubelet(self, namespace: str, name: str) -> None:
        """Move a new pod along as a node would, by its image."""

        def step(mutate: Any) -> bool:
            time.sleep(self.kubelet_delay)
            with self.lock:
                pod = self.objects.get(("pods", namespace, name))
                if pod is None:
                    return False
                mutate(pod)
                self._save("pods", namespace, pod, "MODIFIED")
                return True

        pod = self.get("pods", namespace, name)
        if pod is None:
            return
        image = pod["spec"]["containers"][0].get("image", "")
        cname = pod["spec"]["containers"][0]["name"]
        if image == "fake/unschedulable":

            def unsched(p: dict[str, Any]) -> None:
                p["status"] = {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": "0/3 nodes are available: 3 Insufficient cpu.",
                        }
                    ],
                }

            step(unsched)
            self.event(
                namespace,
                pod,
                "FailedScheduling",
                "0/3 nodes are available: 3 Insufficient cpu.",
                "Warning",
            )
            return

        def scheduled(p: dict[str, Any]) -> None:
            p["spec"]["nodeName"] = "node-1"
            p["status"] = {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": cname,
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
            }

        if not step(scheduled):
            return
        self.event(
            namespace, pod, "Scheduled", f"Successfully assigned {namespace}/{name} to node-1"
        )
        waiting = {
            "fake/imagepullbackoff": ("ImagePullBackOff", f'Back-off pulling image "{image}"'),
            "fake/createerror": ("CreateContainerConfigError", 'secret "probe-creds" not found'),
        }
        if image in waiting:
            reason, message = waiting[image]

            def wait(p: dict[str, Any]) -> None:
                p["status"]["containerStatuses"][0]["state"] = {
                    "waiting": {"reason": reason, "message": message}
                }

            step(wait)
            self.event(namespace, pod, "Failed", message, "Warning")
            return

        def running(p: dict[str, Any]) -> None:
            p["status"]["phase"] = "Running"
            p["status"]["conditions"].append({"type": "Ready", "status": "True"})
            p["status"]["containerStatuses"][0].update(
                {"ready": True, "state": {"running": {"startedAt": now_iso()}}}
            )

        if not step(running):
            return
        self.event(namespace, pod, "Started", f"Started container {cname}")
        failures = {
            "fake/oomkilled": ("OOMKilled", 137, "", ""),
            "fake/exit1": ("Error", 1, "", ""),
            "fake/evicted": ("", None, "Evicted", "The node was low on resource: memory."),
        }
        if image in failures:
            creason, code, preason, pmessage = failures[image]

            def fail(p: dict[str, Any]) -> None:
                p["status"]["phase"] = "Failed"
                if preason:
                    p["status"]["reason"], p["status"]["message"] = preason, pmessage
                state: dict[str, Any] = {
                    "terminated": {
                        "reason": creason or "Error",
                        "exitCode": code if code is not None else 137,
                    }
                }
                p["status"]["containerStatuses"][0].update({"ready": False, "state": state})

            step(fail)
            self.event(
                namespace,
                pod,
                preason or "BackOff",
                pmessage or f"container exited: {creason}",
                "Warning",
            )

    # ------------------------------------------------------------ HTTP

    def _route(self, path: str) -> tuple[str, str, str, str]:
        """(resource, namespace, name, subresource) from an API path."""
        parts = [p for p in path.split("/") if p]
        parts = parts[2:] if parts[0] == "api" else parts[3:]  # drop api/v1 or apis/g/v
        namespace = ""
        if parts and parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        resource = parts[0] if parts else ""
        name = parts[1] if len(parts) > 1 else ""
        sub = parts[2] if len(parts) > 2 else ""
        return resource, namespace, name, sub

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

    def _handle(self, h: BaseHTTPRequestHandler, verb: str) -> None:
        url = urlparse(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(h, 401, status_body(401, "Unauthorized", "Unauthorized"))
            return
        resource, namespace, name, sub = self._route(url.path)
        self.requests.append((verb, url.path, query))
        for i, (fverb, fres, code) in enumerate(self.faults):
            if fverb == verb and fres == resource:
                del self.faults[i]
                self._send(h, code, status_body(code, "InjectedFault", f"injected fault {code}"))
                return
        if resource not in KINDS:
            self._send(
                h,
                404,
                status_body(
                    404,
                    "NotFound",
                    f"the server could not find the requested resource ({resource})",
                ),
            )
            return
        key = (resource, namespace, name)
        if verb == "GET" and sub == "log":
            if key not in self.objects:
                self._send(h, 404, status_body(404, "NotFound", f'pods "{name}" not found'))
                return
            lines = self.logs[name].splitlines(keepends=True)
            tail = int(query.get("tailLines") or len(lines) or 1)
            self._send(h, 200, "".join(lines[-tail:]), "text/plain")
            return
        if verb == "GET" and not name:
            if query.get("watch") in ("true", "1", "True"):
                self._watch(h, resource, namespace, query)
                return
            with self.lock:
                items = [
                    copy.deepcopy(o)
                    for (r, ns, _), o in self.objects.items()
                    if r == resource
                    and (not namespace or ns == namespace)
                    and match_labels(
                        o["metadata"].get("labels") or {}, query.get("labelSelector", "")
                    )
                    and match_fields(o, query.get("fieldSelector", ""))
                ]
                rv = str(next(self.rv))
            kind = KINDS[resource][1]
            self._send(
                h,
                200,
                {
                    "kind": f"{kind}List",
                    "apiVersion": KINDS[resource][0],
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                },
            )
            return
        if verb == "GET":
            obj = self.get(*key)
            if obj is None:
                self._send(h, 404, status_body(404, "NotFound", f'{resource} "{name}" not found'))
            else:
                self._send(h, 200, obj)
            return
        if verb == "POST":
            body = json.loads(raw or b"{}")
            name = body.get("metadata", {}).get("name", "")
            if namespace and ("namespaces", "", namespace) not in self.objects:
                self._send(
                    h, 404, status_body(404, "NotFound", f'namespaces "{namespace}" not found')
                )
                return
            if (resource, namespace, name) in self.objects:
                self._send(
                    h, 409, status_body(409, "AlreadyExists", f'{resource} "{name}" already exists')
                )
                return
            created = self.add(resource, namespace, body)
            lost = next((f for f in self.lost_answers if f[0] == verb and f[1] == resource), None)
            if lost is not None:
                self.lost_answers.remove(lost)
                self._send(h, lost[2], status_body(lost[2], "Timeout", "the answer was lost"))
            else:
                self._send(h, 201, created)
            if resource == "pods":
                threading.Thread(target=self._kubelet, args=(namespace, name), daemon=True).start()
            return
        if key not in self.objects:
            self._send(h, 404, status_body(404, "NotFound", f'{resource} "{name}" not found'))
            return
        if verb == "DELETE":
            obj = self.get(*key)
            self.remove(*key)
            self._send(h, 200, obj)
            return
        with self.lock:
            current = self.objects[key]
            body = json.loads(raw or b"{}")
            updated = merge_patch(current, body) if verb == "PATCH" else body
            updated.setdefault("metadata", {}).update(
                {
                    k: current["metadata"][k]
                    for k in ("uid", "creationTimestamp", "namespace")
                    if k in current["metadata"]
                }
            )
            if updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            self._save(resource, namespace, updated, "MODIFIED")
        self._send(h, 200, copy.deepcopy(updated))

    def _watch(
        self, h: BaseHTTPRequestHandler, resource: str, namespace: str, query: dict[str, str]
    ) -> None:
        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 30)
        q: queue.Queue[Any] = queue.Queue()
        with self.lock:
            if since and self.history and since < self.history[0][0] - 1:
                self._send(h, 410, status_body(410, "Expired", "too old resource version"))
                return
            backlog = (
                [
                    (kind, obj)
                    for rv, kind, res, obj in self.history
                    if res == resource
                    and rv > since
                    and (not namespace or obj["metadata"].get("namespace") == namespace)
                ]
                if since
                else []
            )
            entry = (resource, namespace, q)
            self.watchers.append(entry)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def write(kind: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            h.wfile.flush()

        deadline = time.monotonic() + timeout
        try:
            for kind, obj in backlog:
                write(kind, obj)
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
