"""Run cleanup: deleting finished runs' pods, sweeping orphan pods, purging old runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.clusters.k8s import BreakerOpen, BudgetSpent, call_deadline
from apps.clusters.models import Cluster
from apps.runs import partitions
from apps.runs.executors import ExecutorError, get_executor
from apps.runs.models import ProbeRun, RunState
from apps.runs.reaping import error_text
from apps.runs.rollups import rollups_purge

logger = logging.getLogger(__name__)

FAILED_STATES = (RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT)


# A kept pod is looked at again this often, so newer failures push it out.
KEEP_RECHECK = timedelta(seconds=60)
# A cleanup that failed (cluster unreachable) is retried after this.
CLEANUP_RETRY = timedelta(minutes=5)


def _keep_for_debugging(run: ProbeRun, now: datetime) -> bool:
    """The newest few failed pods per case and cluster stay for a while."""
    if run.state not in FAILED_STATES or settings.KUBEPROBE_KEEP_FAILED_PODS <= 0:
        return False
    keep_for = timedelta(seconds=settings.KUBEPROBE_KEEP_FAILED_POD_SECONDS)
    if run.finished_at is None or now - run.finished_at > keep_for:
        return False
    newer_failures = ProbeRun.objects.filter(
        case_id=run.case_id,
        cluster_id=run.cluster_id,
        state__in=FAILED_STATES,
        finished_at__gt=run.finished_at,
    ).count()
    return newer_failures < settings.KUBEPROBE_KEEP_FAILED_PODS


def _stopped_by(exc: Exception) -> BreakerOpen | BudgetSpent | None:
    """The open breaker or spent budget behind an executor's error, if that is what it was."""
    cause = exc if isinstance(exc, (BreakerOpen, BudgetSpent)) else exc.__cause__
    return cause if isinstance(cause, (BreakerOpen, BudgetSpent)) else None


def _budget_deadline() -> float:
    return time.monotonic() + settings.KUBEPROBE_CLEANUP_BUDGET_SECONDS


def runs_cleanup(
    *, now: datetime | None = None, limit: int = 500, run_ids: Iterable[int] | None = None
) -> int:
    """Delete the pods/processes of finished runs, keeping recent failures. Returns how many.

    keep_until is "not before": a kept run is judged again a minute later (its
    rank among failures changes), a failed cleanup is retried five minutes later.
    Each cluster gets KUBEPROBE_CLEANUP_BUDGET_SECONDS per pass (its calls' timeouts
    are cut to what is left), so one unreachable cluster cannot hold the pass up;
    when its breaker is open or its budget spent, its remaining runs wait
    (keep_until) instead of being tried again on every pass.
    """
    now = now or timezone.now()
    qs = ProbeRun.objects.select_related("cluster").filter(
        cleaned_at__isnull=True, finished_at__isnull=False
    )
    if run_ids is not None:
        qs = qs.filter(pk__in=list(run_ids))
    qs = qs.filter(Q(keep_until__isnull=True) | Q(keep_until__lt=now))
    cleaned = 0
    deadlines: dict[int, float] = {}
    stopped: dict[int, BreakerOpen | BudgetSpent] = {}
    left: dict[int, list[int]] = {}
    for run in qs.order_by("finished_at")[:limit]:
        if run.cluster_id in stopped:
            left.setdefault(run.cluster_id, []).append(run.pk)
            continue
        if _keep_for_debugging(run, now):
            ProbeRun.objects.filter(pk=run.pk).update(keep_until=now + KEEP_RECHECK)
            continue
        deadline = deadlines.setdefault(run.cluster_id, _budget_deadline())
        try:
            with call_deadline(deadline):
                get_executor(run.cluster.executor).cleanup(run.cluster, run)
        except Exception as exc:  # one unreachable cluster must not stop the rest
            stop = _stopped_by(exc)
            if stop is not None:
                stopped[run.cluster_id] = stop
                left.setdefault(run.cluster_id, []).append(run.pk)
                continue
            logger.warning("cleanup of run %s on %s failed: %s", run.pk, run.cluster.name, exc)
            # Kept on the run, so the admin shows why its pod is still there.
            ProbeRun.objects.filter(pk=run.pk).update(
                keep_until=now + CLEANUP_RETRY,
                diagnostics={**run.diagnostics, "cleanup_error": error_text(exc)},
            )
            continue
        done: dict[str, Any] = {"cleaned_at": now, "keep_until": None}
        if "cleanup_error" in run.diagnostics:  # an earlier attempt failed; this one did not
            done["diagnostics"] = {k: v for k, v in run.diagnostics.items() if k != "cleanup_error"}
        ProbeRun.objects.filter(pk=run.pk).update(**done)
        cleaned += 1
    for cluster_id, run_pks in left.items():
        # An open breaker: after its next attempt at the earliest, and not every
        # pass; a spent budget: the next pass but one, so other runs get their turn.
        stop = stopped[cluster_id]
        wait = CLEANUP_RETRY if isinstance(stop, BreakerOpen) else KEEP_RECHECK
        logger.warning("cleanup left %d run(s) of cluster %s: %s", len(run_pks), cluster_id, stop)
        ProbeRun.objects.filter(pk__in=run_pks).update(keep_until=now + wait)
    return cleaned


def cluster_sweep_orphans(*, cluster: Cluster, now: datetime | None = None) -> int:
    """Remove probe pods whose run is unknown or already cleaned up.

    Pods of active runs, and of finished runs the cleanup has not judged yet
    (kept failures included), are the cleanup's business and stay. Bounded by
    the cluster's cleanup budget; a cluster whose breaker is open is skipped
    (its orphans are found once it answers again).
    """
    now = now or timezone.now()
    executor = get_executor(cluster.executor)
    removed = 0
    try:
        with call_deadline(_budget_deadline()):
            handles = executor.managed_handles(cluster)
            if not handles:
                return 0
            known = {
                r.pk: r
                for r in ProbeRun.objects.filter(pk__in=list(handles)).only(
                    "pk", "state", "cleaned_at", "pod_name", "cluster_id"
                )
            }
            for run_id, handle in handles.items():
                run = known.get(run_id)
                if run is not None and run.cleaned_at is None:
                    continue
                orphan = run or ProbeRun(pk=run_id, cluster=cluster)
                orphan.pod_name = run.pod_name if run is not None and run.pod_name else handle
                executor.cleanup(cluster, orphan)
                removed += 1
    except ExecutorError as exc:
        stop = _stopped_by(exc)
        if stop is None:
            raise
        logger.warning("orphan sweep of cluster %s stopped: %s", cluster.name, stop)
    return removed


def runs_purge(*, now: datetime | None = None, batch: int = 5000, max_batches: int = 100) -> int:
    """Delete finished runs older than the retention: on a partitioned runs table
    (Postgres) whole partitions once all their runs are past it (apps/runs/partitions.py),
    elsewhere row by row in batches. Rollups are kept a week longer than runs."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.KUBEPROBE_RUN_RETENTION_DAYS)
    rollups_purge(before=min(cutoff, now - timedelta(days=8)))
    if partitions.is_partitioned():
        return partitions.partitions_drop(cutoff=cutoff)
    deleted = 0
    for _ in range(max_batches):
        ids = list(
            ProbeRun.objects.filter(finished_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            break
        ProbeRun.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted
