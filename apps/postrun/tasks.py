"""Celery entry points of the post-run pipeline (pipeline.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.alerts import judging
from apps.postrun import pipeline
from apps.runs import rollups
from apps.runs.reporting.handoff import POST_RUN_TASK

logger = logging.getLogger(__name__)


@shared_task(name=POST_RUN_TASK, acks_late=True, ignore_result=True)
def process_finished_runs(pairs: list[tuple[int, int]]) -> None:
    """What the report path and the reaper hand off in bulk."""
    pipeline.finished_pairs_process((case_id, cluster_id) for case_id, cluster_id in pairs)


@shared_task(name="apps.postrun.tasks.sweep_finished_runs", ignore_result=True)
def sweep_finished_runs() -> int:
    """The guarantee: run the pipeline for finished runs the watermark has not passed.
    Also counts finished runs into the hourly rollups (their own watermark)."""
    try:
        rollups.rollups_advance()
    except Exception:  # statistics lagging must not stop judging
        logger.exception("post-run: rollups failed")
    return judging.finished_runs_judge(process=pipeline.finished_pairs_process)
