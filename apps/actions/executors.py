"""How a self-heal action acts: a webhook, or a Job created through the cluster's client
(its breaker, rate limit and timeout). Each returns (ok, outcome sentence, request shown)."""

from __future__ import annotations

import json
import re
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from apps.alerts.transports import http
from apps.alerts.transports.base import TransportError, hmac_sha256
from apps.clusters.k8s import ClusterUnreachable, api_error_message, cluster_client
from apps.clusters.models import Cluster

VAR_RE = re.compile(r"\$\(([A-Z_]+)\)")
JOB_DEFAULTS = {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600}


def render(value: Any, context: dict[str, str]) -> Any:
    """Replace $(NAME) in every string of a JSON value; unknown names stay as written."""
    if isinstance(value, str):
        return VAR_RE.sub(lambda m: context.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    return value


def job_manifest(
    *, template: dict[str, Any], namespace: str, context: dict[str, str], action_id: int
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": "kubeprobe-heal-",
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "kubeprobe",
                "kubeprobe.io/incident": context["INCIDENT"],
                "kubeprobe.io/action": str(action_id),
            },
        },
        "spec": {**JOB_DEFAULTS, **render(template, context)},
    }


def create_job(*, cluster: Cluster, manifest: dict[str, Any]) -> tuple[bool, str]:
    client = cluster_client(cluster)
    batch = k8s.BatchV1Api(client.api_client)
    namespace = manifest["metadata"]["namespace"]
    try:
        created = client.call_json(batch.create_namespaced_job, namespace, manifest)
    except ClusterUnreachable as exc:  # the breaker is open, or the API did not answer
        return False, str(exc)
    except ApiException as exc:
        return False, f"the API server refused the Job: {api_error_message(exc)}"
    return True, f"created Job {namespace}/{created['metadata']['name']}"


def webhook_body(context: dict[str, str], policy: str, action_id: int) -> dict[str, Any]:
    return {
        "action": action_id,
        "policy": policy,
        "incident": int(context["INCIDENT"]),
        "title": context["TITLE"],
        "category": context["CATEGORY"],
        "component": context["COMPONENT"],
        "cluster": context["CLUSTER"],
        "case": context["CASE"],
        "severity": context["SEVERITY"],
    }


def call_webhook(*, url: str, secret: str, body: dict[str, Any]) -> tuple[bool, str]:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = (
        {"X-KubeProbe-Signature": "sha256=" + hmac_sha256(secret, data).hex()} if secret else {}
    )
    try:
        response = http.request("POST", url, data=data, headers=headers)
    except TransportError as exc:
        return False, str(exc)
    return True, f"{http.redact_url(url)} answered HTTP {response.status}"
