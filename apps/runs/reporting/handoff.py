"""Finished runs to the post-run pipeline (apps/postrun), off the caller's thread.

A report's request thread only adds its (case, cluster) to a per-process set;
one background thread publishes everything gathered, every few milliseconds,
as one Celery task of the pipeline. Thousands of reports a second become a
few tasks, and publishing to the broker happens off the request thread.

This is a latency optimisation, not the guarantee: a pair that a process dies
with, or that the broker refused, is picked up by the pipeline's
database-driven sweep (apps/alerts/judging.py) a settle time later. That is
the trade for not paying a broker round trip, or an outbox row, per report.

The task is looked up by name in Celery's registry: the pipeline sits above
every app (it judges alerts and pushes dashboards), so runs must not import it.
"""

from __future__ import annotations

import logging
import os
import threading

from django.db import transaction

from apps.runs.models import ProbeRun
from apps.runs.signals import run_finished

logger = logging.getLogger(__name__)

POST_RUN_TASK = "apps.postrun.tasks.process_finished_runs"
# A publish costs ~1 ms of the server's CPU (kombu, Redis): under load one
# every 0.1 s per process is ~1% of a core, every 0.02 s was ~5%. Alerts wait
# a full group window (1 s) anyway.
FLUSH_SECONDS = 0.1
MAX_PAIRS_PER_TASK = 500
# While the pipeline's queue already holds BACKLOG tasks, its workers are behind:
# gather longer, up to MAX_GATHER_SECONDS, so they get fewer and bigger batches
# (a batch costs about the same statements for 5 pairs as for 200,
# apps/postrun/pipeline.py). Keeping up, a pair waits FLUSH_SECONDS as before.
BACKLOG = 2
MAX_GATHER_SECONDS = 1.0


def _backlog() -> int:
    """Tasks waiting in the pipeline's queue (LLEN of its Redis list); 0 if unknown."""
    from celery import current_app

    from apps.core.queue_metrics import _broker_client
    from kubeprobe_site.queues import queue_for

    try:
        queue = queue_for(POST_RUN_TASK, current_app.conf.task_default_queue)
        return int(_broker_client().llen(queue))
    except Exception:  # no Redis broker (tests, trials): publish at the usual pace
        return 0


class _Handoff:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pairs: set[tuple[int, int]] = set()
        self.pid = 0

    def add(self, case_id: int, cluster_id: int) -> None:
        with self.cond:
            if self.pid != os.getpid():  # first use in this (possibly forked) process
                self.pid = os.getpid()
                self.pairs.clear()
                threading.Thread(target=self._run, name="post-run-handoff", daemon=True).start()
            self.pairs.add((case_id, cluster_id))
            self.cond.notify()

    def _take(self) -> list[tuple[int, int]]:
        with self.cond:
            while not self.pairs:
                self.cond.wait()
        # Let the rest of a burst arrive: one task for many reports.
        threading.Event().wait(FLUSH_SECONDS)
        waited = FLUSH_SECONDS
        while (
            waited < MAX_GATHER_SECONDS
            and len(self.pairs) < MAX_PAIRS_PER_TASK
            and _backlog() >= BACKLOG
        ):
            threading.Event().wait(FLUSH_SECONDS)
            waited += FLUSH_SECONDS
        with self.cond:
            taken, self.pairs = sorted(self.pairs), set()
        return taken

    def _run(self) -> None:
        from celery import current_app
        from django.db import connection

        while True:
            pairs = self._take()
            for start in range(0, len(pairs), MAX_PAIRS_PER_TASK):
                chunk = pairs[start : start + MAX_PAIRS_PER_TASK]
                try:
                    current_app.tasks[POST_RUN_TASK].delay(chunk)
                except Exception:  # broker down: the sweep (judging.py) takes the pair
                    logger.warning("could not hand %d pairs to the post-run pipeline", len(chunk))
                finally:
                    connection.close()  # an eager task (tests, trials) may have opened one


_handoff = _Handoff()


def hand_off(case_id: int, cluster_id: int) -> None:
    _handoff.add(case_id, cluster_id)


def run_finished_announce(
    *, run_id: int, case_id: int, cluster_id: int, state: str, ok: bool
) -> None:
    """A run reached its final state: hand its pair to the post-run pipeline and tell
    run_finished's receivers (an extension point: nothing in KubeProbe needs it),
    once committed. A failing receiver is logged, never raised: it must not turn a
    stored report into an error answer."""

    def send() -> None:
        hand_off(case_id, cluster_id)
        run_finished.send_robust(
            sender=ProbeRun,
            run_id=run_id,
            case_id=case_id,
            cluster_id=cluster_id,
            state=state,
            ok=ok,
        )

    # In autocommit the row is committed already: send at once (on_commit would
    # too, but first opens this thread's connection to ask about autocommit).
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(send)
    else:
        send()
