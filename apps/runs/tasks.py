"""Celery entry points of the run loop: thin, ids in, services do the work."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.clusters.models import Cluster
from apps.core.logcontext import log_context_update
from apps.core.retry import DATABASE_ERRORS, db_retry_countdown
from apps.core.said import say
from apps.runs import cleanup, dispatch, dispatch_batch, fanout, partitions, reaping
from apps.runs.executors import TransientExecutorError
from apps.runs.said import DISPATCH_FAILED

logger = logging.getLogger(__name__)


# max_retries=None: the limits below decide. Celery's default of 3 used to end the
# task with the executor's error before KUBEPROBE_DISPATCH_MAX_RETRIES (5) gave up.
@shared_task(
    bind=True,
    name="apps.runs.tasks.dispatch_run",
    acks_late=True,
    ignore_result=True,
    max_retries=None,
)
def dispatch_run(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    log_context_update(run_id=run_id)
    try:
        return dispatch.run_dispatch(run_id=run_id)
    except TransientExecutorError as exc:
        if self.request.retries >= settings.KUBEPROBE_DISPATCH_MAX_RETRIES:
            dispatch.run_give_up(
                run_id=run_id,
                reason=say(DISPATCH_FAILED, n=self.request.retries + 1, error=str(exc)),
            )
            return "gave up"
        countdown = min(60, 2**self.request.retries)
        reaping.run_requeued(run_id=run_id, due=timezone.now() + timedelta(seconds=countdown))
        raise self.retry(exc=exc, countdown=countdown) from exc
    except DATABASE_ERRORS as exc:
        # The run is still pending (or was launched before the error: the retry
        # then finds it claimed and launches nothing). Retrying now beats waiting
        # for the reaper.
        countdown = db_retry_countdown(self.request.retries)
        if countdown is None:
            logger.error(
                "run %s: dispatch left to the reaper, the database failed: %s", run_id, exc
            )
            raise
        with contextlib.suppress(*DATABASE_ERRORS):  # the database may still be away
            reaping.run_requeued(run_id=run_id, due=timezone.now() + timedelta(seconds=countdown))
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(
    bind=True,
    name="apps.runs.tasks.dispatch_pending",
    acks_late=True,
    ignore_result=True,
    max_retries=None,
)
def dispatch_pending(self) -> int:  # type: ignore[no-untyped-def]
    """Claim and launch one batch of pending runs (a tick's wake-up). Returns how many launched.

    A full batch passes the baton before launching: one more claimer is
    queued, so each chain the tick started keeps going until the table has no
    due pending run left, while the launches of this batch overlap the next claim.
    """
    limit = settings.KUBEPROBE_DISPATCH_BATCH
    try:
        claimed = dispatch_batch.runs_claim_pending(limit=limit)
    except DATABASE_ERRORS as exc:
        countdown = db_retry_countdown(self.request.retries)
        if countdown is None:  # the runs stay pending: the reaper sends them again
            raise
        raise self.retry(exc=exc, countdown=countdown) from exc
    if len(claimed) >= limit:
        dispatch_pending.delay()
    result = dispatch_batch.runs_launch_claimed(claimed=claimed)
    if result.retry_in is not None:
        fanout.dispatch_wake(runs=result.retried, countdown=result.retry_in)
    return len(result.launched)


@shared_task(name="apps.runs.tasks.reap_runs", ignore_result=True)
def reap_runs() -> None:
    """Fan out one reaper per cluster with active runs; re-dispatch lost pending runs."""
    for cluster_id in reaping.clusters_with_active_runs():
        reap_cluster.apply_async((cluster_id,), expires=30)
    for run_id in reaping.runs_claim_stuck_pending():
        dispatch_run.delay(run_id)


@shared_task(name="apps.runs.tasks.reap_cluster", ignore_result=True)
def reap_cluster(cluster_id: int) -> None:
    reaping.runs_reap_cluster(cluster_id=cluster_id)


@shared_task(name="apps.runs.tasks.cleanup_runs", ignore_result=True)
def cleanup_runs() -> int:
    return cleanup.runs_cleanup()


@shared_task(name="apps.runs.tasks.sweep_orphans", ignore_result=True)
def sweep_orphans() -> None:
    for cluster in Cluster.objects.filter(enabled=True):
        try:
            cleanup.cluster_sweep_orphans(cluster=cluster)
        except Exception:  # one broken cluster must not stop the sweep
            logger.exception("orphan sweep failed for cluster %s", cluster.name)


@shared_task(name="apps.runs.tasks.maintain_run_partitions", ignore_result=True)
def maintain_run_partitions() -> None:
    partitions.partitions_maintain()


@shared_task(name="apps.runs.tasks.purge_runs", ignore_result=True)
def purge_runs() -> int:
    return cleanup.runs_purge()
