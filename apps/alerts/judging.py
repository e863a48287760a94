"""The post-run pipeline's guarantee: every committed finished run is judged.

Judging a run means passing its (case, cluster) through the post-run
pipeline (apps/postrun/pipeline.py: alert re-judged, dashboards pushed). The
report path hands pairs to a per-process thread that publishes them to
Celery (apps/runs/reporting/handoff.py): fast, but a process that
dies after the commit, or a broker that refuses the publish, loses them.
This sweep is what makes that loss impossible. It is driven from the
database, not from anyone's memory:

* A watermark, one row of ``JudgeWatermark``, says how far finished runs
  have been judged, in (finished_at, id) order.
* A pass locks that row (``SELECT … FOR UPDATE SKIP LOCKED``: a concurrent
  sweeper gets nothing and returns), reads the next runs after it with one
  range scan of the partial index ``run_finished``, judges their pairs and
  moves the watermark, all in one transaction. A process that dies mid-pass
  rolls back its move: the next pass judges those runs again, never none.
* It stays ``KUBEPROBE_JUDGE_SETTLE_SECONDS`` behind the clock. ``finished_at``
  is stamped before the run's row is committed (a report may wait up to 30 s
  for its group commit, see apps/runs/reporting/store.py), so a run can appear behind
  a watermark that moved on without it; waiting a settle time longer than
  that wait plus the clock skew between hosts means the watermark only
  passes runs that are committed.

Why a watermark and not an outbox row per finished run: reports are stored
with one grouped UPDATE (apps/runs/reporting/store.py); an INSERT per report would
cost ingestion throughput, and a "judged" flag on the run would rewrite each
run's row (and all its index entries) a second time. The watermark reads the
rows the report path writes anyway; its only cost there is one entry in the
``run_finished`` index.

Most runs are already judged by the fast path when the sweep passes them:
a pair whose alert already records a run at least as new as the pass's
newest run of that pair (by id and finished_at) is not judged again. Judging
a pair twice is harmless anyway: a verdict that does not change the state
writes no flip (services.alert_evaluate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial, reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.alerts.models import Alert, JudgeWatermark
from apps.runs.models import ProbeRun
from apps.runs.reporting.handoff import hand_off

logger = logging.getLogger(__name__)

WATERMARK = "alerts"
# A pass's bound: BATCH runs per transaction, MAX_BATCHES transactions.
BATCH = 500
MAX_BATCHES = 10
# Where a new watermark starts: everything finished is still to be judged (a
# pair judged already is skipped with one query per batch).
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

Pair = tuple[int, int]
RunRow = tuple[int, datetime, int, int]


def _ensure_watermark() -> None:
    # On its own, before any pass locks it: an uncommitted insert would make
    # the other sweepers wait instead of skipping.
    JudgeWatermark.objects.bulk_create(
        [JudgeWatermark(name=WATERMARK, finished_at=BEGINNING)], ignore_conflicts=True
    )


def _locked_watermark() -> JudgeWatermark | None:
    """The watermark row, locked for this transaction; None if another sweeper holds it."""
    return JudgeWatermark.objects.select_for_update(skip_locked=True).filter(name=WATERMARK).first()


def runs_after(mark: JudgeWatermark, horizon: datetime) -> QuerySet[ProbeRun, Any]:
    """(id, finished_at, case_id, cluster_id) of finished runs after the watermark, in
    its order: one range scan of the run_finished index."""
    return (
        ProbeRun.objects.filter(
            finished_at__isnull=False,
            finished_at__gte=mark.finished_at,  # the scan's start in run_finished
            finished_at__lte=horizon,
        )
        .filter(Q(finished_at__gt=mark.finished_at) | Q(id__gt=mark.run_id))
        .order_by("finished_at", "id")
        .values_list("id", "finished_at", "case_id", "cluster_id")
    )


def _unjudged(runs: list[RunRow]) -> list[Pair]:
    """The pairs of these runs whose alert has not seen their newest run yet; one query."""
    newest: dict[Pair, tuple[int, datetime]] = {}
    for run_id, finished_at, case_id, cluster_id in runs:
        seen_id, seen_at = newest.get((case_id, cluster_id), (0, finished_at))
        newest[(case_id, cluster_id)] = (max(seen_id, run_id), max(seen_at, finished_at))
    judged = Alert.objects.filter(
        reduce(or_, (Q(case_id=case, cluster_id=cluster) for case, cluster in newest))
    ).values_list("case_id", "cluster_id", "latest_run_id", "last_finished_at")
    done = {
        (case, cluster)
        for case, cluster, latest_id, latest_at in judged
        if latest_id is not None
        and latest_at is not None
        and latest_id >= newest[(case, cluster)][0]
        and latest_at >= newest[(case, cluster)][1]
    }
    return sorted(pair for pair in newest if pair not in done)


def finished_runs_judge(
    *,
    process: Callable[[list[Pair]], list[Pair]],
    now: datetime | None = None,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Pass the pairs of finished runs the watermark has not passed yet to `process`
    (the post-run pipeline, which returns the pairs it failed on); the runs passed.

    Bounded: at most ``max_batches`` transactions of ``batch`` runs. Each
    batch costs one range scan of runs, one query of their alerts and one
    pipeline batch of the pairs not judged yet, inside the transaction that
    moves the watermark. Returns 0 at once if another sweeper holds the watermark.
    """
    horizon = (now or timezone.now()) - timedelta(seconds=settings.KUBEPROBE_JUDGE_SETTLE_SECONDS)
    passed = 0
    _ensure_watermark()
    for _ in range(max_batches):
        with transaction.atomic():
            mark = _locked_watermark()
            if mark is None:
                break
            runs: list[RunRow] = list(runs_after(mark, horizon)[:batch])
            if not runs:
                break
            # The watermark moves on past a pair that failed (one that always
            # fails must not stop the pipeline); the fast path tries it once more.
            for case_id, cluster_id in process(_unjudged(runs)):
                transaction.on_commit(partial(hand_off, case_id, cluster_id))
            mark.run_id, mark.finished_at = runs[-1][0], runs[-1][1]
            mark.moved_at = timezone.now()
            mark.save(update_fields=["run_id", "finished_at", "moved_at"])
        passed += len(runs)
        if len(runs) < batch:
            break
    return passed
