"""Run reaping: closing overdue or failed runs, re-sending pending runs whose dispatch was lost."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.utils import timezone

from apps.clusters.models import Cluster
from apps.core.logcontext import log_context, log_context_update
from apps.core.said import Said, say
from apps.runs import said as m
from apps.runs.executors import ExecutorError, RunStatus, get_executor
from apps.runs.finishing import run_finish
from apps.runs.models import ProbeRun, RunState

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 50


@dataclass
class ReapResult:
    timed_out: int = 0
    failed_early: int = 0
    redispatched: int = 0


def _diagnose(
    executor: Any, cluster: Cluster, run: ProbeRun, status: RunStatus | None
) -> tuple[dict[str, Any], str]:
    diagnostics: dict[str, Any] = {}
    if status is not None:
        diagnostics.update(status.details)
        diagnostics.setdefault("phase", status.phase)
        if status.reason:
            diagnostics["status_reason"] = status.reason
    # Best effort, each part on its own: the run still closes, and a part that
    # failed (no RBAC for events or pods/log, the node's kubelet unreachable)
    # says why instead of hiding the other.
    try:
        diagnostics["events"] = executor.events(cluster, run)
    except Exception as exc:
        diagnostics["events_error"] = error_text(exc)
    log_tail = ""
    try:
        log_tail = executor.logs(cluster, run, LOG_TAIL_LINES)
    except Exception as exc:
        diagnostics["log_error"] = error_text(exc)
    return diagnostics, log_tail


def error_text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ExecutorError) else f"{type(exc).__name__}: {exc}"


def runs_reap_cluster(*, cluster_id: int, now: datetime | None = None) -> ReapResult:
    """Close this cluster's runs that are past their deadline or whose pod already failed."""
    now = now or timezone.now()
    result = ReapResult()
    grace = timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS)
    runs = list(
        ProbeRun.objects.select_related("cluster", "case__template")
        .filter(cluster_id=cluster_id, state__in=(RunState.DISPATCHED, RunState.RUNNING))
        .order_by("pk")
    )
    if not runs:
        return result
    cluster = runs[0].cluster
    log_context_update(cluster=cluster.name)
    statuses: dict[int, RunStatus] = {}
    poll_error = ""
    executor = None
    try:
        executor = get_executor(cluster.executor)
        statuses = executor.poll(cluster, runs)
    except Exception as exc:  # overdue runs must close even when polling breaks
        if not isinstance(exc, ExecutorError):
            logger.exception("polling runs of cluster %s failed", cluster.name)
        poll_error = f"polling the cluster failed: {exc}"

    def close(run: ProbeRun, status: RunStatus | None, state: str, reason: Said | str) -> bool:
        # run_finish only moves an active run: a report that landed since the poll wins.
        with log_context(run_id=run.pk):
            diagnostics, log_tail = (
                _diagnose(executor, cluster, run, status) if executor else ({}, "")
            )
            if poll_error:
                diagnostics["poll_error"] = poll_error
            return run_finish(
                run=run,
                state=state,
                reason=reason,
                diagnostics=diagnostics,
                log_tail=log_tail,
                now=now,
            )

    for run in runs:
        status = statuses.get(run.pk)
        if run.deadline is not None and now > run.deadline + grace:
            why = say(m.NO_REPORT, seconds=run.case.effective_timeout)
            if status is not None and status.reason:
                why = say(m.POD_PART, text=why, pod=status.reason)
            elif poll_error:
                why = say(m.ERROR_PART, text=why, error=poll_error)
            result.timed_out += close(run, status, RunState.TIMED_OUT, why)
            continue
        if status is None:
            continue
        early_reason: Said | str = ""
        if status.failed_early:
            early_reason = status.reason
        elif status.phase == "succeeded":
            early_reason = say(m.EXITED)
        elif (
            status.phase == "missing"
            and run.state == RunState.RUNNING  # launched: the create call has returned
            and run.dispatched_at
            and now - run.dispatched_at > grace
        ):
            early_reason = status.reason or say(m.POD_GONE)
        if early_reason:
            result.failed_early += close(run, status, RunState.ERROR, early_reason)
    return result


def runs_claim_stuck_pending(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Pending runs whose dispatch message was lost (a worker died before acking).

    A run is due once its own redispatch_after has passed since enqueued_at
    (one query: the window is stored on the run). Each is claimed by moving its
    enqueued_at forward, so it is sent again at most once per window however
    many reapers run, and never while a retry of its own is waiting in the
    queue (run_requeued moves enqueued_at to when that retry is delivered).
    """
    now = now or timezone.now()
    due = ExpressionWrapper(F("enqueued_at") + F("redispatch_after"), output_field=DateTimeField())
    with transaction.atomic():
        ids = list(
            ProbeRun.objects.select_for_update(skip_locked=True)
            .alias(due=due)
            .filter(state=RunState.PENDING, due__lt=now)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        ProbeRun.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids


def run_requeued(*, run_id: int, due: datetime) -> None:
    """A retry of the run's dispatch is queued for `due`: the reaper waits for it."""
    ProbeRun.objects.filter(pk=run_id, state=RunState.PENDING).update(enqueued_at=due)


def clusters_with_active_runs() -> list[int]:
    return list(
        ProbeRun.objects.filter(state__in=(RunState.DISPATCHED, RunState.RUNNING))
        .order_by()
        .values_list("cluster_id", flat=True)
        .distinct()
    )
