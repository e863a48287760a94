"""Batch dispatch: claim pending runs from the table with SKIP LOCKED and launch them.

A tick stores its runs as `pending` (apps/runs/fanout.py) and wakes a few
`dispatch_pending` tasks. Each claims the next batch of due pending runs in id
order (`FOR UPDATE SKIP LOCKED`: concurrent workers never take the same run),
moves them to `dispatched` with their token hash, deadline and pod name in one
statement, commits, and launches them one by one through the executor, so
every launch still goes through the cluster's client: its circuit breaker,
QPS limit and timeout. A message lost or a worker killed costs nothing: the
runs stay `pending` (not claimed) or `dispatched` (claimed, then closed by the
reaper at their deadline), exactly as with per-run dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.catalog.models import ReportProtocol
from apps.core.crypto import hash_token
from apps.core.said import say
from apps.runs.dispatch import run_launch_spec
from apps.runs.executors import ExecutorError, LaunchSpec, TransientExecutorError, get_executor
from apps.runs.finishing import run_finish
from apps.runs.models import ProbeRun, RunState
from apps.runs.said import DISPATCH_FAILED
from apps.runs.signals import runs_state_changed
from apps.runs.tokens import run_token


@dataclass
class BatchResult:
    claimed: int = 0
    launched: list[int] = field(default_factory=list)
    errors: int = 0
    # Runs given back after a passing failure, and the soonest one is due again.
    retried: int = 0
    retry_in: float | None = None


def runs_claim_pending(
    *, limit: int, now: datetime | None = None
) -> list[tuple[ProbeRun, LaunchSpec]]:
    """Claim up to `limit` due pending runs (oldest first) for this worker, in one transaction."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            ProbeRun.objects.select_for_update(skip_locked=True)
            .filter(state=RunState.PENDING, enqueued_at__lte=now)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        runs = list(
            ProbeRun.objects.select_related(
                "case__template", "case__render_config", "cluster", "binding"
            )
            .filter(pk__in=ids)
            .order_by("pk")
        )
        claimed = []
        for run in runs:
            kuberhealthy = run.case.template.report_protocol == ReportProtocol.KUBERHEALTHY
            token = run_token(run_id=run.pk, kuberhealthy=kuberhealthy)
            deadline = now + timedelta(seconds=run.case.effective_timeout)
            spec = run_launch_spec(run=run, token=token, deadline=deadline)
            run.state, run.dispatched_at, run.deadline = RunState.DISPATCHED, now, deadline
            run.token_hash, run.executor, run.pod_name = (
                hash_token(token),
                run.cluster.executor,
                spec.name,
            )
            run.dispatch_attempts += 1
            claimed.append((run, spec))
        ProbeRun.objects.bulk_update(
            runs,
            [
                "state",
                "dispatched_at",
                "deadline",
                "token_hash",
                "executor",
                "pod_name",
                "dispatch_attempts",
            ],
        )
    return claimed


def _give_back(runs: list[ProbeRun], due: datetime) -> None:
    """Return claimed runs to `pending`, claimable again from `due` (the reaper waits too)."""
    ProbeRun.objects.filter(pk__in=[r.pk for r in runs], state=RunState.DISPATCHED).update(
        state=RunState.PENDING, token_hash="", dispatched_at=None, deadline=None, enqueued_at=due
    )


def _mark_running(run_ids: list[int]) -> list[int]:
    """dispatched → running for the launched runs that no report or reaper finished meanwhile."""
    if not run_ids:
        return []
    table = connection.ops.quote_name(ProbeRun._meta.db_table)
    marks = ", ".join(["%s"] * len(run_ids))
    with connection.cursor() as cursor:
        cursor.execute(  # table name and placeholders only; values are parameters
            f"UPDATE {table} SET state = %s WHERE state = %s AND id IN ({marks}) RETURNING id",  # noqa: S608
            [RunState.RUNNING.value, RunState.DISPATCHED.value, *run_ids],
        )
        return [row[0] for row in cursor.fetchall()]


def _retry(run: ProbeRun, exc: TransientExecutorError, now: datetime) -> float | None:
    """Give a run back after a passing failure, or end it once its attempts are spent."""
    if run.dispatch_attempts > settings.KUBEPROBE_DISPATCH_MAX_RETRIES:
        reason = say(DISPATCH_FAILED, n=run.dispatch_attempts, error=str(exc))
        run_finish(run=run, state=RunState.ERROR, reason=reason, from_states=(RunState.DISPATCHED,))
        return None
    countdown = float(min(60, 2 ** (run.dispatch_attempts - 1)))
    _give_back([run], now + timedelta(seconds=countdown))
    return countdown


def runs_dispatch_batch(*, limit: int) -> BatchResult:
    """Claim a batch of pending runs and launch each. Returns what happened."""
    return runs_launch_claimed(claimed=runs_claim_pending(limit=limit))


def runs_launch_claimed(*, claimed: list[tuple[ProbeRun, LaunchSpec]]) -> BatchResult:
    """Launch runs claimed by runs_claim_pending, each through its cluster's executor."""
    result = BatchResult(claimed=len(claimed))
    launched: list[int] = []
    done = 0
    try:
        for run, spec in claimed:
            try:
                if not run.cluster.enabled:
                    raise ExecutorError(f"Cluster '{run.cluster.name}' is disabled.")
                handle = get_executor(run.cluster.executor).launch(run.cluster, spec)
            except TransientExecutorError as exc:
                countdown = _retry(run, exc, timezone.now())
                if countdown is None:
                    result.errors += 1
                else:
                    result.retried += 1
                    result.retry_in = min(result.retry_in or countdown, countdown)
            except ExecutorError as exc:
                run_finish(run=run, state=RunState.ERROR, reason=str(exc))
                result.errors += 1
            else:
                if handle != spec.name:  # a local process: its handle is not the pod name
                    ProbeRun.objects.filter(pk=run.pk).update(pod_name=handle[:253])
                launched.append(run.pk)
            done += 1
    finally:
        # Something unexpected (a bug, the database gone): the runs not tried yet
        # go back to pending for the next claimer instead of waiting for their deadline.
        if done < len(claimed):
            _give_back([run for run, _ in claimed[done:]], timezone.now())
        by_id = {run.pk: run for run, _ in claimed}
        result.launched = _mark_running(launched)
        # One notice for the batch (dashboards push its cells in one round), and none
        # for `dispatched`: a batch is claimed and launched within moments.
        runs_state_changed.send(
            sender=ProbeRun,
            runs=[(i, by_id[i].case_id, by_id[i].cluster_id) for i in result.launched],
            state=RunState.RUNNING,
        )
    return result
