from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from kubernetes.client.exceptions import ApiException

from apps.clusters import kubeconfig as kc
from apps.clusters.k8s import ClusterClient, ClusterUnreachable, cluster_client, force_calls
from apps.clusters.models import ApiStatus, Cluster, Executor

API_ERROR_CHARS = 300


@dataclass
class ImportResult:
    cluster: Cluster
    created: bool


def cluster_name_for_context(context: str) -> str:
    """A cluster slug from a context name (arn:aws:eks:…/prod → arn-aws-eks-prod)."""
    return slugify(context.replace("/", "-").replace(":", "-").replace("@", "-"))[:63].strip("-")


@transaction.atomic
def clusters_import_kubeconfig(
    *,
    path: Path,
    contexts: list[str] | None = None,
    all_contexts: bool = False,
    namespace: str | None = None,
) -> list[ImportResult]:
    """Create or update one cluster per context of a kubeconfig file.

    Each cluster stores a self-contained kubeconfig with only its context,
    certificates inlined. Re-importing updates the kubeconfig in place.
    """
    text = path.read_text()
    doc = kc.parse(text)
    if all_contexts:
        names = kc.context_names(doc)
    elif contexts:
        names = [kc.resolve_context(doc, c) for c in contexts]
    else:
        names = [kc.resolve_context(doc)]
    results = []
    for context in names:
        single = kc.extract_context(doc, context, path.parent)
        kc.validate(single, context)
        name = cluster_name_for_context(context)
        cluster = Cluster.objects.filter(name=name).first()
        created = cluster is None
        if cluster is None:
            cluster = Cluster(name=name, display_name=context, executor=Executor.KUBERNETES)
        cluster.kubeconfig = single
        cluster.context = context
        if namespace:
            cluster.namespace = namespace
        cluster.full_clean()
        cluster.save()
        results.append(ImportResult(cluster=cluster, created=created))
    return results


@dataclass(frozen=True)
class ApiCheck:
    status: str
    version: str
    error: str
    checked_at: datetime


def _answer_error(path: str, status: int, body: bytes) -> str:
    """One line from an API server's answer: its Status message, or the failing
    checks of /readyz ("[-]etcd failed: reason withheld")."""
    text = body.decode(errors="replace")
    try:
        message = str(json.loads(text).get("message") or "")
    except (ValueError, AttributeError):
        failed = [line.strip() for line in text.splitlines() if line.startswith("[-]")]
        message = "; ".join(failed) or " ".join(text.split())
    return f"GET {path}: HTTP {status}: {message}"[:API_ERROR_CHARS]


def _judge(path: str, status: int, body: bytes) -> tuple[str, str]:
    if status in (401, 403):
        return ApiStatus.UNAUTHORIZED, _answer_error(path, status, body)
    if path == "/readyz":
        return ApiStatus.NOT_READY, _answer_error(path, status, body)
    return ApiStatus.ERROR, _answer_error(path, status, body)


def _ask(client: ClusterClient, version: str) -> tuple[str, str, str]:
    """(status, error, version) from /version, then /readyz when /version answered."""
    status, body = client.get_path("/version")
    if status != 200:
        return (*_judge("/version", status, body), version)
    try:
        version = str(json.loads(body)["gitVersion"])[:64]
    except (ValueError, KeyError, TypeError):
        return ApiStatus.ERROR, "GET /version: not a Kubernetes version answer", version
    status, body = client.get_path("/readyz")
    if status != 200:
        return (*_judge("/readyz", status, body), version)
    return ApiStatus.OK, "", version


def cluster_check_api(*, cluster: Cluster, force: bool = False) -> ApiCheck:
    """Ask the cluster's API server for /version and /readyz; store the answer.

    Both requests go through the cluster's client, so its QPS limit and timeout
    hold. Both paths are open to every authenticated user (RBAC's
    system:public-info-viewer), so any working credential passes; a rejected
    one is `unauthorized`. The version is kept from the last check that got one.
    Stored with one UPDATE that leaves updated_at alone: a check is not an edit.

    The client's circuit breaker counts and gates the check like any call: an
    answer closes it, a failure to connect counts; while it is open the check
    says so without asking, unless `force` (an operator's "Check API now").
    """
    version, error = cluster.api_version, ""
    state: str = ApiStatus.OK
    try:
        client = cluster_client(cluster)
    except Exception as exc:  # kubeconfig the client cannot use (exec plugin, bad key...)
        state, error = ApiStatus.ERROR, f"cannot use the kubeconfig: {exc}"
    else:
        try:
            with force_calls() if force else nullcontext():
                state, error, version = _ask(client, version)
        except ClusterUnreachable as exc:
            state, error = ApiStatus.UNREACHABLE, exc.reason
        except ApiException as exc:
            state, error = ApiStatus.ERROR, f"HTTP {exc.status}: {exc.reason}"
    check = ApiCheck(
        status=state, version=version, error=error[:API_ERROR_CHARS], checked_at=timezone.now()
    )
    Cluster.objects.filter(pk=cluster.pk).update(
        api_status=check.status,
        api_version=check.version,
        api_error=check.error,
        api_checked_at=check.checked_at,
    )
    cluster.api_status, cluster.api_version = check.status, check.version
    cluster.api_error, cluster.api_checked_at = check.error, check.checked_at
    return check
