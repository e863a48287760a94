"""kopf handlers: ProbeConfig → resident Deployment, and the ProbeConfig's status.

* create/update(spec)/resume of a ProbeConfig: server-side apply of its
  Deployment (reconcile.deployment_manifest), then status: observedGeneration,
  deployment, pod, the Ready condition. A failed apply (e.g. RBAC) is written
  to the Ready condition and logged with the API's answer, and retried after
  KUBEPROBE_OPERATOR_RETRY_SECONDS, never in a tight loop.
* Events on the ProbeConfig (`kubectl describe`): Applied, ReconcileFailed.
* events of the resident Deployments (server-side filtered by label): the
  owning ProbeConfig's status follows its pod (Ready once the pod is Ready).
* a daemon per ProbeConfig re-reads the same state every
  KUBEPROBE_OPERATOR_RESYNC_SECONDS, so a missed event only delays status.

No deletion handler and so no finalizer: the Deployment carries a controller
owner reference, and Kubernetes' garbage collector deletes it with the CR.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import kopf

from kubeprobe_operator import reconcile
from kubeprobe_operator.kube import Api, ApiError, connect

RESOURCE = (reconcile.GROUP, reconcile.VERSION, reconcile.PLURAL)
RETRY_SECONDS = float(os.environ.get("KUBEPROBE_OPERATOR_RETRY_SECONDS", "30"))
RESYNC_SECONDS = float(os.environ.get("KUBEPROBE_OPERATOR_RESYNC_SECONDS", "30"))
STATUS_ATTEMPTS = 3


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Progress and the last-handled spec live in annotations under our own prefix:
    # the CRD's structural status schema would prune kopf's status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=reconcile.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=reconcile.GROUP, key="last-handled-configuration"
    )
    # Watch only the Deployments this operator made, filtered by the API server.
    settings.watching.label_selectors["apps", "deployments"] = (
        f"{reconcile.MANAGED_BY}={reconcile.OPERATOR}"
    )
    # The resources are known at startup (apply the CRD first): no need to
    # list and watch every CRD in the cluster, so no RBAC for it either.
    settings.scanning.disabled = True
    settings.execution.max_workers = 4
    memo.api = connect()
    memo.image = os.environ.get("KUBEPROBE_PROBE_IMAGE") or reconcile.DEFAULT_PROBE_IMAGE


def refresh_status(
    api: Api,
    namespace: str,
    name: str,
    *,
    uid: str | None = None,
    applied_generation: int | None = None,
) -> None:
    """Bring the ProbeConfig's status in line with its Deployment and pods.

    Each write names the resourceVersion it was computed from; on a conflict
    (another write in between) it is computed again from the fresh object.
    """
    for _ in range(STATUS_ATTEMPTS):
        config = api.probeconfig(namespace, name)
        if config is None or (uid and config["metadata"].get("uid") != uid):
            return  # deleted (or deleted and created again): nothing of ours to report
        status = dict(config.get("status") or {})
        owned: dict[str, Any] = {}
        if applied_generation is not None:
            if status.get("observedGeneration") != applied_generation:
                owned["observedGeneration"] = applied_generation
            if status.get("deployment") != reconcile.deployment_name(name):
                owned["deployment"] = reconcile.deployment_name(name)
            config = {**config, "status": {**status, **owned}}
        deployment = api.deployment(namespace, reconcile.deployment_name(name))
        pods = api.resident_pods(namespace, name)
        patch = {
            **owned,
            **reconcile.status_patch(
                config=config, deployment=deployment, pods=pods, now=reconcile.now_iso()
            ),
        }
        if not patch:
            return
        try:
            api.patch_status(
                namespace, name, patch, resource_version=config["metadata"]["resourceVersion"]
            )
            return
        except ApiError as exc:
            if exc.status == 404:
                return
            if exc.status != 409:
                raise


def record_failure(api: Api, namespace: str, name: str, message: str, logger: Any) -> None:
    """Put a reconcile error on the Ready condition (if the status can be written at all)."""
    config = api.probeconfig(namespace, name)
    if config is None:
        return
    conditions = (config.get("status") or {}).get("conditions") or []
    failed = {"type": "Ready", "status": "False", "reason": "ReconcileFailed", "message": message}
    try:
        api.patch_status(
            namespace,
            name,
            {"conditions": reconcile.merge_condition(conditions, failed, reconcile.now_iso())},
        )
    except ApiError as exc:
        logger.error(f"cannot write the error to the status either: {exc}")


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def apply_probeconfig(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    body: kopf.Body,
    memo: Any,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    assert namespace, "ProbeConfig is a namespaced resource"
    api: Api = memo.api
    manifest = reconcile.deployment_manifest(
        name=name, namespace=namespace, uid=uid, spec=dict(spec), probe_image=memo.image
    )
    generation = int(meta.get("generation") or 0)
    deployment = manifest["metadata"]["name"]
    try:
        api.apply_deployment(manifest)
    except ApiError as exc:
        message = f"cannot apply Deployment {namespace}/{deployment}: {exc}"
        record_failure(api, namespace, name, message, logger)
        kopf.warn(body, reason="ReconcileFailed", message=message)
        raise kopf.TemporaryError(message, delay=RETRY_SECONDS) from None
    applied = f"applied Deployment {namespace}/{deployment} for generation {generation}"
    logger.info(applied)
    kopf.info(body, reason="Applied", message=applied)
    try:
        refresh_status(api, namespace, name, uid=uid, applied_generation=generation)
    except ApiError as exc:
        # The Deployment is right; the status catches up on the next event or resync.
        logger.error(f"cannot write the status: {exc}")


@kopf.on.event("apps", "v1", "deployments", labels={reconcile.MANAGED_BY: reconcile.OPERATOR})
def resident_deployment_changed(
    body: kopf.Body, namespace: str | None, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    config_name = (body.metadata.labels or {}).get(reconcile.CONFIG_LABEL)
    owners = [
        ref
        for ref in body.metadata.get("ownerReferences") or []
        if ref.get("kind") == reconcile.KIND and ref.get("controller")
    ]
    if not namespace or not config_name or not owners:
        return
    try:
        refresh_status(memo.api, namespace, config_name, uid=owners[0].get("uid"))
    except ApiError as exc:
        logger.error(f"cannot update the status of ProbeConfig {namespace}/{config_name}: {exc}")


@kopf.daemon(*RESOURCE, cancellation_timeout=5)
async def resync_status(
    name: str,
    namespace: str | None,
    uid: str,
    memo: Any,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    # A daemon, not a timer: a timer logs (and posts an Event) on every tick.
    assert namespace, "ProbeConfig is a namespaced resource"
    while not await stopped.wait(RESYNC_SECONDS):
        try:
            await asyncio.to_thread(refresh_status, memo.api, namespace, name, uid=uid)
        except ApiError as exc:
            logger.error(f"cannot update the status: {exc}")
