"""Applying resident probes to clusters: one ProbeConfig (and its token Secret) per target.

Objects are written with server-side apply (field manager ``kubeprobe``), so a
resync is idempotent and repairs drift; the apply's answer carries the
object's status, which is kept on the ResidentTarget row for the admin and the
dashboard. Clusters that stop being targets (the probe disabled, a cluster
removed from it or from its group) lose their ProbeConfig; a deleted probe
leaves ResidentRemoval rows that are retried until each cluster confirmed.
Every call goes through the cluster's client, so its circuit breaker, QPS
limit and timeout hold (apps/clusters/k8s.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from apps.clusters import k8s as cluster_k8s
from apps.clusters.models import Cluster
from apps.clusters.selectors import clusters_with_api
from apps.resident.models import (
    ResidentProbe,
    ResidentRemoval,
    ResidentTarget,
    case_module,
)
from apps.resident.selectors import resident_probe_clusters
from apps.resident.services import resident_probe_token

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "kubeprobe.io", "v1alpha1", "probeconfigs"
FIELD_MANAGER = "kubeprobe"
APPLY = "application/apply-patch+yaml"  # JSON is YAML: the bodies are sent as JSON
ERROR_CHARS = 1000


def secret_name(probe_name: str) -> str:
    return f"kubeprobe-resident-{probe_name}"


def _labels(probe_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "kubeprobe",
        "kubeprobe.io/installation": settings.KUBEPROBE_INSTALLATION,
        "kubeprobe.io/resident-probe": probe_name,
    }


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def probeconfig_render(*, probe: ResidentProbe, cluster: Cluster) -> dict[str, Any]:
    """The ProbeConfig this probe wants in this cluster (the CRD's v1alpha1 contract)."""
    section: dict[str, Any]
    if probe.case is not None:
        section = {
            "case": case_module(probe.case),
            "env": _env_list({**probe.case.effective_env, **probe.env}),
        }
        resources = probe.resources or probe.case.effective_resources
    else:
        section = {"image": probe.image, "env": _env_list(probe.env)}
        if probe.command:
            section["command"] = list(probe.command)
        if probe.args:
            section["args"] = list(probe.args)
        resources = probe.resources
    if not section["env"]:
        del section["env"]
    if resources:
        section["resources"] = resources
    spec: dict[str, Any] = {
        "probe": section,
        "intervalMs": probe.interval_ms,
        "sampleTimeoutMs": probe.sample_timeout_ms,
        "denoise": {"k": probe.denoise_k, "n": probe.denoise_n},
        "report": {
            "rate": probe.report_rate,
            "burst": probe.report_burst,
            "batchWindowMs": probe.batch_window_ms,
        },
        "center": {
            "url": settings.KUBEPROBE_PUBLIC_URL,
            "tokenSecretRef": {"name": secret_name(probe.name), "key": "token"},
        },
        "probeName": probe.name,
        "cluster": cluster.name,
    }
    if probe.service_account:
        spec["serviceAccountName"] = probe.service_account
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProbeConfig",
        "metadata": {
            "name": probe.name,
            "namespace": cluster.namespace,
            "labels": _labels(probe.name),
        },
        "spec": spec,
    }


def secret_render(*, probe: ResidentProbe, namespace: str) -> dict[str, Any]:
    token = resident_probe_token(probe=probe)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(probe.name),
            "namespace": namespace,
            "labels": _labels(probe.name),
        },
        "type": "Opaque",
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status}: {cluster_k8s.api_error_message(exc)}"[:ERROR_CHARS]
    return str(exc)[:ERROR_CHARS]


def _apply(cluster: Cluster, config: dict[str, Any], secret: dict[str, Any]) -> dict[str, Any]:
    """Apply the Secret, then the ProbeConfig; returns the ProbeConfig as stored."""
    client = cluster_k8s.cluster_client(cluster)
    namespace = config["metadata"]["namespace"]
    client.call(
        client.core.patch_namespaced_secret,
        secret["metadata"]["name"],
        namespace,
        secret,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type=APPLY,
    )
    custom = k8s.CustomObjectsApi(client.api_client)
    stored: dict[str, Any] = client.call_json(
        custom.patch_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        config["metadata"]["name"],
        config,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type=APPLY,
    )
    return stored


def _delete(cluster: Cluster, name: str, namespace: str) -> None:
    """Delete the ProbeConfig and its Secret; gone already is fine."""
    client = cluster_k8s.cluster_client(cluster)
    custom = k8s.CustomObjectsApi(client.api_client)
    for method, args in (
        (custom.delete_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL, name)),
        (client.core.delete_namespaced_secret, (secret_name(name), namespace)),
    ):
        try:
            client.call(method, *args)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _budget(cluster: Cluster) -> Any:
    # One cluster's calls finish within a few timeouts: a slow one delays no other long.
    return cluster_k8s.call_deadline(time.monotonic() + 3 * cluster.api_timeout_seconds)


def _fingerprint(config: dict[str, Any], probe: ResidentProbe) -> str:
    text = json.dumps(config, sort_keys=True) + probe.token_hash
    return hashlib.sha256(text.encode()).hexdigest()


def resident_probe_sync(*, probe_id: int) -> dict[str, str]:
    """Apply the probe to each target cluster and remove it where it no longer belongs.

    Returns {cluster name: "applied" | "removed" | error text}.
    """
    probe = (
        ResidentProbe.objects.select_related("case__template", "case__render_config")
        .filter(pk=probe_id)
        .first()
    )
    if probe is None:
        return {}
    wanted: list[Cluster] = []
    if probe.enabled and probe.token_hash:
        wanted = list(clusters_with_api(queryset=resident_probe_clusters(probe=probe)))
    targets = {t.cluster_id: t for t in ResidentTarget.objects.filter(probe=probe)}
    outcome: dict[str, str] = {}
    for cluster in wanted:
        target = targets.get(cluster.pk) or ResidentTarget(probe=probe, cluster=cluster)
        config = probeconfig_render(probe=probe, cluster=cluster)
        if target.applied_namespace and target.applied_namespace != cluster.namespace:
            _remove_target(cluster, probe.name, target)  # the cluster's namespace moved
        try:
            with _budget(cluster):
                stored = _apply(
                    cluster, config, secret_render(probe=probe, namespace=cluster.namespace)
                )
        except (cluster_k8s.ClusterUnreachable, ApiException) as exc:
            target.apply_error = _error_text(exc)
            outcome[cluster.name] = target.apply_error
        else:
            now = timezone.now()
            target.applied_hash = _fingerprint(config, probe)
            target.applied_namespace = cluster.namespace
            target.applied_at = now
            target.apply_error = ""
            target.config_status = stored.get("status") or {}
            target.status_read_at = now
            outcome[cluster.name] = "applied"
        _save_target(target)
    wanted_ids = {c.pk for c in wanted}
    leaving = [t for t in targets.values() if t.applied_hash and t.cluster_id not in wanted_ids]
    for target in leaving:
        cluster = Cluster.objects.get(pk=target.cluster_id)
        outcome[cluster.name] = _remove_target(cluster, probe.name, target)
    return outcome


def _save_target(target: ResidentTarget) -> None:
    fields = [
        "applied_hash",
        "applied_namespace",
        "applied_at",
        "apply_error",
        "config_status",
        "status_read_at",
    ]
    if target.pk is None:
        # Ingestion may have created the row meanwhile: update it in that case.
        ResidentTarget.objects.bulk_create(
            [target],
            update_conflicts=True,
            unique_fields=["probe", "cluster"],
            update_fields=fields,
        )
    else:
        target.save(update_fields=fields)


def _remove_target(cluster: Cluster, name: str, target: ResidentTarget) -> str:
    try:
        with _budget(cluster):
            _delete(cluster, name, target.applied_namespace or cluster.namespace)
    except (cluster_k8s.ClusterUnreachable, ApiException) as exc:
        target.apply_error = f"removing: {_error_text(exc)}"
        target.save(update_fields=["apply_error"])
        return target.apply_error
    target.applied_hash = target.applied_namespace = target.apply_error = ""
    target.config_status = {}
    target.save(update_fields=["applied_hash", "applied_namespace", "apply_error", "config_status"])
    return "removed"


def probeconfigs_remove_pending() -> int:
    """Delete the ProbeConfigs of deleted probes; what fails stays for the next pass."""
    done = 0
    for removal in ResidentRemoval.objects.select_related("cluster"):
        if ResidentProbe.objects.filter(name=removal.name).exists():
            removal.delete()  # a new probe of that name owns the object now
            continue
        try:
            with _budget(removal.cluster):
                _delete(removal.cluster, removal.name, removal.namespace)
        except (cluster_k8s.ClusterUnreachable, ApiException) as exc:
            removal.error = _error_text(exc)
            removal.save(update_fields=["error"])
            continue
        removal.delete()
        done += 1
    return done


def resident_probes_resync() -> int:
    """Fan out one apply per probe (enabled, or with something applied), then removals."""
    from apps.resident.tasks import apply_probe, remove_probeconfigs

    ids = set(ResidentProbe.objects.filter(enabled=True).values_list("pk", flat=True))
    ids |= set(ResidentTarget.objects.exclude(applied_hash="").values_list("probe_id", flat=True))
    for probe_id in sorted(ids):
        apply_probe.apply_async((probe_id,), expires=settings.KUBEPROBE_RESIDENT_RESYNC_SECONDS)
    if ResidentRemoval.objects.exists():
        transaction.on_commit(remove_probeconfigs.delay)
    return len(ids)
