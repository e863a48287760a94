"""Resident probe writes: create/update/delete with their token and alert subject, and
sample ingestion. Applying ProbeConfigs to clusters is in apps/resident/applying.py,
alert judging in apps/resident/alerting.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Case, CaseTemplate, TemplateKind
from apps.clusters.models import Cluster, ClusterGroup
from apps.clusters.selectors import clusters_for_targets
from apps.resident import signals, storage, tokens
from apps.resident.models import ResidentProbe, ResidentRemoval, ResidentTarget
from apps.resident.samples import SampleRejected, batch_parse

logger = logging.getLogger(__name__)

ALERT_TEMPLATE = "resident"
ALERT_CASE_PREFIX = "resident-"


# ------------------------------------------------------------------ probes


def _alert_template() -> CaseTemplate:
    template, _ = CaseTemplate.objects.get_or_create(
        name=ALERT_TEMPLATE,
        defaults={
            "kind": TemplateKind.PROBE,
            "image": settings.KUBEPROBE_PROBE_IMAGE,
            "command": ["python", "-m", "probe_sdk.resident"],
            "description": "Alert subjects of resident probes (one disabled case per probe); "
            "not run by bindings.",
        },
    )
    return template


def _sync_alert_case(probe: ResidentProbe) -> None:
    """The probe's alerts are Alert rows of its own disabled case, named after it."""
    name = ALERT_CASE_PREFIX + probe.name
    if probe.alert_case_id is None:
        case, _ = Case.objects.get_or_create(
            name=name,
            defaults={
                "template": _alert_template(),
                "enabled": False,
                "description": f"Alerts of resident probe {probe.name}.",
            },
        )
        probe.alert_case = case
        ResidentProbe.objects.filter(pk=probe.pk).update(alert_case=case)
    elif probe.alert_case is not None and probe.alert_case.name != name:
        Case.objects.filter(pk=probe.alert_case_id).update(name=name)


def resident_probe_create(
    *,
    fields: dict[str, Any],
    clusters: Iterable[Cluster] = (),
    groups: Iterable[ClusterGroup] = (),
) -> tuple[ResidentProbe, str]:
    """Create a probe; returns it and its token, which is shown this once."""
    with transaction.atomic():
        probe = ResidentProbe(**fields)
        probe.full_clean(exclude=["token_nonce", "token_hash"])
        probe.save()
        probe.clusters.set(list(clusters))
        probe.groups.set(list(groups))
        token = _issue_token(probe)
        _sync_alert_case(probe)
        transaction.on_commit(lambda: _enqueue_apply(probe.pk))
    return probe, token


def resident_probe_update(
    *,
    probe: ResidentProbe,
    fields: dict[str, Any],
    clusters: Iterable[Cluster] | None = None,
    groups: Iterable[ClusterGroup] | None = None,
) -> ResidentProbe:
    with transaction.atomic():
        for key, value in fields.items():
            setattr(probe, key, value)
        probe.full_clean(exclude=["token_nonce", "token_hash"])
        probe.save()
        if clusters is not None:
            probe.clusters.set(list(clusters))
        if groups is not None:
            probe.groups.set(list(groups))
        if not probe.token_hash:
            _issue_token(probe)
        _sync_alert_case(probe)
        transaction.on_commit(lambda: _enqueue_apply(probe.pk))
    return probe


def resident_probe_saved(*, probe: ResidentProbe) -> str | None:
    """After the admin saved a probe (and its relations): issue a token if it has none
    (returned, to show once), keep its alert subject, and apply it to clusters."""
    token = None
    if not probe.token_hash:
        token = _issue_token(probe)
    _sync_alert_case(probe)
    transaction.on_commit(lambda: _enqueue_apply(probe.pk))
    return token


def _issue_token(probe: ResidentProbe) -> str:
    nonce = tokens.new_nonce()
    token = tokens.probe_token(probe_id=probe.pk, nonce=nonce)
    probe.token_nonce, probe.token_hash = nonce, tokens.hash_token(token)
    probe.token_rotated_at = timezone.now()
    ResidentProbe.objects.filter(pk=probe.pk).update(
        token_nonce=probe.token_nonce,
        token_hash=probe.token_hash,
        token_rotated_at=probe.token_rotated_at,
    )
    return token


def resident_probe_rotate_token(*, probe: ResidentProbe) -> str:
    """A new token (shown once); the old one stops working now. The clusters' Secrets are
    rewritten by the apply that follows."""
    with transaction.atomic():
        token = _issue_token(probe)
        transaction.on_commit(lambda: _enqueue_apply(probe.pk))
    return token


def resident_probe_token(*, probe: ResidentProbe) -> str:
    """The current token, for the Secret written into each cluster (never shown or logged)."""
    return tokens.probe_token(probe_id=probe.pk, nonce=probe.token_nonce)


def resident_probe_delete(*, probe: ResidentProbe) -> None:
    """Delete the probe and its alert subject. Every cluster holding its ProbeConfig gets
    a ResidentRemoval row, worked off (and retried) after commit. Its samples age out
    with their partitions."""
    from apps.resident.tasks import remove_probeconfigs

    with transaction.atomic():
        removals = [
            ResidentRemoval(name=probe.name, cluster_id=t.cluster_id, namespace=t.applied_namespace)
            for t in ResidentTarget.objects.filter(probe=probe).exclude(applied_hash="")
        ]
        ResidentRemoval.objects.bulk_create(removals, ignore_conflicts=True)
        case_id = probe.alert_case_id
        probe.delete()
        if case_id is not None:
            Case.objects.filter(pk=case_id).delete()
        if removals:
            transaction.on_commit(remove_probeconfigs.delay)


def resident_probes_set_enabled(*, probe_ids: list[int], enabled: bool) -> int:
    """Enable or disable many probes; each is applied (or removed) after commit."""
    with transaction.atomic():
        count = (
            ResidentProbe.objects.filter(pk__in=probe_ids)
            .exclude(enabled=enabled)
            .update(enabled=enabled, updated_at=timezone.now())
        )
        transaction.on_commit(lambda: _enqueue_many(probe_ids))
    return count


def resident_probes_apply(*, probe_ids: list[int]) -> int:
    """Apply these probes to their clusters now (on the workers)."""
    transaction.on_commit(lambda: _enqueue_many(probe_ids))
    return len(probe_ids)


def _enqueue_many(probe_ids: list[int]) -> None:
    for probe_id in probe_ids:
        _enqueue_apply(probe_id)


def _enqueue_apply(probe_id: int) -> None:
    from apps.resident.tasks import apply_probe

    try:
        apply_probe.delay(probe_id)
    except Exception:  # the periodic resync applies it; saving must not fail on a broker hiccup
        logger.warning("could not enqueue the apply of resident probe %s", probe_id)


# ------------------------------------------------------------------ ingestion

# Per process, for a few seconds: which probe a token is (its hash → id, name,
# enabled, updated_at) and which clusters that probe may report for. A batch per
# second per cluster must not look up its token and resolve groups every time. A
# cached token is trusted only together with the store, which writes nothing unless
# the probe still has that token and is enabled (storage.batch_store's token_hash):
# a rotated token or a disabled probe is refused at once, in every process.
_CACHE_TTL = 10.0
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class _Probe:
    pk: int
    name: str
    enabled: bool
    updated_at: datetime


_probes: dict[str, tuple[float, _Probe]] = {}
_targets: dict[tuple[int, datetime], tuple[float, dict[str, int]]] = {}
_cache_lock = threading.Lock()


def _cached(cache: dict[Any, tuple[float, Any]], key: Any) -> Any:
    with _cache_lock:
        hit = cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < _CACHE_TTL:
        return hit[1]
    return None


def _remember(cache: dict[Any, tuple[float, Any]], key: Any, value: Any) -> None:
    with _cache_lock:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = (time.monotonic(), value)


def _probe_by_token(token_hash: str) -> _Probe | None:
    row = (
        ResidentProbe.objects.filter(token_hash=token_hash)
        .values_list("pk", "name", "enabled", "updated_at")
        .first()
    )
    if row is None:
        return None
    probe = _Probe(*row)
    _remember(_probes, token_hash, probe)
    return probe


def _target_clusters(probe: _Probe, *, fresh: bool = False) -> dict[str, int]:
    key = (probe.pk, probe.updated_at)
    names: dict[str, int] | None = None if fresh else _cached(_targets, key)
    if names is None:
        names = dict(
            clusters_for_targets(
                clusters=Cluster.objects.filter(resident_probes=probe.pk),
                groups=ClusterGroup.objects.filter(resident_probes=probe.pk),
                enabled_only=True,
            ).values_list("name", "pk")
        )
        _remember(_targets, key, names)
    return names


def resident_samples_ingest(*, token: str, body: bytes) -> dict[str, Any]:
    """Store one batch; returns the answer body ({"stored": n} or {"duplicate": true}).

    Raises SampleRejected with the status and detail of a refusal (400/401/403).
    """
    if not token:
        raise SampleRejected(401, {"detail": "Authorization: Bearer <probe token> is required."})
    token_hash = tokens.hash_token(token)
    cached: _Probe | None = _cached(_probes, token_hash)
    if cached is not None:
        try:
            return _ingest(cached, token_hash, body)
        except (SampleRejected, storage.ProbeChanged):
            pass  # decided again below on a fresh lookup: the refusal names the current state
    probe = _probe_by_token(token_hash)
    try:
        if probe is None:
            raise storage.ProbeChanged
        return _ingest(probe, token_hash, body)
    except storage.ProbeChanged:
        with _cache_lock:
            _probes.pop(token_hash, None)
        raise SampleRejected(401, {"detail": "Unknown or rotated resident probe token."}) from None


def _ingest(probe: _Probe, token_hash: str, body: bytes) -> dict[str, Any]:
    now = timezone.now()
    oldest = now - timedelta(days=settings.KUBEPROBE_RESIDENT_RETENTION_DAYS)
    batch = batch_parse(body, now=now, oldest=oldest)
    if batch.probe != probe.name:
        raise SampleRejected(
            403, {"probe": [f"This token is resident probe {probe.name}'s, not {batch.probe}'s."]}
        )
    if not probe.enabled:
        raise SampleRejected(403, {"probe": [f"Resident probe {probe.name} is disabled."]})
    cluster_id = _target_clusters(probe).get(batch.cluster)
    if cluster_id is None:  # maybe a cluster added since: resolved again before refusing
        cluster_id = _target_clusters(probe, fresh=True).get(batch.cluster)
    if cluster_id is None:
        raise SampleRejected(
            403,
            {
                "cluster": [
                    f"Cluster {batch.cluster} is not a target of resident probe {probe.name}."
                ]
            },
        )
    stored = storage.batch_store(
        probe_id=probe.pk,
        cluster_id=cluster_id,
        batch_id=batch.batch_id,
        windows=batch.windows,
        dropped=batch.dropped,
        now=now,
        token_hash=token_hash,
    )
    if not stored:
        return {"duplicate": True}
    newest = batch.windows[-1]
    payload = {
        "probe_id": probe.pk,
        "cluster_id": cluster_id,
        "windows": [
            {
                "t": int(w.start.timestamp()),
                "count": w.count,
                "failures": w.failures,
                "p50": w.p50_ms,
                "p99": w.p99_ms,
            }
            for w in batch.windows
        ],
        "state": "up" if newest.up else "down",
    }
    signals.samples_stored.send_robust(sender=ResidentProbe, **payload)
    return {"stored": len(batch.windows)}
