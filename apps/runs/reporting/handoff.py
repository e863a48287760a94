"""Finished runs to the post-run pipeline (apps/postrun), off the caller's thread.

A report's request thread only adds its (case, cluster) to a per-process set;
one background thread moves everything gathered, every FLUSH_SECONDS, into a
Redis sorted set shared by every server process (ZADD, scored by arrival) and
publishes a small wake-up task of the pipeline. A woken worker claims up to
MAX_PAIRS_PER_TASK pairs from the shared set, oldest first (ZPOPMIN), and
judges them as one batch.

So a batch is whatever arrived while the workers were busy: a few pairs when
they keep up (a pair waits about FLUSH_SECONDS), hundreds when they are
behind, where a batch's fixed cost (about 25 statements, apps/postrun/
pipeline.py) is spread thin. Wake-ups that find the set empty cost a Redis
round trip. A pair reported twice before it is claimed is judged once.

This is a latency optimisation, not the guarantee: a pair that a process dies
with, or that Redis refused, is picked up by the pipeline's database-driven
sweep (apps/alerts/judging.py) a settle time later. That is the trade for not
paying a broker round trip, or an outbox row, per report. Where no Redis set is
available (a broker that is not Redis) the pairs travel in the task itself.

The task is looked up by name in Celery's registry: the pipeline sits above
every app (it judges alerts and pushes dashboards), so runs must not import it.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis
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

Pair = tuple[int, int]


def _pending_key() -> str:
    """The shared set of pairs waiting for the pipeline: one per task queue prefix, so
    installations (and benchmarks) sharing a Redis database stay apart."""
    from celery import current_app

    return f"kubeprobe:postrun:pending:{current_app.conf.task_default_queue}"


def _redis() -> redis.Redis:
    from apps.core.queue_metrics import _broker_client

    return _broker_client()


def pending_park(pairs: list[Pair]) -> None:
    """Add pairs to the shared set, each scored with when it first arrived (a pair
    already waiting keeps its place). Raises when Redis cannot take them."""
    if pairs:
        now = time.time()
        _redis().zadd(_pending_key(), {f"{c}:{k}": now for c, k in pairs}, nx=True)


def pending_claim(limit: int = MAX_PAIRS_PER_TASK) -> list[Pair]:
    """Take up to `limit` pairs from the shared set, those waiting longest first (a
    random pick would leave some behind for long under a backlog); each pair goes to
    one claimer."""
    taken: list[tuple[bytes, float]] = _redis().zpopmin(_pending_key(), limit)  # type: ignore[assignment]
    pairs = []
    for raw, _ in taken:
        case, _, cluster = raw.partition(b":")
        pairs.append((int(case), int(cluster)))
    return sorted(pairs)


def pending_count() -> int:
    return int(_redis().zcard(_pending_key()))


class _Handoff:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pairs: set[Pair] = set()
        self.pid = 0

    def add(self, case_id: int, cluster_id: int) -> None:
        with self.cond:
            if self.pid != os.getpid():  # first use in this (possibly forked) process
                self.pid = os.getpid()
                self.pairs.clear()
                threading.Thread(target=self._run, name="post-run-handoff", daemon=True).start()
            self.pairs.add((case_id, cluster_id))
            self.cond.notify()

    def _take(self) -> list[Pair]:
        with self.cond:
            while not self.pairs:
                self.cond.wait()
        # Let the rest of a burst arrive: one wake-up for many reports.
        threading.Event().wait(FLUSH_SECONDS)
        with self.cond:
            taken, self.pairs = sorted(self.pairs), set()
        return taken

    def _run(self) -> None:
        from celery import current_app
        from django.db import connection

        while True:
            pairs = self._take()
            task = current_app.tasks[POST_RUN_TASK]
            try:
                try:
                    pending_park(pairs)
                except Exception:  # no Redis set here: the pairs travel in the tasks
                    for start in range(0, len(pairs), MAX_PAIRS_PER_TASK):
                        task.delay(pairs[start : start + MAX_PAIRS_PER_TASK])
                else:
                    task.delay()
            except Exception:  # broker down: the sweep (judging.py) takes the pairs
                logger.warning("could not hand %d pairs to the post-run pipeline", len(pairs))
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
