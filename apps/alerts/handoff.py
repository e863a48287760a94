"""The fast path from finished runs to alert evaluation, off the report path.

A report's request thread only adds its (case, cluster) to a per-process set;
one background thread publishes everything gathered, every few milliseconds,
as one Celery task. Thousands of reports a second become a few tasks, and
publishing to the broker happens off the request thread.

This is a latency optimisation, not the guarantee: a pair that a process dies
with, or that the broker refused, is judged by the database-driven sweep
(judging.py) a settle time later. That is the trade for not paying a broker
round trip, or an outbox row, per report.
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)

# A publish costs ~1 ms of the server's CPU (kombu, Redis): under load one
# every 0.1 s per process is ~1% of a core, every 0.02 s was ~5%. Alerts wait
# a full group window (1 s) anyway.
FLUSH_SECONDS = 0.1
MAX_PAIRS_PER_TASK = 200


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
                threading.Thread(target=self._run, name="alert-handoff", daemon=True).start()
            self.pairs.add((case_id, cluster_id))
            self.cond.notify()

    def _take(self) -> list[tuple[int, int]]:
        with self.cond:
            while not self.pairs:
                self.cond.wait()
        # Let the rest of a burst arrive: one task for many reports.
        threading.Event().wait(FLUSH_SECONDS)
        with self.cond:
            taken, self.pairs = sorted(self.pairs), set()
        return taken

    def _run(self) -> None:
        from apps.alerts.tasks import evaluate_alerts

        while True:
            pairs = self._take()
            for start in range(0, len(pairs), MAX_PAIRS_PER_TASK):
                chunk = pairs[start : start + MAX_PAIRS_PER_TASK]
                try:
                    evaluate_alerts.delay(chunk)
                except Exception:  # broker down: the sweep (judging.py) judges the pair
                    logger.warning("could not hand %d pairs to alert evaluation", len(chunk))
                finally:
                    from django.db import connection

                    connection.close()  # an eager task (tests, trials) may have opened one


_handoff = _Handoff()


def hand_off(case_id: int, cluster_id: int) -> None:
    _handoff.add(case_id, cluster_id)
