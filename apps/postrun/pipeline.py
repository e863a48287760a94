"""The post-run pipeline: what happens after runs finish, in order.

A finished run's (case, cluster) pair arrives here two ways: at once, from
the report or the reaper that finished it (apps/runs/reporting/handoff.py
publishes pairs in bulk to ``tasks.process_finished_runs``), and, as the
guarantee, from the database-driven sweep (``tasks.sweep_finished_runs``
over apps/alerts/judging.py) for any pair the first way lost. Either way,
each pair goes through the same steps:

1. **diagnosis** — the pair's newest run, if it failed, gets its root cause
   (apps.diagnosis.services.run_diagnose: rules, then the classifier when
   they are unsure; stored on the run) and joins the incident it belongs to
   (apps.diagnosis.incidents.incidents_attach). Before the alert, so the
   alert and its notification carry the diagnosis and the incident.
2. **alerts** — the pair's alert is re-judged from its recent runs
   (apps.alerts.services.alert_evaluate). A change of state writes a flip in
   the same transaction; the alerts queue delivers the notifications.
3. **incidents** — a pair that recovered leaves its incident; the last one
   to leave resolves it (apps.diagnosis.incidents.incidents_recover).
4. **actions** — an alert in trouble that belongs to an open incident gets
   each matching severity policy's response once (apps.actions.services.
   actions_plan: notify, escalate, a self-heal webhook or Job, behind the
   rate limit, dry-run and approval safeguards; delivered by the actions task).
5. **dashboards** — the pair's cell (its newest run and alert state) is
   pushed to every page that shows it (apps.dashboard.push.push_pair), and
   changed incidents to the incidents pages (push_incidents).

Pairs arrive in batches (a hand-off task, a sweep pass), and a batch takes
the same steps together (``finished_batch_process``): each step reads and
writes the whole batch in a few statements (apps/alerts/batch.py and the
``*_many`` functions of diagnosis, incidents and actions), so judging costs
a fixed number of queries per batch plus a few per pair whose alert changes,
and the dashboards get one round of pushes per batch. Should a batch fail as
a whole, its pairs take the steps one by one (``finished_pair_process``), so
one bad pair never costs the others their turn. A step added here goes into
both.

This package sits above every app it calls: nothing below imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import connection, transaction

from apps.actions.services import actions_plan, actions_plan_many
from apps.alerts import services
from apps.alerts.batch import alerts_ensure, alerts_evaluate_many
from apps.alerts.models import Alert
from apps.dashboard.push import push_incidents, push_pair, push_pairs
from apps.diagnosis import incidents, selectors
from apps.diagnosis.services import run_diagnose, runs_diagnose_many

logger = logging.getLogger(__name__)

Pair = tuple[int, int]


def _diagnose(case_id: int, cluster_id: int) -> list[int]:
    run = selectors.newest_finished_run(case_id=case_id, cluster_id=cluster_id)
    diagnosis = run_diagnose(run=run) if run is not None else None
    if run is None or diagnosis is None:
        return []
    return incidents.incidents_attach(run=run, diagnosis=diagnosis)


def finished_pair_process(*, case_id: int, cluster_id: int) -> Alert | None:
    """Every step for one pair, in order; returns its alert as judged."""
    changed = _diagnose(case_id, cluster_id)  # 1. diagnosis
    alert = services.alert_evaluate(case_id=case_id, cluster_id=cluster_id)  # 2. alerts
    if alert is not None:
        changed += incidents.incidents_recover(alert=alert)  # 3. incidents
        if alert.is_problem:  # 4. actions
            actions_plan(alert=alert)
        push_pair(  # 5. dashboards
            case_id=case_id,
            cluster_id=cluster_id,
            state=alert.state,
            severity=alert.severity,
            latest_state=alert.latest_state,
            latest_run_id=alert.latest_run_id,
        )
    if changed:
        push_incidents(sorted(set(changed)))
    return alert


def finished_batch_process(pairs: list[Pair]) -> dict[Pair, Alert]:
    """Every step for many pairs together, in finished_pair_process's order; returns
    each pair's alert as judged."""
    alerts_ensure(pairs=pairs)  # at once: incidents (1.) point at them before judging does
    runs = selectors.newest_failed_runs(pairs=pairs)
    diagnoses = runs_diagnose_many(runs=runs)  # 1. diagnosis
    changed = incidents.incidents_attach_many(
        diagnosed=[(run, diagnoses[run.pk]) for run in runs if run.pk in diagnoses]
    )
    alerts = alerts_evaluate_many(pairs=pairs)  # 2. alerts
    judged = list(alerts.values())
    changed += incidents.incidents_recover_many(alerts=judged)  # 3. incidents
    actions_plan_many(alerts=judged)  # 4. actions
    push_pairs(  # 5. dashboards
        [
            {
                "case_id": a.case_id,
                "cluster_id": a.cluster_id,
                "state": a.state,
                "severity": a.severity,
                "latest_state": a.latest_state,
                "latest_run_id": a.latest_run_id,
            }
            for a in judged
        ]
    )
    if changed:
        push_incidents(sorted(set(changed)))
    return alerts


def finished_pairs_process(pairs: Iterable[Pair]) -> list[Pair]:
    """Run the pipeline for many pairs: as one batch, or, if the batch fails, pair by
    pair, so one pair's failure never costs the others their turn. Returns the pairs
    that failed."""
    batch = sorted(set(pairs))
    if not batch:
        return []
    # The batch reads use Postgres (unnest, LATERAL); the SQLite of a trial judges
    # its few pairs one by one.
    if connection.vendor == "postgresql":
        try:
            if connection.in_atomic_block:  # the sweep's: a failed batch rolls back to here
                with transaction.atomic():
                    finished_batch_process(batch)
            else:
                finished_batch_process(batch)
            return []
        except Exception:
            logger.warning(
                "post-run: a batch of %d pairs failed; judging them one by one",
                len(batch),
                exc_info=True,
            )
    failed = []
    for case_id, cluster_id in batch:
        try:
            finished_pair_process(case_id=case_id, cluster_id=cluster_id)
        except Exception:
            logger.exception("post-run: case %s on cluster %s failed", case_id, cluster_id)
            failed.append((case_id, cluster_id))
    return failed
