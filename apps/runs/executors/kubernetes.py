"""The kubernetes executor: one Pod per run in the cluster's probe namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from kubernetes.client.exceptions import ApiException

from apps.clusters.k8s import (
    TRANSIENT_STATUS,
    ClusterClient,
    ClusterUnreachable,
    api_error_message,
    cluster_client,
)
from apps.clusters.models import Executor as ExecutorKind
from apps.runs.executors.base import (
    Executor,
    ExecutorError,
    LaunchSpec,
    RunStatus,
    TransientExecutorError,
    dns_label,
    register,
)

if TYPE_CHECKING:
    from apps.clusters.models import Cluster
    from apps.runs.models import ProbeRun

MANAGED_BY = "app.kubernetes.io/managed-by=kubeprobe"
INSTALLATION_LABEL = "kubeprobe.io/installation"
RUN_LABEL = "kubeprobe.io/run-id"


def managed_selector() -> str:
    """This portal's probe pods only (see KUBEPROBE_INSTALLATION)."""
    return f"{MANAGED_BY},{INSTALLATION_LABEL}={dns_label(settings.KUBEPROBE_INSTALLATION)}"


CONTAINER = "probe"
# Waiting reasons after which the container will not start by itself in time.
FATAL_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


def pod_manifest(spec: LaunchSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "env": [{"name": k, "value": v} for k, v in sorted(spec.env.items())],
    }
    if spec.command:
        container["command"] = spec.command
    if spec.args:
        container["args"] = spec.args
    if spec.resources:
        container["resources"] = spec.resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": spec.timeout_seconds,
        "terminationGracePeriodSeconds": 5,
        "containers": [container],
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": spec.labels},
        "spec": pod_spec,
    }


def _container_summary(status: dict[str, Any]) -> dict[str, Any]:
    state = status.get("state") or {}
    kind = next(iter(state), "unknown")
    detail = state.get(kind) or {}
    return {
        "name": status.get("name"),
        "state": kind,
        "reason": detail.get("reason", ""),
        "message": detail.get("message", ""),
        "exit_code": detail.get("exitCode"),
        "restarts": status.get("restartCount", 0),
    }


def pod_status(pod: dict[str, Any] | None) -> RunStatus:
    """Read a pod (as JSON) the way an on-call engineer would."""
    if pod is None:
        return RunStatus("missing", reason="the pod is gone")
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    containers = [_container_summary(c) for c in status.get("containerStatuses") or []]
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    details = {
        "pod": pod.get("metadata", {}).get("name"),
        "phase": phase,
        "reason": status.get("reason", ""),
        "message": status.get("message", ""),
        "node": (pod.get("spec") or {}).get("nodeName", ""),
        "containers": containers,
    }
    if phase == "Succeeded":
        return RunStatus("succeeded", details=details)
    if phase == "Failed" and status.get("reason") == "DeadlineExceeded":
        # activeDeadlineSeconds hit: the run's own deadline path closes it as timed out.
        return RunStatus(
            "failed", reason="pod killed at its deadline (DeadlineExceeded)", details=details
        )
    if phase == "Failed":
        reason = status.get("reason") or next(
            (c["reason"] for c in containers if c["state"] == "terminated" and c["reason"]),
            "Failed",
        )
        codes = [c["exit_code"] for c in containers if c["exit_code"] is not None]
        message = status.get("message") or next(
            (c["message"] for c in containers if c["message"]), ""
        )
        text = f"pod failed: {reason}"
        if codes:
            text += f" (exit code {codes[0]})"
        if message:
            text += f": {message}"
        return RunStatus("failed", reason=text, failed_early=True, details=details)
    for container in containers:
        if container["state"] == "waiting" and container["reason"] in FATAL_WAITING:
            text = f"{container['reason']}: {container['message']}".rstrip(": ")
            return RunStatus("failed", reason=text, failed_early=True, details=details)
    scheduled = conditions.get("PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        details["unschedulable"] = scheduled.get("message") or scheduled.get("reason", "")
        return RunStatus(
            "pending", reason=f"not scheduled: {details['unschedulable']}", details=details
        )
    if phase == "Running":
        return RunStatus("running", details=details)
    waiting = next((c for c in containers if c["state"] == "waiting"), None)
    reason = f"{waiting['reason']}: {waiting['message']}".rstrip(": ") if waiting else ""
    return RunStatus("pending", reason=reason, details=details)


def _event_time(event: dict[str, Any]) -> str:
    """When the event last happened.

    Events written through events.k8s.io (the scheduler's FailedScheduling)
    have no lastTimestamp: their time is eventTime, or series.lastObservedTime
    once repeated.
    """
    series = event.get("series") or {}
    return str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def _event_count(event: dict[str, Any]) -> int:
    series = event.get("series") or {}
    return int(series.get("count") or event.get("count") or 1)


def _api_error(exc: ApiException, doing: str) -> ExecutorError:
    message = f"{doing}: HTTP {exc.status}: {api_error_message(exc)}"
    if exc.status in TRANSIENT_STATUS:
        return TransientExecutorError(message)
    return ExecutorError(message)


@register
class KubernetesExecutor(Executor):
    name = ExecutorKind.KUBERNETES

    def _client(self, cluster: Cluster) -> ClusterClient:
        if not cluster.kubeconfig:
            raise ExecutorError(f"Cluster '{cluster.name}' has no kubeconfig.")
        return cluster_client(cluster)

    def _call(
        self, cluster: Cluster, doing: str, method_name: str, *args: Any, **kwargs: Any
    ) -> Any:
        client = self._client(cluster)
        try:
            return client.call_json(getattr(client.core, method_name), *args, **kwargs)
        except ClusterUnreachable as exc:
            raise ExecutorError(str(exc)) from exc
        except ApiException as exc:
            raise _api_error(exc, doing) from exc

    def launch(self, cluster: Cluster, spec: LaunchSpec) -> str:
        try:
            self._call(
                cluster, "create pod", "create_namespaced_pod", spec.namespace, pod_manifest(spec)
            )
        except ExecutorError as exc:
            # A retried dispatch finds the pod its first attempt created.
            cause = exc.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 409):
                raise
            self._adopt(cluster, spec)
        return spec.name

    def _adopt(self, cluster: Cluster, spec: LaunchSpec) -> None:
        """Take over the pod an earlier attempt of this run created, and no other.

        Pod names are `kp-<case>-<run id>`: another portal sharing the namespace
        (KUBEPROBE_INSTALLATION) can hold the same name for its own run, whose
        pod carries its token, not ours; adopting it would leave ours never launched.
        """
        pod = self._call(
            cluster, "read the existing pod", "read_namespaced_pod", spec.name, spec.namespace
        )
        labels = (pod.get("metadata") or {}).get("labels") or {}
        for key in (INSTALLATION_LABEL, RUN_LABEL):
            if labels.get(key) != spec.labels.get(key):
                raise ExecutorError(
                    f"create pod: pod {spec.namespace}/{spec.name} already exists and is not"
                    f" this run's ({key}={labels.get(key, '')!r}, expected {spec.labels.get(key)!r})"
                )

    def _pods(self, cluster: Cluster) -> list[dict[str, Any]]:
        data = self._call(
            cluster,
            "list probe pods",
            "list_namespaced_pod",
            cluster.namespace,
            label_selector=managed_selector(),
        )
        return list(data.get("items") or [])

    def poll(self, cluster: Cluster, runs: list[ProbeRun]) -> dict[int, RunStatus]:
        by_run = {}
        for pod in self._pods(cluster):
            run_id = (pod.get("metadata", {}).get("labels") or {}).get(RUN_LABEL, "")
            if run_id.isdigit():
                by_run[int(run_id)] = pod
        return {run.pk: pod_status(by_run.get(run.pk)) for run in runs}

    def logs(self, cluster: Cluster, run: ProbeRun, tail_lines: int = 50) -> str:
        client = self._client(cluster)
        try:
            response = client.call(
                client.core.read_namespaced_pod_log,
                run.pod_name,
                cluster.namespace,
                container=CONTAINER,
                tail_lines=tail_lines,
                _preload_content=False,
            )
        except ClusterUnreachable as exc:
            raise ExecutorError(str(exc)) from exc
        except ApiException as exc:
            if exc.status in (400, 404):
                return ""  # no log yet (container waiting, no node) or the pod is gone
            # Anything else (RBAC without pods/log, the node's kubelet unreachable)
            # is worth naming in the run's diagnostics rather than an empty tail.
            raise _api_error(exc, "read pod log") from exc
        return str(response.data.decode(errors="replace"))

    def events(self, cluster: Cluster, run: ProbeRun) -> list[dict[str, Any]]:
        data = self._call(
            cluster,
            "list events",
            "list_namespaced_event",
            cluster.namespace,
            field_selector=f"involvedObject.name={run.pod_name}",
        )
        events = [
            {
                "type": e.get("type", ""),
                "reason": e.get("reason", ""),
                "message": e.get("message", ""),
                "count": _event_count(e),
                "time": _event_time(e),
            }
            for e in data.get("items") or []
        ]
        # Second-precision times (kubelet, kwok) and microsecond ones (scheduler)
        # do not compare as strings: order by the second, then the API's order
        # (event names end in their creation time).
        return sorted(events, key=lambda e: e["time"][:19])[-20:]

    def cleanup(self, cluster: Cluster, run: ProbeRun) -> None:
        if not run.pod_name:
            return
        try:
            self._call(
                cluster,
                "delete pod",
                "delete_namespaced_pod",
                run.pod_name,
                cluster.namespace,
                grace_period_seconds=0,
                propagation_policy="Background",
            )
        except ExecutorError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 404):
                raise

    def managed_handles(self, cluster: Cluster) -> dict[int, str]:
        out = {}
        for pod in self._pods(cluster):
            meta = pod.get("metadata", {})
            run_id = (meta.get("labels") or {}).get(RUN_LABEL, "")
            if run_id.isdigit():
                out[int(run_id)] = meta.get("name", "")
        return out
