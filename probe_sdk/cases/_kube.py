"""What the Kubernetes cases share: a client, generic REST calls, waiting, naming and cleanup.

The cases use the official `kubernetes` client for configuration, auth, TLS
and transport, and speak to the API with plain dicts through one generic
`Kube.call`: manifests read like the YAML operators know, and the same code
reaches core, apps and custom resources.

Every Kubernetes case also reads:

| env | default | meaning |
| --- | --- | --- |
| `KUBECONFIG` | (in-cluster service account) | kubeconfig file of the target cluster |
| `PROBE_NAMESPACE` | the pod's own namespace, else `kubeprobe` | where the case creates its objects |
| `PROBE_IMAGE` | `registry.k8s.io/pause:3.10` | image of the pods the case creates |
| `STEP_THRESHOLD_MS` | `60000` | a step slower than this fails (per step: `THRESHOLD_<STEP>_MS`, e.g. `THRESHOLD_SCHEDULED_MS`) |
| `WAIT_TIMEOUT_SECONDS` | `120` | how long one step waits for the cluster to reach a state |
| `REQUEST_TIMEOUT_SECONDS` | `15` | timeout of one API request |
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from probe_sdk import Probe
from probe_sdk.cases import _env

SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubeprobe"}
RUN_LABEL = "kubeprobe.io/probe-run"
POLL_SECONDS = 0.2


class KubeError(RuntimeError):
    """An API call failed; the message names the call and the server's answer."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotReady(AssertionError):
    """The cluster did not reach the awaited state in time."""


def _explain(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        message = body.get("message") or exc.reason
    except (TypeError, ValueError):
        # Not a Status: e.g. the plain "404 page not found\n" of an API group not served.
        message = (str(exc.body or "").strip() or exc.reason or "")[:300]
    return "HTTP %s: %s" % (exc.status, message)


class Kube:
    """One cluster: generic JSON calls against its API server."""

    def __init__(self, api: client.ApiClient, label: str = "") -> None:
        self.api = api
        self.label = label  # e.g. a virtual cluster's name, for messages
        self.timeout = _env.number("REQUEST_TIMEOUT_SECONDS", 15)

    def call(
        self,
        method: str,
        path: str,
        body: Optional[Dict[str, Any]] = None,
        query: Optional[Dict[str, str]] = None,
        content_type: str = "application/json",
    ) -> Dict[str, Any]:
        prefix = "%s: " % self.label if self.label else ""
        what = "%s%s %s" % (prefix, method, path)
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            answer = self.api.call_api(*request, _request_timeout=self.timeout)
            answer.read()
        except ApiException as exc:
            raise KubeError("%s: %s" % (what, _explain(exc)), exc.status or 0) from None
        except Exception as exc:  # urllib3: refused, TLS, timeouts
            raise KubeError("%s: %s: %s" % (what, type(exc).__name__, exc)) from None
        if not 200 <= answer.status < 300:
            raise KubeError(
                "%s: %s" % (what, _explain(ApiException(http_resp=answer))), answer.status
            )
        return json.loads(answer.data or b"{}")

    def get(self, path: str) -> Optional[Dict[str, Any]]:
        """The object, or None when it does not exist."""
        try:
            return self.call("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        return self.call("POST", path, body)

    def patch(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        return self.call("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str) -> None:
        """Delete with background propagation; an object already gone is fine."""
        try:
            self.call("DELETE", path, {"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status != 404:
                raise

    def items(self, path: str, label_selector: str = "") -> List[Dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        return self.call("GET", path, query=query).get("items") or []

    def events_for(self, namespace: str, name: str, limit: int = 5) -> List[str]:
        """Recent warning events of one object, newest last, as `Reason: message`."""
        try:
            events = self.items(path(namespace, "events"))
        except KubeError:
            return []
        mine = [
            e
            for e in events
            if (e.get("involvedObject") or {}).get("name") == name and e.get("type") == "Warning"
        ]
        mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return ["%s: %s" % (e.get("reason", ""), e.get("message", "")) for e in mine[-limit:]]


def path(
    namespace: Optional[str],
    plural: str,
    name: str = "",
    api_version: str = "v1",
) -> str:
    """The REST path of a resource collection or object (core or named group)."""
    base = "/api/v1" if api_version == "v1" else "/apis/" + api_version
    if namespace:
        base += "/namespaces/" + namespace
    base += "/" + plural
    return base + "/" + name if name else base


def parse_resource(spec: str, env_name: str) -> Tuple[str, str]:
    """`apps/v1/deployments` or `v1/configmaps` → (api_version, plural)."""
    parts = [p for p in spec.strip().split("/") if p]
    if len(parts) == 2 and parts[0].startswith("v"):
        return parts[0], parts[1]
    if len(parts) == 3:
        return parts[0] + "/" + parts[1], parts[2]
    raise _env.ConfigError(
        "%s must look like 'v1/configmaps' or 'batch/v1/cronjobs', got %r" % (env_name, spec)
    )


def connect(kubeconfig: Optional[str] = None, label: str = "") -> Kube:
    """A client from kubeconfig text, else the KUBECONFIG file, else the pod's service account."""
    # The client's default is to wait forever on a silent server; a probe must not.
    socket.setdefaulttimeout(_env.number("REQUEST_TIMEOUT_SECONDS", 15))
    where = label or "KUBECONFIG"
    try:
        if kubeconfig is not None:
            loaded = yaml.safe_load(kubeconfig)
            if not isinstance(loaded, dict):
                raise ConfigException("not a kubeconfig mapping")
            api = config.new_client_from_config_dict(loaded)
        elif os.environ.get("KUBECONFIG", "").strip():
            where = "KUBECONFIG=%s" % os.environ["KUBECONFIG"].strip()
            api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"].strip())
        else:
            where = "in-cluster service account"
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api = client.ApiClient(configuration)
    except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError) as exc:
        raise _env.ConfigError("cannot load %s: %s" % (where, exc)) from None
    return Kube(api, label)


def namespace() -> str:
    explicit = _env.text("PROBE_NAMESPACE", "")
    if explicit:
        return explicit
    try:
        with open(SA_NAMESPACE_FILE) as handle:
            return handle.read().strip() or "kubeprobe"
    except OSError:
        return "kubeprobe"


def image() -> str:
    return _env.text("PROBE_IMAGE", "registry.k8s.io/pause:3.10")


def wait_timeout() -> float:
    return _env.number("WAIT_TIMEOUT_SECONDS", 120)


def threshold(step: str) -> float:
    """A step's latency threshold: THRESHOLD_<STEP>_MS, else STEP_THRESHOLD_MS."""
    specific = "THRESHOLD_%s_MS" % re.sub(r"[^A-Z0-9]+", "_", step.upper()).strip("_")
    return _env.number(specific, _env.number("STEP_THRESHOLD_MS", 60000))


def unique_name(kind: str) -> str:
    """A DNS-1123 name no other run uses: kubeprobe-<kind>-<random>."""
    return "kubeprobe-%s-%s" % (kind, uuid.uuid4().hex[:8])


def labels(case: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Labels on every object a case creates, so leftovers can be found and swept."""
    out = dict(MANAGED_BY)
    out["kubeprobe.io/case"] = case
    run_id = os.environ.get("KUBEPROBE_RUN_ID", "")
    if run_id:
        out[RUN_LABEL] = run_id
    out.update(extra or {})
    return out


def wait_for(
    what: str,
    check: Callable[[], Tuple[bool, str]],
    timeout: Optional[float] = None,
) -> str:
    """Poll check() → (done, state) until done; on timeout fail with the last state seen."""
    limit = wait_timeout() if timeout is None else timeout
    deadline = time.monotonic() + limit
    state = "not checked yet"
    while True:
        try:
            done, state = check()
        except KubeError as exc:
            if exc.status in (401, 403):
                # A rejected token or a missing RBAC verb does not heal by waiting:
                # fail now with the API's answer instead of after the whole timeout.
                raise
            done, state = False, str(exc)
        if done:
            return state
        if time.monotonic() >= deadline:
            raise NotReady("%s: not reached after %g s; last seen: %s" % (what, limit, state))
        time.sleep(POLL_SECONDS)


def pod_state(pod: Optional[Dict[str, Any]]) -> str:
    """Why a pod is where it is, in one line: phase, failing conditions, container reasons."""
    if pod is None:
        return "pod does not exist"
    status = pod.get("status") or {}
    parts = ["phase %s" % status.get("phase", "Unknown")]
    if status.get("reason"):
        parts.append("%s: %s" % (status["reason"], status.get("message", "")))
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True" and condition.get("reason"):
            parts.append(
                "%s=False (%s: %s)"
                % (condition.get("type"), condition.get("reason"), condition.get("message", ""))
            )
    for container in status.get("containerStatuses") or []:
        for key in ("waiting", "terminated"):
            detail = (container.get("state") or {}).get(key)
            if detail and detail.get("reason") not in (None, "ContainerCreating", "Completed"):
                parts.append(
                    "container %s %s: %s %s"
                    % (
                        container.get("name"),
                        key,
                        detail.get("reason"),
                        detail.get("message", "") or "exit code %s" % detail.get("exitCode", "?"),
                    )
                )
    return "; ".join(parts)


def pod_finished(pod: Optional[Dict[str, Any]]) -> bool:
    return ((pod or {}).get("status") or {}).get("phase") in ("Failed", "Succeeded")


def pod_condition(pod: Optional[Dict[str, Any]], kind: str) -> bool:
    for condition in ((pod or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def with_events(kube: Kube, namespace: str, name: str, state: str) -> str:
    """A state line plus the object's recent warning events: the root-cause hint."""
    events = kube.events_for(namespace, name)
    return state + ("; events: " + " | ".join(events) if events else "")


@contextlib.contextmanager
def cleanup_step(probe: Probe, name: str) -> Iterator[None]:
    """A cleanup step: recorded like any step, but never hides the error that led here."""
    try:
        with probe.step(name, threshold_ms=threshold(name)):
            yield
    except Exception:  # noqa: S110 (the step recorded it; the first error is the one to raise)
        pass


def wait_gone(kube: Kube, object_path: str, what: str) -> None:
    def check() -> Tuple[bool, str]:
        obj = kube.get(object_path)
        if obj is None:
            return True, "gone"
        deleting = (obj.get("metadata") or {}).get("deletionTimestamp")
        return False, "still there" + (" (terminating)" if deleting else "")

    wait_for(what + " deleted", check)


def pod_manifest(
    name: str,
    case: str,
    node: str = "",
    extra_labels: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """A short-lived pause pod; pinned to a node when node is given."""
    spec: Dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "probe",
                "image": image(),
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "100m", "memory": "64Mi"},
                },
            }
        ],
    }
    if node:
        spec["nodeName"] = node
        spec["tolerations"] = [{"operator": "Exists"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels(case, extra_labels)},
        "spec": spec,
    }


def run_pod_lifecycle(probe: Probe, kube: Kube, ns: str, prefix: str = "") -> None:
    """Create a pod, wait scheduled, running and ready, delete it, wait gone; each step timed."""
    name = unique_name("pod")
    pod_path = path(ns, "pods", name)

    def step(label: str) -> Any:
        return probe.step(prefix + label, threshold_ms=threshold(label))

    def pod_reached(predicate: Callable[[Dict[str, Any]], bool]) -> Callable[[], Tuple[bool, str]]:
        def check() -> Tuple[bool, str]:
            pod = kube.get(pod_path)
            if pod is not None and predicate(pod):
                return True, pod_state(pod)
            state = with_events(kube, ns, name, pod_state(pod))
            if pod_finished(pod):  # it will never get there: say why now
                raise NotReady("pod %s ended: %s" % (name, state))
            return False, state

        return check

    created = False
    try:
        with step("create"):
            # Marked first: a create that timed out may still have made the pod.
            created = True
            kube.create(path(ns, "pods"), pod_manifest(name, "pod-lifecycle"))
        with step("scheduled"):
            wait_for(
                "pod %s scheduled" % name, pod_reached(lambda p: pod_condition(p, "PodScheduled"))
            )
        with step("running"):
            wait_for(
                "pod %s running" % name,
                pod_reached(lambda p: (p.get("status") or {}).get("phase") == "Running"),
            )
        with step("ready"):
            wait_for("pod %s ready" % name, pod_reached(lambda p: pod_condition(p, "Ready")))
        with step("delete"):
            kube.delete(pod_path)
            created = False
        with step("gone"):
            wait_gone(kube, pod_path, "pod %s" % name)
    finally:
        if created:
            with cleanup_step(probe, prefix + "cleanup"):
                kube.delete(pod_path)


def kubeconfig_set(dir_env: str, secret_env: str, host: Optional[Kube]) -> Dict[str, str]:
    """Named kubeconfigs (name → text) from a directory (e.g. a mounted Secret) and/or
    a Secret `namespace/name` read through the host cluster, one key per cluster."""
    found: Dict[str, str] = {}
    directory = _env.text(dir_env, "")
    if directory:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            raise _env.ConfigError("%s: cannot read %s: %s" % (dir_env, directory, exc)) from None
        for name in names:
            full = os.path.join(directory, name)
            # Mounted Secrets hold ..data symlinks and dot-dirs next to the keys.
            if name.startswith(".") or not os.path.isfile(full):
                continue
            with open(full) as handle:
                found[name] = handle.read()
    secret = _env.text(secret_env, "")
    if secret:
        ns, _, name = secret.partition("/")
        if not ns or not name:
            raise _env.ConfigError("%s must be namespace/name, got %r" % (secret_env, secret))
        if host is None:
            host = connect()
        data = host.call("GET", path(ns, "secrets", name)).get("data") or {}
        for key, value in sorted(data.items()):
            found[key] = base64.b64decode(value).decode()
    if not found:
        raise _env.ConfigError("no kubeconfigs: set %s or %s" % (dir_env, secret_env))
    return found
