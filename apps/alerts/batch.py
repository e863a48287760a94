"""Judging many (case, cluster) pairs at once: the post-run pipeline's batch path.

``alerts_evaluate_many()`` decides exactly what ``services.alert_evaluate()``
decides for each pair, with the same state machine (``services._apply``:
flips, flapping, silences, dependencies), but reads and writes a batch in a
fixed number of statements instead of ~15 per pair:

* the batch's alerts are created if missing (one INSERT … ON CONFLICT DO
  NOTHING, committed on its own) and locked in one ``SELECT … FOR UPDATE``
  in primary-key order: two workers judging overlapping batches take turns on
  the shared rows, and never deadlock, since both lock in the same order;
* each pair's newest binding, its rule and its recent runs are read for the
  whole batch (apps/alerts/selectors.py: ``newest_bindings``,
  ``rules_for_pairs``, ``recent_runs_many``);
* verdicts are computed in Python; a pair whose state changes writes its flip
  and timeline line as the single-pair path does, but queued: the batch reads
  the flip history of the alerts that may change in one statement and writes
  all flips with two INSERTs at the end (apps/alerts/flip_writes.py);
* the alerts are written back with two UPDATEs (apps/core/db.py
  ``rows_update``): the newest-run columns for the pairs whose state stayed,
  every judged column for the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps.alerts.evaluation import Judgement, RuleView, judge
from apps.alerts.flip_writes import deferred, flip_history_many
from apps.alerts.models import PROBLEM_STATES, Alert, AlertState
from apps.alerts.selectors import (
    active_silences,
    newest_bindings,
    recent_runs_many,
    rules_for_pairs,
)
from apps.alerts.services import _apply, _resolve, schedule_delivery
from apps.core.db import rows_update

Pair = tuple[int, int]

# What judging a pair whose state stays writes: its newest run.
LATEST_FIELDS = ("latest_run", "latest_state", "latest_duration_ms", "last_finished_at")
# What a change (or a firing verdict's details) may write; never the incident
# fields, which the diagnosis step keeps (apps/diagnosis/incidents.py).
JUDGED_FIELDS = (
    *LATEST_FIELDS,
    "state",
    "severity",
    "rule",
    "reason",
    "step",
    "error",
    "root_cause",
    "root_cause_component",
    "root_cause_confidence",
    "root_cause_source",
    "root_cause_summary",
    "last_run",
    "firing_since",
    "changed_at",
    "escalated",
    "flapping_since",
    "suppressed_by",
    "ack_note",
    "ack_by",
    "ack_until",
)


def alerts_exact(pairs: Iterable[Pair]) -> RawSQL:
    """The ids of the alerts of exactly these pairs (not every case × cluster of them)."""
    listed = list(pairs)
    table = Alert._meta.db_table
    return RawSQL(  # noqa: S611 (the table name; values are parameters)
        f"SELECT a.id FROM {table} a JOIN unnest(%s::bigint[], %s::bigint[])"  # noqa: S608
        " AS p(case_id, cluster_id) ON a.case_id = p.case_id AND a.cluster_id = p.cluster_id",
        ([c for c, _ in listed], [k for _, k in listed]),
    )


def alerts_ensure(*, pairs: Iterable[Pair]) -> None:
    """Create the alerts of the pairs that have none yet. Looked up first: nearly every
    pair has one, and an INSERT … ON CONFLICT of a whole batch costs far more than a read."""
    wanted = set(pairs)
    if not wanted:
        return
    found = set(
        Alert.objects.filter(pk__in=alerts_exact(wanted)).values_list("case_id", "cluster_id")
    )
    missing = sorted(wanted - found)
    if missing:  # another worker may create some at the same time: theirs stay
        Alert.objects.bulk_create(
            [Alert(case_id=case, cluster_id=cluster) for case, cluster in missing],
            ignore_conflicts=True,
        )


def _locked(pairs: list[Pair]) -> list[Alert]:
    return list(
        Alert.objects.select_for_update(of=("self",))
        .select_related("case", "cluster", "rule")
        .filter(pk__in=alerts_exact(pairs))
        .order_by("pk")
    )


def alerts_evaluate_many(
    *, pairs: Iterable[Pair], now: datetime | None = None
) -> dict[Pair, Alert]:
    """Re-judge many pairs from their recent runs, as alert_evaluate() does one; returns
    each pair's alert as judged. One transaction for the batch."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    # Missing alerts first, committed on their own: the locking transaction then
    # holds no insert locks another worker could wait on in a different order.
    alerts_ensure(pairs=wanted)
    given = now
    with transaction.atomic():
        alerts = _locked(wanted)
        # After the locks: a worker that waited must not date its flips earlier
        # than the ones it waited behind.
        now = given or timezone.now()
        bindings = newest_bindings(pairs=wanted)
        rules = rules_for_pairs(
            pairs=[(a.case, a.cluster, bindings.get((a.case_id, a.cluster_id))) for a in alerts]
        )
        views = {
            pair: RuleView.of(rule) if rule else RuleView(consecutive_failures=1)
            for pair, rule in rules.items()
        }
        runs = recent_runs_many(rules=views, now=now)
        silences = active_silences(now)
        verdicts: dict[Pair, Judgement] = {}
        moving = []  # alerts that may change state: a guess that misses costs _apply a query
        for alert in alerts:
            pair = (alert.case_id, alert.cluster_id)
            trouble = alert.state in PROBLEM_STATES
            if rules[pair] is None:
                may_move = trouble  # it resolves
            else:
                judged = verdicts[pair] = judge(views[pair], runs.get(pair, []), now, None)
                may_move = (judged.firing and alert.state == AlertState.OK) or (
                    judged.healthy and trouble
                )
            if may_move:
                moving.append(alert.pk)
        history = flip_history_many(alert_ids=moving, now=now)
        stayed, changed = [], []
        with deferred(history=history, schedule=schedule_delivery):
            for alert in alerts:
                pair = (alert.case_id, alert.cluster_id)
                recent = runs.get(pair, [])
                before = (alert.state, alert.flapping_since)
                if recent:
                    newest = recent[0]
                    alert.latest_run_id, alert.latest_state = newest.id, newest.state
                    alert.latest_duration_ms = newest.duration_ms
                    alert.last_finished_at = newest.finished_at or alert.last_finished_at
                verdict = verdicts.get(pair)
                if verdict is None:  # no rule: the dashboards still want the result
                    if alert.state in PROBLEM_STATES:  # its rule was disabled or deleted
                        _resolve(alert, None, now, note="no enabled rule applies any more")
                else:
                    _apply(alert, rules[pair], verdict, now, silences=silences)
                firing = verdict is not None and verdict.firing
                if firing or (alert.state, alert.flapping_since) != before:
                    changed.append(alert)
                else:
                    stayed.append(alert)
        rows_update(model=Alert, objects=stayed, fields=LATEST_FIELDS)
        rows_update(model=Alert, objects=changed, fields=JUDGED_FIELDS)
    return {(a.case_id, a.cluster_id): a for a in alerts}
