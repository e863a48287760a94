"""Celery entry points of the post-run pipeline (pipeline.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.alerts import judging
from apps.postrun import pipeline
from apps.runs import rollups
from apps.runs.reporting import handoff
from apps.runs.reporting.handoff import POST_RUN_TASK

logger = logging.getLogger(__name__)


@shared_task(name=POST_RUN_TASK, acks_late=True, ignore_result=True)
def process_finished_runs(pairs: list[tuple[int, int]] | None = None) -> None:
    """What the report path and the reaper hand off: a wake-up to claim a batch of the
    pairs waiting in Redis (handoff.py), or, without a Redis set, the pairs themselves."""
    if pairs is not None:
        pipeline.finished_pairs_process((case_id, cluster_id) for case_id, cluster_id in pairs)
        return
    batch = handoff.pending_claim()
    if not batch:
        return  # an earlier wake-up's worker took them
    pipeline.finished_pairs_process(batch)
    # One batch per task, so other tasks of the queue (deliveries) get their turn;
    # what arrived meanwhile gets a wake-up of its own.
    if handoff.pending_count():
        process_finished_runs.delay()


@shared_task(name="apps.postrun.tasks.sweep_finished_runs", ignore_result=True)
def sweep_finished_runs() -> int:
    """The guarantee: run the pipeline for finished runs the watermark has not passed.
    Also counts finished runs into the hourly rollups (their own watermark)."""
    try:
        rollups.rollups_advance()
    except Exception:  # statistics lagging must not stop judging
        logger.exception("post-run: rollups failed")
    return judging.finished_runs_judge(process=pipeline.finished_pairs_process)
